#!/usr/bin/env bash
# Headless Chromium for the web page's browser tests (tests/e2e/test_ui*.py): Debian's `chromium` package, driven
# by Playwright's Python API through executable_path. Never a browser download (`playwright install` fetches
# builds from a CDN, which offline machines and CI cannot reach). Idempotent: does nothing when it is there.
# OCRSERVE_CHROMIUM names another binary (the tests read the same variable).
set -euo pipefail
cd "$(dirname "$0")/.."
exec bash scripts/apt-install.sh "${OCRSERVE_CHROMIUM:-/usr/bin/chromium}" chromium fonts-liberation
