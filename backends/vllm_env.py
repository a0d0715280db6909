"""vLLM's model-runner switch, for every engine whose process builds a vLLM engine with a v1-interface logits
processor: DeepSeek-OCR's replica and MinerU's parse process alike.

Read from vLLM 0.32's source: ``VllmConfig.use_v2_model_runner`` is true by default wherever Triton is present (every
CUDA install), and the V2 runner's loader (``vllm/v1/worker/gpu/sample/logits_processor/loader.py``) refuses any
processor that does not subclass the V2 interface, while the engine is built (``ValueError: ... is not a subclass
of vllm.v1.worker.gpu.sample.logits_processor.LogitsProcessor``). DeepSeek-OCR's ``NGramPerReqLogitsProcessor`` and
MinerU's ``MinerULogitsProcessor`` (mineru-vl-utils, written for vllm < 0.29) are both v1-interface. vLLM reads the
switch, ``VLLM_USE_V2_MODEL_RUNNER`` (``0``: V1 runner), from the process environment when it builds the engine, so
it must be set in the process that builds it, before it does.

Pure: no vLLM import. vLLM parses the value with ``bool(int(value))``; this module reads it the same way.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from shared.errors import OCRError

RUNNER_ENV = "VLLM_USE_V2_MODEL_RUNNER"
"""vLLM's documented switch between its V1 (``0``) and V2 (``1``) model runners; unset lets vLLM decide."""


def explicit_runner(environ: Mapping[str, str] | None = None) -> bool | None:
    """The runner the environment forces: True (V2), False (V1) or None (unset: vLLM decides)."""
    value = (os.environ if environ is None else environ).get(RUNNER_ENV)
    if value is None or not value.strip():
        return None
    text = value.strip().lower()
    if text in ("true", "false"):
        return text == "true"
    try:
        return bool(int(text))
    except ValueError:
        return None  # vLLM itself would fail on it; nothing to add here


def v1_runner_env(*, who: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables that make vLLM run its V1 model runner in this process, for ``who`` (named in errors).

    Returns:
        ``{VLLM_USE_V2_MODEL_RUNNER: "0"}`` when the switch is unset, ``{}`` when it already says V1.

    Raises:
        OCRError: ``backend_unavailable`` when the environment forces the V2 runner, which would refuse the
            v1-interface processor ``who`` registers (saying which setting to change).
    """
    forced = explicit_runner(environ)
    if forced is None:
        return {RUNNER_ENV: "0"}
    if forced is False:
        return {}
    raise OCRError(
        "backend_unavailable",
        f"{RUNNER_ENV}=1 is set, but vLLM's V2 model runner refuses the v1-interface logits processor {who} "
        f"registers; unset {RUNNER_ENV} (this engine then sets it to 0) or use another engine",
    )
