"""OCR responses made by hand for unit tests: pages of blocks with boxes, the markdown the engines would write."""

from __future__ import annotations

from shared.boxes import make_block
from shared.schema import DocumentInfo, ModelInfo, OCRResponse, PageResult, PageUsage, Usage

WIDTH, HEIGHT = 1000, 1400


def make_response(
    pages: list[list[tuple[str, str, str]]],
    *,
    backend: str = "fake",
    request_id: str = "t",
    tokens: tuple[int, int] | None = None,
    warnings: list[str] | None = None,
) -> OCRResponse:
    """A response from pages given as (block type, block text, the block's markdown - '' when left out of it).

    Args:
        pages: Blocks of each page, top to bottom.
        backend: Who answered.
        request_id: The response's request id.
        tokens: (vision, output) tokens of each page, as a DeepSeek engine reports them; None: unknown.
        warnings: Warnings of the first page.
    """
    results = []
    for index, blocks in enumerate(pages):
        schema_blocks = []
        parts = []
        y = 20.0
        for type_, text, md in blocks:
            schema_blocks.append(make_block(type_, text, [40, y, WIDTH - 40, y + 30], width=WIDTH, height=HEIGHT))
            y = min(y + 40, HEIGHT - 40)
            if md:
                parts.append(md)
        usage = PageUsage(vision_tokens=tokens[0], output_tokens=tokens[1]) if tokens else PageUsage()
        results.append(
            PageResult(
                index=index,
                width=WIDTH,
                height=HEIGHT,
                markdown="\n\n".join(parts),
                blocks=schema_blocks,
                usage=usage,
                warnings=list(warnings or []) if index == 0 else [],
            )
        )
    return OCRResponse(
        request_id=request_id,
        backend=backend,
        model=ModelInfo(id="fake-model", engine="none"),
        document=DocumentInfo(
            name="d",
            media_type="image/png",
            size_bytes=1,
            sha256="0",
            page_count=len(pages),
            pages_processed=list(range(len(pages))),
        ),
        markdown="\n\n".join(p.markdown for p in results if p.markdown),
        pages=results,
        usage=Usage(
            pages=len(pages),
            vision_tokens=tokens[0] * len(pages) if tokens else None,
            output_tokens=tokens[1] * len(pages) if tokens else None,
        ),
    )
