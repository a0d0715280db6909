"""Runs an engine over a document and assembles the unified response.

Shared by every host of an engine (the Serve deployment, benchmarks, tests), so the response means the same
thing whoever produced it. Pages are rendered and processed ``engine.batch_pages`` at a time and their images
dropped once their boxes image is drawn, so a long PDF does not hold every page in memory.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator
from typing import Any

from backends.base import OCREngine
from shared.boxes import draw_boxes, png_base64
from shared.documents import PAGED_TYPES, Document, PageImage, page_sizes, rasterize_page, rasterize_pages
from shared.requests import RunRequest
from shared.schema import OCRResponse, PageResult, Timings, Usage

logger = logging.getLogger(__name__)


def _chunks(pages: Iterator[PageImage], size: int) -> Iterator[list[PageImage]]:
    while batch := list(itertools.islice(pages, size)):
        yield batch


def run_document(engine: OCREngine, doc: Document, request: RunRequest, *, backend: str) -> OCRResponse:
    """OCR ``doc`` with ``engine`` as ``request`` asks (carried whole from the router) and return the unified
    response.

    Raises:
        OCRError: bad options (``invalid_option``) or a page that cannot be decoded (``invalid_document``).
    """
    started = time.time()
    opts = engine.parse_options(request.options)
    wanted = request.output
    if doc.media_type in PAGED_TYPES and not engine.needs_pixels:
        batches = _chunks(iter(page_sizes(doc)), max(1, engine.batch_pages))
    elif doc.media_type in PAGED_TYPES:
        batches = _chunks(rasterize_pages(doc), max(1, engine.batch_pages))
    else:  # structured formats (DOCX, HTML...): one call, the engine reads doc.data itself
        batches = iter([[]])

    pages: list[PageResult] = []
    raws: list[Any] = []
    sources: list[str] = []
    warnings: list[str] = []
    model = None
    for batch in batches:
        out = engine.run(doc, batch, opts)
        model = out.model or model
        images = {p.index: p.image for p in batch}
        for result in out.pages:
            if wanted.include_boxes_image and result.index in images:
                image = images[result.index] or rasterize_page(doc, result.index).image
                if image is not None:
                    result.boxes_image = png_base64(draw_boxes(image, result.blocks))
            pages.append(result)
        if out.raw is not None:
            raws.append(out.raw)
        if out.source_markdown is not None:
            sources.append(out.source_markdown)
        warnings.extend(w for w in out.warnings if w not in warnings)  # batches repeat request-level warnings

    finished = time.time()
    vision = [p.usage.vision_tokens for p in pages if p.usage.vision_tokens is not None]
    output = [p.usage.output_tokens for p in pages if p.usage.output_tokens is not None]
    vision_total = sum(vision) if vision else None
    output_total = sum(output) if output else None
    raw_result: Any = None
    if wanted.include_raw:
        raw_result = raws[0] if len(raws) == 1 else raws
    return OCRResponse(
        request_id=request.request_id,
        backend=backend,
        model=model or engine.model_info(),
        document=doc.info(),
        markdown="\n\n".join(p.markdown for p in pages if p.markdown),
        source_markdown="\n\n".join(sources) if sources else None,
        pages=pages,
        raw_result=raw_result,
        timings=Timings(
            queue_s=round(max(0.0, started - request.received_at), 4),
            inference_s=round(finished - started, 4),
            total_s=round(finished - min(request.received_at, started), 4),
        ),
        usage=Usage(
            pages=len(pages),
            vision_tokens=vision_total,
            output_tokens=output_total,
            compression_ratio=round(output_total / vision_total, 6) if vision_total and output_total else None,
        ),
        warnings=warnings,
    )
