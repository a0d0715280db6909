"""One response from several responses to parts of the same document.

Two cases, one set of rules for what adds up: consecutive page chunks (the client's progress per chunk, the job
runner's progress per chunk) are concatenated; a cascade's second answer replaces some pages of the first. Either
way the compute of every part was spent and is summed, and token figures follow the pages that are kept.
"""

from __future__ import annotations

from shared.schema import ComputeUsage, OCRResponse, PageResult, Usage


def _usage(pages: list[PageResult], parts: list[OCRResponse]) -> Usage:
    """Token figures of the pages kept; compute of every part (all of it was spent)."""
    vision = [p.usage.vision_tokens for p in pages if p.usage.vision_tokens is not None]
    output = [p.usage.output_tokens for p in pages if p.usage.output_tokens is not None]
    v, o = (sum(vision) if vision else None), (sum(output) if output else None)
    computes = [p.usage.compute for p in parts if p.usage.compute is not None]
    compute = None
    if computes:
        compute = ComputeUsage(
            cpu_seconds=round(sum(c.cpu_seconds for c in computes), 4),
            gpu_seconds=round(sum(c.gpu_seconds for c in computes), 4),
        )
    return Usage(
        pages=len(pages),
        vision_tokens=v,
        output_tokens=o,
        compression_ratio=round(o / v, 6) if v and o else None,
        compute=compute,
    )


def merge_responses(parts: list[OCRResponse]) -> OCRResponse:
    """One response from the responses of consecutive page chunks of one document."""
    pages = [p for part in parts for p in part.pages]
    merged = parts[0].model_copy(deep=True)
    merged.pages = pages
    merged.markdown = "\n\n".join(p.markdown for p in parts if p.markdown)
    sources = [p.source_markdown for p in parts if p.source_markdown]
    merged.source_markdown = "\n\n".join(sources) if sources else None
    merged.document.pages_processed = [i for p in parts for i in p.document.pages_processed]
    merged.raw_result = [p.raw_result for p in parts] if any(p.raw_result is not None for p in parts) else None
    merged.timings.queue_s = round(sum(p.timings.queue_s for p in parts), 4)
    merged.timings.inference_s = round(sum(p.timings.inference_s for p in parts), 4)
    merged.timings.total_s = round(sum(p.timings.total_s for p in parts), 4)
    merged.usage = _usage(pages, parts)
    merged.warnings = [w for p in parts for w in p.warnings]
    return merged


def replace_pages(base: OCRResponse, replacement: OCRResponse) -> OCRResponse:
    """``base`` with the pages ``replacement`` answered swapped in (matched by page index), and those it answered
    that ``base`` has not added, in page order.

    The engines' own texts (``source_markdown``) can no longer be told apart page by page, so the merged answer
    carries none; ``raw_result`` holds both answers' when either has one.
    """
    by_index = {p.index: p for p in base.pages} | {p.index: p for p in replacement.pages}
    order = sorted(by_index)
    merged = base.model_copy(deep=True)
    merged.pages = [by_index[i].model_copy(deep=True) for i in order]
    merged.document.pages_processed = order
    merged.markdown = "\n\n".join(p.markdown for p in merged.pages if p.markdown)
    merged.source_markdown = None
    if base.raw_result is not None or replacement.raw_result is not None:
        merged.raw_result = [base.raw_result, replacement.raw_result]
    merged.timings.inference_s = round(base.timings.inference_s + replacement.timings.inference_s, 4)
    merged.usage = _usage(merged.pages, [base, replacement])
    merged.warnings = [*base.warnings, *(w for w in replacement.warnings if w not in base.warnings)]
    return merged
