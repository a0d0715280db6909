"""``POST /v1/render``'s answer from a rendering and its token counts: pages as PNG, vision tokens per mode.

Pure (no Ray): the router renders the text (:func:`shared.textrender.render_text`), asks a backend's tokenizer
for the text tokens (or takes :func:`shared.tokens.estimate_tokens`), and this module puts the figures together:
the compression ratio of each resolution mode is the input's text tokens over the pages' vision tokens, counted
with the models' own geometry as each engine declares it (:func:`backends.registry.vision_token_costs`) - the
ratio before any OCR.
"""

from __future__ import annotations

import base64
import io

from backends.registry import vision_token_costs
from shared.requests import RenderRequest
from shared.schema import ModeCost, RenderedPage, RenderResponse
from shared.textrender import Rendering


def png_bytes(rendering: Rendering, index: int, dpi: float) -> bytes:
    """Page ``index`` of a rendering as PNG bytes, its DPI written into the file (pHYs)."""
    buf = io.BytesIO()
    rendering.pages[index].image.save(buf, format="PNG", dpi=(dpi, dpi), optimize=True)
    return buf.getvalue()


def mode_costs(rendering: Rendering, text_tokens: int) -> list[ModeCost]:
    """Vision tokens of the rendered pages in every engine's modes, and the compression ratio of each."""
    costs = vision_token_costs([p.image.size for p in rendering.pages])
    for cost in costs:
        total = cost.vision_tokens
        cost.compression_ratio = round(text_tokens / total, 3) if total and text_tokens else None
    return costs


def render_response(
    request: RenderRequest,
    rendering: Rendering,
    *,
    request_id: str,
    text_tokens: int,
    page_tokens: list[int],
    tokenizer: str,
    warnings: list[str],
) -> RenderResponse:
    """The whole answer of ``POST /v1/render``.

    Args:
        request: What was asked.
        rendering: The pages drawn.
        request_id: The request's id.
        text_tokens: Text tokens of the whole input.
        page_tokens: Text tokens of each page's text.
        tokenizer: What counted them.
        warnings: Notes from rendering and counting.
    """
    pages = []
    for i, page in enumerate(rendering.pages):
        width, height = page.image.size
        png = base64.b64encode(png_bytes(rendering, i, request.dpi)).decode() if request.include_images else None
        pages.append(
            RenderedPage(
                index=i,
                width=width,
                height=height,
                dpi=request.dpi,
                text=page.text,
                lines=page.lines,
                text_tokens=page_tokens[i],
                png=png,
            )
        )
    return RenderResponse(
        request_id=request_id,
        mode=request.mode,
        font=f"{request.font} ({rendering.font_name})",
        font_size_px=rendering.font_size,
        margin_px=rendering.margin,
        text_tokens=text_tokens,
        tokenizer=tokenizer,
        characters=len(request.text),
        pages=pages,
        modes=mode_costs(rendering, text_tokens),
        warnings=[*rendering.warnings, *warnings],
    )
