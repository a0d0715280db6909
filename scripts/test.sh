#!/usr/bin/env bash
# README command 2: set up on a fresh machine and run the whole test suite (CPU only, no download).
# Extra arguments go to pytest (e.g. -k rapidocr, -x). Under CI=true a skipped test fails the run unless it skipped
# for a reason on the allow-list of tests/support/skip_policy.py ("needs a CUDA GPU"): everything else the suite
# needs is installed here.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh deepseek,mineru,test
bash scripts/install-browser.sh   # Debian's Chromium for the web page's browser tests (apt; never a download)
bash scripts/apt-install.sh /usr/bin/promtool prometheus   # promtool checks the Prometheus alert rules (apt)
bash scripts/apt-install.sh /usr/bin/redis-server redis-server   # the job tests start their own Redis (apt)
export RAY_AUTH_MODE="${RAY_AUTH_MODE:-token}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
set +e
.venv/bin/python -m pytest --durations=25 "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "[test] pytest collected no tests: that is a failure here" >&2
fi
exit "$status"
