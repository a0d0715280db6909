#!/usr/bin/env bash
# Redis for the job tests (tests/*/test_jobs*.py start their own private server from it, persistence on, on a free
# loopback port, in a temp dir): Debian's `redis-server` package. Idempotent: does nothing when it is there.
# Production runs its own Redis (docs/scaling.md, "Jobs at cluster scale"); this is only the binary the tests use.
set -euo pipefail
REDIS="${OCRSERVE_REDIS_SERVER:-/usr/bin/redis-server}"
if [ -x "$REDIS" ]; then
  echo "[redis] $("$REDIS" --version 2>/dev/null | cut -d' ' -f1-3 || echo "$REDIS") already installed"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "[redis] $REDIS is missing and this machine has no apt-get: install Redis >= 6 yourself" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
    echo "[redis] installing redis-server needs root (apt-get install redis-server); run this script as root" >&2
    exit 1
  fi
fi
echo "[redis] installing Debian's redis-server package (apt-get)"
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y --no-install-recommends redis-server >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y --no-install-recommends redis-server
fi
if [ ! -x "$REDIS" ]; then
  echo "[redis] apt-get finished but $REDIS is not there" >&2
  exit 1
fi
echo "[redis] $("$REDIS" --version | cut -d' ' -f1-3)"
