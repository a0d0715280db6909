"""The transformers runner: DeepSeek-OCR-2 through the native classes, on a GPU or a CPU.

Loaded with the Auto classes (``AutoProcessor`` -> ``DeepseekOcr2Processor``, ``AutoModelForImageTextToText`` ->
``DeepseekOcr2ForConditionalGeneration``), exactly as for any hub checkpoint, so the tiny test checkpoint and the
real one take the same path. Pages are generated in padded batches of ``hf_batch_size`` (left padding, greedy,
the same no-repeat n-gram guard as vLLM).

Attention: the composite model declares no flash-attention support (its SAM encoder uses a relative-position
bias), so requesting ``flash_attention_2`` for the whole model raises. The decoder - where the time goes - does
support it, so flash attention is requested for ``text_config`` only and the vision towers stay on sdpa.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from typing import Any

from PIL import Image

from backends.deepseek.config import DeepSeekConfig
from backends.deepseek.modes import ModeSpec, with_geometry
from backends.deepseek.ngram import banned_next_tokens
from backends.deepseek.runtime import Generation, RunPlan
from backends.deepseek.source import ModelSource, download_hint
from shared.errors import OCRError

logger = logging.getLogger(__name__)


def flash_attn_available() -> bool:
    """Whether the ``flash_attn`` package is importable (a GPU extra)."""
    return importlib.util.find_spec("flash_attn") is not None


def choose_attention(
    requested: str, *, cuda: bool, flash_available: bool
) -> tuple[str | dict[str, str], dict[str, str]]:
    """The ``attn_implementation`` argument for ``from_pretrained`` and what to report in health.

    Args:
        requested: The config's setting (auto, flash_attention_2, sdpa, eager).
        cuda: Whether the model runs on a CUDA device.
        flash_available: Whether ``flash_attn`` is installed.

    Returns:
        (argument, report): the argument is a string, or a per-sub-config dict when the decoder uses flash
        attention; the report maps ``decoder`` / ``vision`` to implementations (and ``note`` on a fallback).
    """
    report: dict[str, str] = {}
    if requested in ("auto", "flash_attention_2"):
        if cuda and flash_available:
            arg = {"": "sdpa", "vision_config": "sdpa", "text_config": "flash_attention_2"}
            return arg, {"decoder": "flash_attention_2", "vision": "sdpa"}
        if requested == "flash_attention_2":
            why = "flash_attn is not installed" if not flash_available else "the device is not CUDA"
            report["note"] = f"flash_attention_2 requested but {why}; using sdpa"
            logger.warning(report["note"])
        requested = "sdpa"
    report.update({"decoder": requested, "vision": requested})
    return requested, report


def resolve_device(setting: str, *, cuda_available: bool) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``; explicit settings pass through (checked)."""
    if setting == "auto":
        return "cuda" if cuda_available else "cpu"
    if setting.startswith("cuda") and not cuda_available:
        raise OCRError("backend_unavailable", f"device {setting!r} configured but CUDA is not available")
    return setting


def resolve_dtype(setting: str, device: str) -> str:
    """``auto`` -> bfloat16 on CUDA, float32 on CPU (bfloat16 matmuls are slow on most CPUs)."""
    if setting != "auto":
        return setting
    return "bfloat16" if device.startswith("cuda") else "float32"


def images_kwargs(spec: ModeSpec) -> dict[str, Any]:
    """Processor arguments that make it produce ``spec``'s views.

    The native mode uses the processor's defaults (global view + 2-6 tiles). The global-only mode turns tiling
    off and sets tile and global size equal, so the view and the placeholder count agree (the processor sizes an
    untiled global view by ``tile_size`` but counts its tokens by ``size``).
    """
    if spec.tile_size is not None:
        return {"min_patches": spec.min_tiles, "max_patches": spec.max_tiles}
    side = spec.base_size
    return {"crop_to_patches": False, "tile_size": side, "size": {"height": side, "width": side}}


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


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
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self._device = resolve_device(self.config.device, cuda_available=torch.cuda.is_available())
        self._dtype = resolve_dtype(self.config.dtype, self._device)
        attn_arg, self._attention = choose_attention(
            self.config.attn_implementation,
            cuda=self._device.startswith("cuda"),
            flash_available=flash_attn_available(),
        )
        common: dict[str, Any] = {"local_files_only": self.source.local_files_only}
        if self.config.revision and self.source.hub_id:
            common["revision"] = self.config.revision
        if self.config.download_dir:
            common["cache_dir"] = self.config.download_dir
        try:
            self.processor = AutoProcessor.from_pretrained(self.source.ref, **common)
            self.model = AutoModelForImageTextToText.from_pretrained(
                self.source.ref, dtype=getattr(torch, self._dtype), attn_implementation=attn_arg, **common
            )
        except OSError as e:
            hint = download_hint(self.source.hub_id or "deepseek-community/DeepSeek-OCR-2")
            raise OCRError("models_missing", f"cannot load {self.source.ref} ({e}); download it with: {hint}") from None
        if type(self.model).__name__ != "DeepseekOcr2ForConditionalGeneration":
            raise OCRError(
                "backend_unavailable",
                f"{self.source.ref} loaded as {type(self.model).__name__}; the transformers engine needs a native "
                "DeepSeek-OCR-2 checkpoint (deepseek-community/DeepSeek-OCR-2)",
            )
        self.model.to(self._device).eval()
        self.processor.tokenizer.padding_side = "left"
        logger.info("loaded %s on %s (%s, attention %s)", self.source.ref, self._device, self._dtype, self._attention)

    def adapt(self, spec: ModeSpec) -> ModeSpec:
        ip = self.processor.image_processor
        size = ip.size["height"] if isinstance(ip.size, dict) else ip.size.height
        return with_geometry(
            spec,
            base_size=int(size),
            tile_size=int(ip.tile_size),
            patch_size=int(self.processor.patch_size),
            downsample_ratio=int(self.processor.downsample_ratio),
        )

    def generate(self, images: list[Image.Image], plan: RunPlan) -> list[Generation]:
        if self.model is None:
            raise OCRError("backend_unavailable", "the transformers engine is not started")
        out: list[Generation] = []
        with self._lock:
            for chunk in _chunks(images, self.config.hf_batch_size):
                out.extend(self._generate_batch(chunk, plan))
        return out

    def _generate_batch(self, images: list[Image.Image], plan: RunPlan) -> list[Generation]:
        import torch
        from transformers import LogitsProcessorList

        tokenizer = self.processor.tokenizer
        inputs = self.processor(
            images=images,
            text=[plan.prompt] * len(images),
            return_tensors="pt",
            padding=True,
            **images_kwargs(plan.spec),
        )
        inputs = inputs.to(self._device)
        for key in ("pixel_values", "pixel_values_local"):
            if key in inputs:
                inputs[key] = inputs[key].to(getattr(torch, self._dtype))
        prompt_len = inputs["input_ids"].shape[1]
        image_tokens = (inputs["input_ids"] == self.model.config.image_token_id).sum(dim=1).tolist()
        eos_id = tokenizer.eos_token_id
        processors = LogitsProcessorList()
        if self.config.ngram_guard and plan.ngram_guard:
            processors.append(_ngram_guard(prompt_len, self.config))
        with torch.inference_mode():
            sequences = self.model.generate(
                **inputs,
                max_new_tokens=plan.max_new_tokens,
                do_sample=False,
                eos_token_id=eos_id,
                pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_id,
                logits_processor=processors,
            )
        generations = []
        for row, n_image in zip(sequences[:, prompt_len:].tolist(), image_tokens, strict=True):
            finished = eos_id in row
            content = row[: row.index(eos_id)] if finished else row
            text = tokenizer.decode(content + ([eos_id] if finished else []), skip_special_tokens=False)
            generations.append(
                Generation(
                    text=text,
                    output_tokens=len(content),
                    finish_reason="stop" if finished else "length",
                    vision_tokens=max(0, int(n_image) - 1),  # minus the view separator
                )
            )
        return generations

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
            "flash_attn_installed": flash_attn_available(),
            "hf_batch_size": self.config.hf_batch_size,
            "ngram_guard": self.config.ngram_guard,
        }

    def close(self) -> None:
        self.model = None
        self.processor = None


def _ngram_guard(prompt_len: int, config: DeepSeekConfig) -> Any:
    """A ``LogitsProcessor`` applying :func:`banned_next_tokens` to each row's generated tokens."""
    from transformers import LogitsProcessor

    whitelist = frozenset(config.whitelist_token_ids)

    class NGramGuard(LogitsProcessor):
        def __call__(self, input_ids: Any, scores: Any) -> Any:
            for b, row in enumerate(input_ids[:, prompt_len:].tolist()):
                banned = banned_next_tokens(
                    row, ngram_size=config.ngram_size, window_size=config.window_size, whitelist=whitelist
                )
                if banned:
                    scores[b, sorted(banned)] = -float("inf")
            return scores

    return NGramGuard()
