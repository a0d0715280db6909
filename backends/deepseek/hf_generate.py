"""DeepSeek-OCR-2 on transformers, the part that touches torch: attention choice, loading, one padded batch.

Kept free of the project's config and error types (no pydantic), so the exact code the transformers runner
(:mod:`backends.deepseek.hf_runner`) serves with is also what ``benchmarks/gpu_smoke.py`` runs on a GPU machine
that has torch and transformers and nothing else of this project's dependencies. torch and transformers are
imported inside the functions.

Attention: the composite model declares no flash-attention support (its SAM encoder uses a relative-position
bias), so requesting ``flash_attention_2`` for the whole model raises. The decoder - where the time goes - does
support it, so flash attention is requested for ``text_config`` only and the vision towers stay on sdpa. Flash
attention runs in float16/bfloat16 only: transformers 5.19 merely *warns* when the model's dtype is float32
(``_flash_attn_can_dispatch``) and the kernel then fails on every batch, so float32 never gets it here.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image

from backends.deepseek.modes import ModeSpec, with_geometry
from backends.deepseek.ngram import banned_next_tokens
from backends.deepseek.runner import Generation

logger = logging.getLogger(__name__)

FLASH = "flash_attention_2"
FLASH_DTYPES = frozenset({"float16", "bfloat16"})
"""dtypes flash-attn's kernels run in."""


@dataclass(frozen=True)
class NGramSettings:
    """The no-repeat n-gram guard's parameters (the same rule as vLLM's ``NGramPerReqLogitsProcessor``)."""

    ngram_size: int
    window_size: int
    whitelist: frozenset[int] = frozenset()


@functools.cache
def flash_attention_status() -> tuple[bool, str]:
    """Whether flash-attn can run here, and why not.

    Imports the package and its compiled extension (``flash_attn_2_cuda``): a wheel built for another torch or CUDA
    is on disk and passes ``find_spec`` (and transformers' own availability check), then fails with an undefined
    symbol when the model first needs it. Checked once per process.

    Returns:
        ``(True, "flash_attn X.Y importable")`` or ``(False, reason)``.
    """
    if importlib.util.find_spec("flash_attn") is None:
        return False, "flash_attn is not installed"
    try:
        module = importlib.import_module("flash_attn")
        importlib.import_module("flash_attn.flash_attn_interface")  # loads the CUDA extension
    except Exception as e:  # ImportError (undefined symbol, missing libcudart), OSError, RuntimeError
        return False, f"flash_attn is installed but does not import ({type(e).__name__}: {str(e)[:200]})"
    return True, f"flash_attn {getattr(module, '__version__', '?')} importable"


def choose_attention(
    requested: str, *, cuda: bool, flash_available: bool, dtype: str, flash_reason: str = ""
) -> tuple[str | dict[str, str], dict[str, str]]:
    """The ``attn_implementation`` argument for ``from_pretrained`` and what to report in health.

    Args:
        requested: The config's setting (auto, flash_attention_2, sdpa, eager).
        cuda: Whether the model runs on a CUDA device.
        flash_available: Whether flash-attn imports (:func:`flash_attention_status`).
        dtype: The weights' dtype (``bfloat16``, ``float16``, ``float32``): flash attention needs half precision.
        flash_reason: Why flash-attn is unavailable, for the note.

    Returns:
        (argument, report): the argument is a string, or a per-sub-config dict when the decoder uses flash
        attention; the report maps ``decoder`` / ``vision`` to implementations (and ``note`` on a fallback).
    """
    report: dict[str, str] = {}
    if requested in ("auto", FLASH):
        if cuda and flash_available and dtype in FLASH_DTYPES:
            arg = {"": "sdpa", "vision_config": "sdpa", "text_config": FLASH}
            return arg, {"decoder": FLASH, "vision": "sdpa"}
        if requested == FLASH:
            if not cuda:
                why = "the device is not CUDA"
            elif not flash_available:
                why = flash_reason or "flash_attn is not installed"
            else:
                why = f"it runs in float16/bfloat16 only and the model is {dtype}"
            report["note"] = f"{FLASH} requested but {why}; using sdpa"
            logger.warning(report["note"])
        requested = "sdpa"
    report.update({"decoder": requested, "vision": requested})
    return requested, report


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


def processor_geometry(spec: ModeSpec, processor: Any) -> ModeSpec:
    """``spec`` in the loaded processor's own geometry (identity for the real checkpoints; the tiny one uses
    128 / 96 px views), so token counts agree with what the processor produces."""
    ip = processor.image_processor
    size = ip.size["height"] if isinstance(ip.size, dict) else ip.size.height
    return with_geometry(
        spec,
        base_size=int(size),
        tile_size=int(ip.tile_size),
        patch_size=int(processor.patch_size),
        downsample_ratio=int(processor.downsample_ratio),
    )


def load_pretrained(ref: str, *, device: str, dtype: str, attention: str | dict[str, str], **common: Any) -> Any:
    """Processor and model of ``ref`` through the Auto classes, on ``device`` in ``dtype``, ready to generate.

    Raises:
        Whatever transformers and torch raise (``OSError`` for missing files, ``ValueError`` for a checkpoint
        they cannot read, ``torch.OutOfMemoryError`` on a full GPU); the runner types them.
    """
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(ref, **common)
    model: Any = AutoModelForImageTextToText.from_pretrained(
        ref, dtype=getattr(torch, dtype), attn_implementation=attention, **common
    )
    model.to(device).eval()
    processor.tokenizer.padding_side = "left"
    return processor, model


def ngram_guard(prompt_len: int, settings: NGramSettings) -> Any:
    """A ``LogitsProcessor`` applying :func:`banned_next_tokens` to each row's generated tokens (on any device)."""
    from transformers import LogitsProcessor

    class NGramGuard(LogitsProcessor):
        def __call__(self, input_ids: Any, scores: Any) -> Any:
            for b, row in enumerate(input_ids[:, prompt_len:].tolist()):
                banned = banned_next_tokens(
                    row, ngram_size=settings.ngram_size, window_size=settings.window_size, whitelist=settings.whitelist
                )
                if banned:
                    scores[b, sorted(banned)] = -float("inf")
            return scores

    return NGramGuard()


def generate_batch(
    model: Any,
    processor: Any,
    images: Sequence[Image.Image],
    *,
    prompt: str,
    spec: ModeSpec,
    max_new_tokens: int,
    device: str,
    dtype: str,
    guard: NGramSettings | None,
) -> list[Generation]:
    """One padded batch: every image with ``prompt``, greedy, left padding, the n-gram guard when given.

    Returns:
        One generation per image, in order (text with special tokens kept, the end-of-sequence marker included
        when it was generated).
    """
    import torch
    from transformers import LogitsProcessorList

    tokenizer = processor.tokenizer
    inputs = processor(
        images=list(images),
        text=[prompt] * len(images),
        return_tensors="pt",
        padding=True,
        **images_kwargs(spec),
    )
    inputs = inputs.to(device)
    for key in ("pixel_values", "pixel_values_local"):
        if key in inputs:
            inputs[key] = inputs[key].to(getattr(torch, dtype))
    prompt_len = inputs["input_ids"].shape[1]
    image_tokens = (inputs["input_ids"] == model.config.image_token_id).sum(dim=1).tolist()
    eos_id = tokenizer.eos_token_id
    processors = LogitsProcessorList()
    if guard is not None:
        processors.append(ngram_guard(prompt_len, guard))
    with torch.inference_mode():
        sequences = model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
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
                token_ids=content,
            )
        )
    return generations
