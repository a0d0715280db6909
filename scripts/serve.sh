#!/usr/bin/env bash
# README command 1: set up on a fresh machine, start the service on the CPU profile (RapidOCR + MinerU flash),
# OCR a sample page through HTTP, print the result and keep serving on http://127.0.0.1:8000 until Ctrl-C.
# Extra arguments go to `ocrserve serve` (e.g. --once to stop after the sample, --port 9000).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh mineru
export RAY_AUTH_MODE="${RAY_AUTH_MODE:-token}"
exec .venv/bin/ocrserve serve --profile cpu "$@"
