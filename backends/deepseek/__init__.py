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
* :mod:`~backends.deepseek.vllm_engine` / :mod:`~backends.deepseek.hf_engine` - the two thin runners.
* :mod:`~backends.deepseek.engine` - :class:`DeepSeekEngine`, the ``OCREngine`` the registry names.
* :mod:`~tests.support.tiny_deepseek` - a tiny random OCR-2 checkpoint (native layout) for CPU tests and demos;
  :mod:`~tests.support.tiny_vllm` - tiny OCR / OCR-2 checkpoints in DeepSeek's layout for the real vLLM on CPU.

Nothing here imports torch, transformers or vLLM at module import time except the runners and ``tiny``,
which do so inside functions.
"""

from backends.deepseek.config import DeepSeekConfig, DeepSeekOptions
from backends.deepseek.engine import DeepSeekEngine

__all__ = ["DeepSeekConfig", "DeepSeekEngine", "DeepSeekOptions"]
