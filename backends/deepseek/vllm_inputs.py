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
from backends.deepseek.modes import ModeSpec, Variant, placeholder_tokens, vision_tokens
from backends.deepseek.prompts import PROMPT_TEXT_TOKENS
from backends.deepseek.runner import Generation

__all__ = [
    "PROMPT_TEXT_TOKENS",
    "PageRequest",
    "build_requests",
    "collect",
    "engine_kwargs",
    "lora_kwargs",
    "sampling_kwargs",
]

_request_counter = itertools.count()


def engine_kwargs(
    config: DeepSeekConfig,
    model: str,
    *,
    logits_processors: Sequence[Any] = (),
    extra_loras: int = 0,
    executor_backend: str | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``AsyncEngineArgs`` (equivalently ``LLM(...)``).

    Args:
        config: The deployment's config.
        model: Local directory or hub id to load.
        logits_processors: The logits processor classes to register (``NGramPerReqLogitsProcessor``); the
            processor is per-request, switched on by ``extra_args`` in the sampling params.
        extra_loras: LoRA slots beyond the configured adapters (see :func:`lora_kwargs`).
        executor_backend: vLLM's ``distributed_executor_backend`` (None: vLLM's choice; see
            :func:`backends.deepseek.vllm_compat.executor_backend`).
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
        "disable_log_stats": False,  # the scheduler's per-step stats feed health (pages running together)
    }
    if config.kv_cache_memory_gb is not None:
        kwargs["kv_cache_memory_bytes"] = int(config.kv_cache_memory_gb * 1024**3)
    kwargs.update(lora_kwargs(config, extra=extra_loras))
    kwargs["structured_outputs_config"] = dict(STRUCTURED_OUTPUTS_CONFIG)
    if logits_processors:
        kwargs["logits_processors"] = list(logits_processors)
    if config.load_format != "auto":
        kwargs["load_format"] = config.load_format
    if config.revision:
        kwargs["revision"] = config.revision
    if config.download_dir:
        kwargs["download_dir"] = config.download_dir
    if executor_backend is not None:
        kwargs["distributed_executor_backend"] = executor_backend
    return kwargs


STRUCTURED_OUTPUTS_CONFIG: dict[str, Any] = {"backend": "xgrammar", "disable_any_whitespace": True}
"""vLLM's ``StructuredOutputsConfig`` for extraction requests: xgrammar, and compact JSON. vLLM 0.32 reads
``disable_any_whitespace`` from the engine's config, not from the request, and accepts it only with an explicit
xgrammar or guidance backend; without it a model may pad the JSON with whitespace until ``max_tokens`` (seen with
random weights: 1,500 tokens of whitespace and an unclosed object)."""


def lora_kwargs(config: DeepSeekConfig, *, extra: int = 0) -> dict[str, Any]:
    """Multi-LoRA engine arguments when adapters are configured (none otherwise: LoRA costs memory and, on a CPU,
    turns vLLM's graph compilation off). ``extra``: slots beyond the configured adapters (the base model's zero
    adapter on a CPU, ``backends.deepseek.adapters.needs_null_adapter``)."""
    if not config.adapters:
        return {}
    count = len(config.adapters) + extra
    kwargs: dict[str, Any] = {
        "enable_lora": True,
        "max_loras": min(config.max_loras + extra, count),
        "max_lora_rank": config.max_lora_rank,
        "max_cpu_loras": max((config.max_cpu_loras or len(config.adapters)) + extra, config.max_loras + extra, count),
    }
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


def sampling_kwargs(
    config: DeepSeekConfig,
    max_tokens: int,
    *,
    ngram_guard: bool = True,
    json_schema: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``SamplingParams``: greedy, special tokens kept, n-gram guard arguments.

    Args:
        config: The deployment's config.
        max_tokens: Output cap for this page.
        ngram_guard: False when the request turned the guard off (the processor stays registered but is not
            switched on for this request: vLLM's processor acts only on requests whose ``extra_args`` name it).
        json_schema: Constrain the output to this JSON Schema (vLLM structured outputs). The runner turns the
            ``structured_outputs`` entry into vLLM's ``StructuredOutputsParams``; special tokens are then skipped,
            so the text is the JSON alone.
    """
    kwargs: dict[str, Any] = {
        "temperature": 0.0,
        "max_tokens": max_tokens,
        "skip_special_tokens": json_schema is not None,
    }
    if json_schema is not None:
        kwargs["structured_outputs"] = {"json": json_schema}
    extra = logits_processor_args(config) if ngram_guard else None
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
        inputs: The prompt as vLLM's ``TextPrompt``: ``{"prompt": ..., "multi_modal_data": {"image": PIL}}``;
            the runner renders it (:func:`backends.deepseek.vllm_compat.engine_input`) before submitting.
        sampling: Keyword arguments for this page's ``SamplingParams``.
        expected_positions: Decoder positions the image should take (our geometry, checked against vLLM's).
        vision_tokens: The page's vision tokens as the paper counts them, when vLLM agrees on the positions.
        warnings: Notes for this page (a lowered token budget).
        adapter: LoRA adapter name for this page (None: the base model).
    """

    request_id: str
    position: int
    inputs: dict[str, Any]
    sampling: dict[str, Any]
    expected_positions: int = 0
    vision_tokens: int = 0
    warnings: tuple[str, ...] = ()
    adapter: str | None = None


def build_requests(
    images: Sequence[Image.Image],
    *,
    prompt: str,
    spec: ModeSpec,
    variant: Variant,
    config: DeepSeekConfig,
    max_new_tokens: int,
    ngram_guard: bool = True,
    batch_id: str | None = None,
    adapter: str | None = None,
    json_schema: dict[str, Any] | None = None,
) -> list[PageRequest]:
    """One request per page, all to be submitted together so vLLM batches them (and other requests') pages.

    Args:
        images: The pages, RGB.
        prompt: Full prompt with ``<image>``.
        spec: Mode that runs (for the context budget).
        variant: ``ocr`` or ``ocr2``.
        config: Deployment config (sampling and context settings).
        max_new_tokens: Requested output cap per page.
        ngram_guard: Whether the n-gram guard is switched on for these pages.
        batch_id: Prefix of the request ids; a fresh one per call by default.
        adapter: LoRA adapter that generates these pages (None: the base model).
        json_schema: JSON Schema the output is constrained to (None: free text).
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
                sampling=sampling_kwargs(config, budget, ngram_guard=ngram_guard, json_schema=json_schema),
                expected_positions=placeholder_tokens(image.width, image.height, spec, variant=variant),
                vision_tokens=vision_tokens(image.width, image.height, spec),
                warnings=(warning,) if warning else (),
                adapter=adapter,
            )
        )
    return requests


def timeline(output: Any) -> dict[str, float] | None:
    """vLLM's own per-request timestamps (engine-core clock), when it tracked them.

    ``scheduled_ts`` is when the scheduler first ran the request, ``last_token_ts`` when its last token came
    out: two pages whose intervals overlap were in vLLM's running batch at the same time.
    """
    metrics = getattr(output, "metrics", None)
    if metrics is None:
        return None
    keys = ("queued_ts", "scheduled_ts", "first_token_ts", "last_token_ts")
    values = {k: float(getattr(metrics, k, 0.0) or 0.0) for k in keys}
    return values if any(values.values()) else None


def generation_from_output(output: Any, image_token_id: int | None = None) -> Generation:
    """A :class:`Generation` from a vLLM ``RequestOutput`` (read by attribute, so fakes work in tests).

    Args:
        output: The request's final ``RequestOutput``.
        image_token_id: The tokenizer's ``<image>`` id: the prompt positions vLLM filled with it are the
            page's image positions as vLLM received them.
    """
    completion = output.outputs[0]
    token_ids = list(completion.token_ids or [])
    finish = completion.finish_reason or ("stop" if getattr(output, "finished", True) else "length")
    tokens = len(token_ids)
    if finish == "stop" and tokens:
        tokens -= 1  # the end-of-sequence token is in token_ids but is not content
    prompt_ids = getattr(output, "prompt_token_ids", None)
    positions = None
    if prompt_ids is not None and image_token_id is not None:
        positions = sum(1 for t in prompt_ids if t == image_token_id)
    return Generation(
        text=completion.text,
        output_tokens=tokens,
        finish_reason=str(finish),
        prompt_tokens=len(prompt_ids) if prompt_ids is not None else None,
        image_positions=positions,
        timeline=timeline(output),
    )


def account_vision(gen: Generation, request: PageRequest) -> None:
    """Set the page's vision tokens from what vLLM received, and say so when it disagrees with our geometry.

    vLLM's count includes the separator (and, for OCR v1, one newline per row of queries) that the paper's
    vision-token figure leaves out. When vLLM's positions equal the geometry's, the page reports the paper's
    figure; otherwise it reports vLLM's count with a ``usage:`` warning (a vLLM whose tiling changed).
    """
    if gen.image_positions is None:
        return
    if gen.image_positions == request.expected_positions:
        gen.vision_tokens = request.vision_tokens
        return
    gen.vision_tokens = gen.image_positions
    gen.warnings.append(
        f"usage: vLLM gave the image {gen.image_positions} prompt positions where this engine's geometry expects "
        f"{request.expected_positions}; vision_tokens reports vLLM's count"
    )


def collect(
    requests: Sequence[PageRequest], outputs: Mapping[str, Any], image_token_id: int | None = None
) -> list[Generation]:
    """Generations in page order from outputs keyed by request id.

    Raises:
        RuntimeError: a page has no final output (vLLM aborted it); a silent gap would shift pages.
    """
    missing = [r.request_id for r in requests if outputs.get(r.request_id) is None]
    if missing:
        raise RuntimeError(f"vLLM returned no output for request(s) {', '.join(missing)}")
    generations = []
    for r in sorted(requests, key=lambda r: r.position):
        gen = generation_from_output(outputs[r.request_id], image_token_id)
        gen.warnings.extend(r.warnings)
        account_vision(gen, r)
        generations.append(gen)
    return generations
