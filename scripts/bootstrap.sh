#!/usr/bin/env bash
# Creates .venv and installs the project with the given extras, once per change of pyproject.toml or extras.
# Used by scripts/serve.sh and scripts/test.sh; safe to run again (it skips work already done).
#   scripts/bootstrap.sh mineru            -> CPU serving (no torch)
#   scripts/bootstrap.sh deepseek,mineru,test  -> everything the tests need (torch CPU build pinned first)
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python="${PYTHON:-python3}"
venv="${OCRSERVE_VENV:-.venv}"

if [ ! -x "$venv/bin/python" ]; then
  echo "[bootstrap] creating $venv with $($python --version)"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
fi

stamp="$venv/.ocrserve-installed-$(echo "$extras" | tr ',' '-')"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

if [[ ",$extras," == *",deepseek,"* ]]; then
  # A pinned CPU-capable torch first, so the deepseek extra's torch requirement is already met and pip does not
  # reach for a multi-GB CUDA build. Set TORCH_INDEX_URL (e.g. the PyTorch CPU wheel index) where PyPI's
  # default build is not wanted.
  echo "[bootstrap] installing torch==2.13.0"
  "$venv/bin/python" -m pip install --quiet ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "torch==2.13.0"
fi
echo "[bootstrap] installing ocrserve${extras:+[$extras]} (first time: a few minutes)"
"$venv/bin/python" -m pip install --quiet -e ".${extras:+[$extras]}"
echo "$want" > "$stamp"
