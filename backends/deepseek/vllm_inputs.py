"""Everything the vLLM runner feeds vLLM, built as plain data so it is tested without vLLM or a GPU.

The recommended settings come from vLLM's DeepSeek-OCR recipe and model source (``vllm/model_executor/models/
deepseek_ocr.py``): prefix caching and the multimodal processor cache off (every page is a new image),
``NGramPerReqLogitsProcessor`` registered on the engine and driven per request through
``SamplingParams.extra_args``, greedy decoding, and special tokens kept in the text because the grounding
tags are special tokens.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image

from backends.deepseek.config import DeepSeekConfig
from backends.deepseek.modes import ModeSpec, Variant, placeholder_tokens
from backends.deepseek.runtime import Generation

PROMPT_TEXT_TOKENS = 32
"""Upper estimate of the prompt's text tokens (BOS + preset wording); the image placeholders are counted exactly."""

_request_counter = itertools.count()


def engine_kwargs(config: DeepSeekConfig, model: str, *, logits_processors: Sequence[Any] = ()) -> dict[str, Any]:
    """Keyword arguments for ``AsyncEngineArgs`` (equivalently ``LLM(...)``).

    Args:
        config: The deployment's config.
        model: Local directory or hub id to load.
        logits_processors: The logits processor classes to register (``NGramPerReqLogitsProcessor``); the
            processor is per-request, switched on by ``extra_args`` in the sampling params.
    """
    kwargs: dict[str, Any] = {
        "model": model,
        "enable_prefix_caching": False,
        "mm_processor_cache_gb": 0,
        "max_model_len": config.max_model_len,
        "max_num_seqs": config.max_num_seqs,
        "gpu_memory_utilization": config.gpu_memory_utilization,
        "tensor_parallel_size": config.tensor_parallel_size,
        "enforce_eager": config.enforce_eager,
        "dtype": "auto" if config.dtype == "auto" else config.dtype,
        "limit_mm_per_prompt": {"image": 1},
    }
    if logits_processors:
        kwargs["logits_processors"] = list(logits_processors)
    if config.load_format != "auto":
        kwargs["load_format"] = config.load_format
    if config.revision:
        kwargs["revision"] = config.revision
    if config.download_dir:
        kwargs["download_dir"] = config.download_dir
    return kwargs


def logits_processor_args(config: DeepSeekConfig) -> dict[str, Any] | None:
    """``extra_args`` that switch the n-gram guard on for one request (None when the guard is off)."""
    if not config.ngram_guard:
        return None
    return {
        "ngram_size": config.ngram_size,
        "window_size": config.window_size,
        "whitelist_token_ids": set(config.whitelist_token_ids),
    }


def sampling_kwargs(config: DeepSeekConfig, max_tokens: int) -> dict[str, Any]:
    """Keyword arguments for ``SamplingParams``: greedy, special tokens kept, n-gram guard arguments."""
    kwargs: dict[str, Any] = {
        "temperature": 0.0,
        "max_tokens": max_tokens,
        "skip_special_tokens": False,
    }
    extra = logits_processor_args(config)
    if extra is not None:
        kwargs["extra_args"] = extra
    return kwargs


def token_budget(
    width: int, height: int, spec: ModeSpec, *, variant: Variant, max_new_tokens: int, max_model_len: int
) -> tuple[int, str | None]:
    """Output tokens a page may use so that image + prompt + output fit ``max_model_len``.

    The recipe asks for ``max_tokens=8192`` with ``max_model_len=8192``; a page's image alone takes up to ~1,000
    positions, so the budget is lowered to what is left, and the page is told when that happened.

    Returns:
        (max_tokens, warning or None).
    """
    prompt = placeholder_tokens(width, height, spec, variant=variant) + PROMPT_TEXT_TOKENS
    room = max_model_len - prompt
    if room < 1:
        return 1, f"context: the page's {prompt} prompt tokens leave no room in max_model_len={max_model_len}"
    if max_new_tokens <= room:
        return max_new_tokens, None
    return room, (
        f"context: max_new_tokens lowered from {max_new_tokens} to {room} so that the page's ~{prompt} prompt "
        f"tokens fit max_model_len={max_model_len}"
    )


@dataclass(frozen=True)
class PageRequest:
    """One page as a vLLM request.

    Attributes:
        request_id: Unique id across the replica (vLLM refuses duplicates among in-flight requests).
        position: Index of the page within the batch, to put results back in order.
        inputs: The prompt dict vLLM takes: ``{"prompt": ..., "multi_modal_data": {"image": PIL}}``.
        sampling: Keyword arguments for this page's ``SamplingParams``.
        warnings: Notes for this page (a lowered token budget).
    """

    request_id: str
    position: int
    inputs: dict[str, Any]
    sampling: dict[str, Any]
    warnings: tuple[str, ...] = ()


def build_requests(
    images: Sequence[Image.Image],
    *,
    prompt: str,
    spec: ModeSpec,
    variant: Variant,
    config: DeepSeekConfig,
    max_new_tokens: int,
    batch_id: str | None = None,
) -> list[PageRequest]:
    """One request per page, all to be submitted together so vLLM batches them (and other requests') pages.

    Args:
        images: The pages, RGB.
        prompt: Full prompt with ``<image>``.
        spec: Mode that runs (for the context budget).
        variant: ``ocr`` or ``ocr2``.
        config: Deployment config (sampling and context settings).
        max_new_tokens: Requested output cap per page.
        batch_id: Prefix of the request ids; a fresh one per call by default.
    """
    prefix = batch_id or f"ds-{next(_request_counter)}"
    requests = []
    for i, image in enumerate(images):
        budget, warning = token_budget(
            image.width,
            image.height,
            spec,
            variant=variant,
            max_new_tokens=max_new_tokens,
            max_model_len=config.max_model_len,
        )
        requests.append(
            PageRequest(
                request_id=f"{prefix}-{i}",
                position=i,
                inputs={"prompt": prompt, "multi_modal_data": {"image": image}},
                sampling=sampling_kwargs(config, budget),
                warnings=(warning,) if warning else (),
            )
        )
    return requests


def generation_from_output(output: Any) -> Generation:
    """A :class:`Generation` from a vLLM ``RequestOutput`` (read by attribute, so fakes work in tests)."""
    completion = output.outputs[0]
    token_ids = list(completion.token_ids or [])
    finish = completion.finish_reason or ("stop" if getattr(output, "finished", True) else "length")
    tokens = len(token_ids)
    if finish == "stop" and tokens:
        tokens -= 1  # the end-of-sequence token is in token_ids but is not content
    return Generation(text=completion.text, output_tokens=tokens, finish_reason=str(finish))


def collect(requests: Sequence[PageRequest], outputs: Mapping[str, Any]) -> list[Generation]:
    """Generations in page order from outputs keyed by request id.

    Raises:
        RuntimeError: a page has no final output (vLLM aborted it); a silent gap would shift pages.
    """
    missing = [r.request_id for r in requests if outputs.get(r.request_id) is None]
    if missing:
        raise RuntimeError(f"vLLM returned no output for request(s) {', '.join(missing)}")
    generations = []
    for r in sorted(requests, key=lambda r: r.position):
        gen = generation_from_output(outputs[r.request_id])
        gen.warnings.extend(r.warnings)
        generations.append(gen)
    return generations
