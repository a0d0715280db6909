"""DeepSeek-OCR / DeepSeek-OCR-2 backend.

Modules, one job each:

* :mod:`~backends.deepseek.config` - deployment config and per-request options (pydantic, strict).
* :mod:`~backends.deepseek.prompts` - prompt presets.
* :mod:`~backends.deepseek.modes` - resolution modes, tiling and vision-token arithmetic.
* :mod:`~backends.deepseek.grounding` - grounding output -> blocks, markdown, warnings (pure).
* :mod:`~backends.deepseek.ngram` - the no-repeat n-gram guard (pure).
* :mod:`~backends.deepseek.source` - where the weights are; offline checks; clear "download this" errors.
* :mod:`~backends.deepseek.vllm_inputs` - everything sent to vLLM, as plain data.
* :mod:`~backends.deepseek.vllm_compat` - what differs between vLLM versions: the n-gram processor and model
  runner, the prompt form, the installed distribution and device.
* :mod:`~backends.deepseek.vllm_errors` - vLLM's start-up and request failures as typed answers.
* :mod:`~backends.deepseek.vllm_stats` - vLLM's own scheduler counts (pages running together) for health.
* :mod:`~backends.deepseek.vllm_runner` / :mod:`~backends.deepseek.hf_runner` - the two thin runners;
  :mod:`~backends.deepseek.hf_generate` - the transformers runner's torch side (no pydantic: the GPU smoke
  script runs it on a machine with torch and transformers only).
* :mod:`~backends.deepseek.engine` - :class:`DeepSeekEngine`, the ``OCREngine`` the registry names.
* ``benchmarks/support/tiny_deepseek.py`` - tiny random OCR-2 checkpoints (native layout, dense or MoE decoder) for CPU
  tests, demos and the GPU smoke script; :mod:`~benchmarks.support.tiny_vllm` - tiny OCR / OCR-2 checkpoints in
  DeepSeek's layout for the real vLLM on CPU.

Nothing here imports torch, transformers or vLLM at module import time except the runners, which do so inside
functions. The package's names are resolved on first use (PEP 562), so importing one submodule
(``backends.deepseek.hf_generate``) does not import the config and engine (pydantic) with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from backends.deepseek.config import DeepSeekConfig, DeepSeekOptions
    from backends.deepseek.engine import DeepSeekEngine

__all__ = ["DeepSeekConfig", "DeepSeekEngine", "DeepSeekOptions"]

_HOMES = {
    "DeepSeekConfig": "backends.deepseek.config",
    "DeepSeekOptions": "backends.deepseek.config",
    "DeepSeekEngine": "backends.deepseek.engine",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
