"""One response from the responses of consecutive page chunks of one document.

Used wherever a document is processed a chunk of pages at a time: the client (progress per chunk) and the job
runner (progress recorded per chunk).
"""

from __future__ import annotations

from shared.schema import OCRResponse, Usage


def merge_responses(parts: list[OCRResponse]) -> OCRResponse:
    """One response from the responses of consecutive page chunks of one document."""
    first = parts[0]
    pages = [p for part in parts for p in part.pages]

    def total(attr: str) -> int | None:
        values = [getattr(p.usage, attr) for p in parts if getattr(p.usage, attr) is not None]
        return sum(values) if values else None

    vision, output = total("vision_tokens"), total("output_tokens")
    merged = first.model_copy(deep=True)
    merged.pages = pages
    merged.markdown = "\n\n".join(p.markdown for p in parts if p.markdown)
    sources = [p.source_markdown for p in parts if p.source_markdown]
    merged.source_markdown = "\n\n".join(sources) if sources else None
    merged.document.pages_processed = [i for p in parts for i in p.document.pages_processed]
    merged.raw_result = [p.raw_result for p in parts] if any(p.raw_result is not None for p in parts) else None
    merged.timings.queue_s = round(sum(p.timings.queue_s for p in parts), 4)
    merged.timings.inference_s = round(sum(p.timings.inference_s for p in parts), 4)
    merged.timings.total_s = round(sum(p.timings.total_s for p in parts), 4)
    merged.usage = Usage(
        pages=len(pages),
        vision_tokens=vision,
        output_tokens=output,
        compression_ratio=round(output / vision, 6) if vision and output else None,
    )
    merged.warnings = [w for p in parts for w in p.warnings]
    return merged
