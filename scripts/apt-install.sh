#!/usr/bin/env bash
# Installs Debian packages for the test suite's system tools, only when the tool is missing (idempotent: does
# nothing when it is there). Never a download from anywhere but the machine's apt sources.
#   scripts/apt-install.sh BINARY PACKAGE...
# e.g. scripts/apt-install.sh /usr/bin/promtool prometheus   (the alert rules' checks, tests/e2e/test_alert_rules.py)
# Chromium goes through scripts/install-browser.sh, which calls this with its own path and packages.
set -euo pipefail
if [ "$#" -lt 2 ]; then
  echo "usage: $0 BINARY PACKAGE..." >&2
  exit 2
fi
binary="$1"
shift
name="$(basename "$binary")"
if [ -x "$binary" ]; then
  echo "[apt] $name already installed ($binary)"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "[apt] $binary is missing and this machine has no apt-get: install $* yourself (the tests that need" \
       "$name fail under CI=true and skip elsewhere, saying so)" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
    echo "[apt] installing $* needs root (apt-get install $*); run this script as root" >&2
    exit 1
  fi
fi
echo "[apt] installing Debian's $* (apt-get)"
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y --no-install-recommends "$@"
fi
if [ ! -x "$binary" ]; then
  echo "[apt] apt-get finished but $binary is not there" >&2
  exit 1
fi
echo "[apt] $name installed ($binary)"
