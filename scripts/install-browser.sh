#!/usr/bin/env bash
# Headless Chromium for the web page's browser tests (tests/e2e/test_ui*.py): Debian's `chromium` package, driven
# by Playwright's Python API through executable_path. Never a browser download (`playwright install` fetches
# builds from a CDN, which offline machines and CI cannot reach). Idempotent: does nothing when it is there.
set -euo pipefail
CHROMIUM="${OCRSERVE_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
  echo "[browser] $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM") already installed"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "[browser] $CHROMIUM is missing and this machine has no apt-get: install Chromium yourself and set" \
       "OCRSERVE_CHROMIUM to its path (the browser tests skip without it)" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
    echo "[browser] installing chromium needs root (apt-get install chromium); run this script as root" >&2
    exit 1
  fi
fi
echo "[browser] installing Debian's chromium package (apt-get)"
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y --no-install-recommends chromium fonts-liberation >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y --no-install-recommends chromium fonts-liberation
fi
if [ ! -x "$CHROMIUM" ]; then
  echo "[browser] apt-get finished but $CHROMIUM is not there" >&2
  exit 1
fi
echo "[browser] $("$CHROMIUM" --version)"
