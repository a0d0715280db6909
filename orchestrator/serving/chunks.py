"""The ``chunks`` of a ``/v1/ocr`` answer: cut once, by the router, from the final answer (after any cascade).

The cutting itself is :func:`shared.chunking.chunk_response` (pure, also used by the client on merged answers);
this module resolves the request's named tokenizer - a bundled encoding, or ``backend:<name>``, a deployed
backend's own model tokenizer asked over its handle - and runs the cut off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from deployments.backend import call_method
from shared.chunking import chunk_response
from shared.errors import OCRError
from shared.requests import ChunkingOptions
from shared.schema import ErrorCode, OCRResponse
from shared.tokens import BUNDLED_TOKENIZERS, NamedCounter, bundled_counter

logger = logging.getLogger("ray.serve")

BACKEND_PREFIX = "backend:"


def check_tokenizer(options: ChunkingOptions, backends: Sequence[str]) -> None:
    """Refuse an unknown tokenizer before any OCR work is done.

    Raises:
        OCRError: ``invalid_option`` naming the tokenizers that can be asked for.
    """
    if options.chunking == "none" or options.tokenizer in BUNDLED_TOKENIZERS:
        return
    name = options.tokenizer.removeprefix(BACKEND_PREFIX)
    if options.tokenizer.startswith(BACKEND_PREFIX) and name in backends:
        return
    raise OCRError(
        ErrorCode.INVALID_OPTION,
        f"unknown tokenizer {options.tokenizer!r}",
        accepted={"tokenizer": [*BUNDLED_TOKENIZERS, *(f"{BACKEND_PREFIX}{b}" for b in backends)]},
    )


async def add_chunks(
    result: OCRResponse, options: ChunkingOptions, backends: dict[str, Any], *, timeout_s: float
) -> None:
    """Fill ``result.chunks`` and ``result.chunking`` as ``options`` ask (nothing for ``chunking: none``).

    Args:
        result: The final answer of the request.
        options: The request's chunking fields.
        backends: The router's handles, for ``backend:<name>`` tokenizers.
        timeout_s: Time limit of each call to a backend's tokenizer.

    Raises:
        OCRError: the backend's tokenizer failing or absent (``invalid_option`` when it has none).
    """
    if options.chunking == "none":
        return
    if options.tokenizer in BUNDLED_TOKENIZERS:
        counter = bundled_counter(options.tokenizer)
    else:
        counter = await _backend_counter(result, options.tokenizer.removeprefix(BACKEND_PREFIX), backends, timeout_s)
    cut = await asyncio.to_thread(chunk_response, result, options, counter)
    if cut is not None:
        result.chunks, result.chunking = cut


async def _backend_counter(result: OCRResponse, name: str, backends: dict[str, Any], timeout_s: float) -> NamedCounter:
    """A counter asking backend ``name``'s tokenizer (answers cached per text: the cutter counts a text often).

    Its ``count`` blocks: it is called from the worker thread running the cut, and sends each batch to the event
    loop, where the handle lives.
    """
    loop = asyncio.get_running_loop()
    handle = backends[name]
    pages = [p.markdown for p in result.pages]
    first = await call_method(handle, name, "count_tokens", pages, timeout_s=timeout_s)
    cache: dict[str, int] = dict(zip(pages, first.counts))

    def count(texts: Sequence[str]) -> list[int]:
        missing = list(dict.fromkeys(t for t in texts if t not in cache))
        if missing:
            call = call_method(handle, name, "count_tokens", missing, timeout_s=timeout_s)
            answer = asyncio.run_coroutine_threadsafe(call, loop).result()
            cache.update(zip(missing, answer.counts))
        return [cache[t] for t in texts]

    return NamedCounter(f"{BACKEND_PREFIX}{name} ({first.tokenizer})", count)
