"""The transformers runner: DeepSeek-OCR-2 through the native classes, on a GPU or a CPU.

Loaded with the Auto classes (``AutoProcessor`` -> ``DeepseekOcr2Processor``, ``AutoModelForImageTextToText`` ->
``DeepseekOcr2ForConditionalGeneration``), exactly as for any hub checkpoint, so the tiny test checkpoint and the
real one take the same path. Pages are generated in padded batches of ``hf_batch_size`` (left padding, greedy,
the same no-repeat n-gram guard as vLLM). The torch side - attention choice, loading, one batch - lives in
:mod:`backends.deepseek.hf_generate`, which ``benchmarks/gpu_smoke.py`` runs on a GPU; this module adds the
deployment's config, the device check and what a failed load means.

Start-up failures are answers, not crashes: missing or unreadable files are ``models_missing`` (with the
download command), anything else (CUDA out of memory, a CUDA error, a dtype or attention setting transformers
refuses) ``backend_unavailable`` with the reason; the hosting replica then stays up and says so instead of being
restarted in a loop.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

from PIL import Image

from backends.deepseek.config import DeepSeekConfig
from backends.deepseek.hf_generate import (
    NGramSettings,
    choose_attention,
    flash_attention_status,
    generate_batch,
    images_kwargs,
    load_pretrained,
    ngram_guard,
    processor_geometry,
    resolve_dtype,
)
from backends.deepseek.modes import ModeSpec
from backends.deepseek.runner import Generation, RunPlan
from backends.deepseek.source import ModelSource, download_hint
from backends.devices import check_visible
from shared.errors import OCRError

logger = logging.getLogger(__name__)

__all__ = ["HFRunner", "choose_attention", "classify_load_error", "images_kwargs", "resolve_device", "resolve_dtype"]

_UNREADABLE = re.compile(
    r"unrecognized|model_type|config\.json|tokenizer|does not appear to have|no such file|not a valid|checkpoint",
    re.IGNORECASE,
)
"""``ValueError`` messages of transformers that mean the checkpoint's files are the problem."""


def flash_attn_available() -> bool:
    """Whether flash-attn imports here (the package *and* its CUDA extension, see :func:`flash_attention_status`)."""
    return flash_attention_status()[0]


def resolve_device(setting: str, *, cuda_available: bool, device_count: int = 1) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``; explicit settings pass through (checked).

    Raises:
        OCRError: ``backend_unavailable`` for a CUDA device when CUDA is not available, or ``cuda:N`` naming a GPU
            this process cannot see (a Ray replica sees its own GPUs as ``cuda:0``...).
    """
    if setting == "auto":
        return "cuda" if cuda_available else "cpu"
    if setting.startswith("cuda"):
        if not cuda_available:
            raise OCRError("backend_unavailable", f"device {setting!r} configured but CUDA is not available")
        check_visible(setting, count=device_count, what="the DeepSeek transformers engine")
    return setting


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def classify_load_error(error: BaseException, *, ref: str, hint: str) -> OCRError:
    """What a failure while loading the checkpoint means: files (``models_missing``) or this machine
    (``backend_unavailable``: CUDA out of memory, a CUDA error, a setting transformers refuses)."""
    if isinstance(error, OCRError):
        return error
    detail = f"{type(error).__name__}: {str(error).strip().splitlines()[0][:300] if str(error).strip() else ''}"
    broken_file = "Safetensor" in type(error).__name__  # safetensors' own error: a truncated or corrupt weights file
    if isinstance(error, OSError) or broken_file or (isinstance(error, ValueError) and _UNREADABLE.search(str(error))):
        return OCRError("models_missing", f"cannot load {ref} ({detail}); download it with: {hint}")
    names = {cls.__name__ for cls in type(error).__mro__}
    if "OutOfMemoryError" in names:
        why = "the GPU has no room for the model (other processes on it? a smaller dtype?)"
    else:
        why = "the device or a setting (dtype, attn_implementation) refused it"
    return OCRError("backend_unavailable", f"cannot start the transformers engine on {ref} ({detail}): {why}")


class HFRunner:
    """DeepSeek-OCR-2 on transformers."""

    name = "transformers"

    def __init__(self, config: DeepSeekConfig, source: ModelSource) -> None:
        self.config = config
        self.source = source
        self.model: Any = None
        self.processor: Any = None
        self._device = "cpu"
        self._dtype = "float32"
        self._attention: dict[str, str] = {}
        self._lock = threading.Lock()  # one generate() at a time per model: batches are formed per call

    def load(self) -> None:
        """Load processor and model on the configured device.

        Raises:
            OCRError: ``models_missing`` or ``backend_unavailable`` (:func:`classify_load_error`), or
                ``backend_unavailable`` for a device this process cannot use.
        """
        import torch

        self._device = resolve_device(
            self.config.device,
            cuda_available=torch.cuda.is_available(),
            device_count=torch.cuda.device_count() if torch.cuda.is_available() else 0,
        )
        self._dtype = resolve_dtype(self.config.dtype, self._device)
        flash, flash_reason = flash_attention_status()
        attn_arg, self._attention = choose_attention(
            self.config.attn_implementation,
            cuda=self._device.startswith("cuda"),
            flash_available=flash,
            dtype=self._dtype,
            flash_reason=flash_reason,
        )
        common: dict[str, Any] = {"local_files_only": self.source.local_files_only}
        if self.config.revision and self.source.hub_id:
            common["revision"] = self.config.revision
        if self.config.download_dir:
            common["cache_dir"] = self.config.download_dir
        hint = download_hint(self.source.hub_id or "deepseek-community/DeepSeek-OCR-2")
        try:
            self.processor, self.model = load_pretrained(
                self.source.ref, device=self._device, dtype=self._dtype, attention=attn_arg, **common
            )
        except Exception as e:  # typed: the replica must stay up and say why, not be restarted in a loop
            self.close()
            typed = classify_load_error(e, ref=self.source.ref, hint=hint)
            logger.error("transformers engine failed to load: %s", typed.message, exc_info=e)
            raise typed from None
        if type(self.model).__name__ != "DeepseekOcr2ForConditionalGeneration":
            raise OCRError(
                "backend_unavailable",
                f"{self.source.ref} loaded as {type(self.model).__name__}; the transformers engine needs a native "
                "DeepSeek-OCR-2 checkpoint (deepseek-community/DeepSeek-OCR-2)",
            )
        logger.info("loaded %s on %s (%s, attention %s)", self.source.ref, self._device, self._dtype, self._attention)

    def adapt(self, spec: ModeSpec) -> ModeSpec:
        return processor_geometry(spec, self.processor)

    def generate(self, images: list[Image.Image], plan: RunPlan) -> list[Generation]:
        if self.model is None:
            raise OCRError("backend_unavailable", "the transformers engine is not started")
        out: list[Generation] = []
        with self._lock:
            for chunk in _chunks(images, self.config.hf_batch_size):
                out.extend(self._generate_batch(chunk, plan))
        return out

    def _generate_batch(self, images: list[Image.Image], plan: RunPlan) -> list[Generation]:
        guard = None
        if self.config.ngram_guard and plan.ngram_guard:
            guard = _guard_settings(self.config)
        return generate_batch(
            self.model,
            self.processor,
            images,
            prompt=plan.prompt,
            spec=plan.spec,
            max_new_tokens=plan.max_new_tokens,
            device=self._device,
            dtype=self._dtype,
            guard=guard,
        )

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Tokens of each text by the checkpoint's own tokenizer (no special tokens added)."""
        if self.processor is None:
            raise OCRError("backend_unavailable", "the transformers engine is not started")
        tokenizer = self.processor.tokenizer
        return [len(tokenizer.encode(t, add_special_tokens=False)) for t in texts]

    def device(self) -> str | None:
        return self._device

    def info(self) -> dict[str, Any]:
        import torch
        import transformers

        return {
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "dtype": self._dtype,
            "attn_implementation": dict(self._attention),
            "flash_attn": flash_attention_status()[1],
            "hf_batch_size": self.config.hf_batch_size,
            "ngram_guard": self.config.ngram_guard,
        }

    def close(self) -> None:
        self.model = None
        self.processor = None


def _guard_settings(config: DeepSeekConfig) -> NGramSettings:
    return NGramSettings(
        ngram_size=config.ngram_size, window_size=config.window_size, whitelist=frozenset(config.whitelist_token_ids)
    )


def _ngram_guard(prompt_len: int, config: DeepSeekConfig) -> Any:
    """The n-gram guard ``LogitsProcessor`` with the deployment's settings."""
    return ngram_guard(prompt_len, _guard_settings(config))
