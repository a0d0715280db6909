"""``POST /v1/render``: text drawn into pages, with vision tokens per resolution mode and the text's tokens."""

from __future__ import annotations

import asyncio

from deployments.backend import call_method
from orchestrator.serving.directory import BackendDirectory, capabilities_of
from orchestrator.serving.render_answer import render_response
from shared.errors import OCRError
from shared.requests import RenderRequest
from shared.schema import RenderResponse
from shared.textrender import render_text
from shared.tokens import ESTIMATE_NAME, estimate_tokens


class RenderService:
    """Renders text (no backend needed) and counts its tokens with a backend's tokenizer when one can."""

    def __init__(self, directory: BackendDirectory) -> None:
        self.directory = directory

    async def render(self, req: RenderRequest, request_id: str) -> RenderResponse:
        """Text drawn into pages for a resolution mode, with vision tokens per mode and the input's text tokens.

        Raises:
            OCRError: bad rendering options or text that needs too many pages (400); a named backend that is not
                deployed (404) or has no tokenizer (400).
        """
        rendering = await asyncio.to_thread(
            render_text,
            req.text,
            mode=req.mode,
            font=req.font,
            font_size=req.font_size_px,
            margin=req.margin_px,
            dpi=req.dpi,
            max_pages=req.max_pages,
        )
        texts = [req.text, *(p.text for p in rendering.pages)]
        counts, tokenizer, warnings = await self.count_tokens(texts, req.backend)
        return await asyncio.to_thread(
            render_response,
            req,
            rendering,
            request_id=request_id,
            text_tokens=counts[0],
            page_tokens=counts[1:],
            tokenizer=tokenizer,
            warnings=warnings,
        )

    async def count_tokens(self, texts: list[str], requested: str | None) -> tuple[list[int], str, list[str]]:
        """Text tokens by a model's own tokenizer (the named backend, else the first ready one that has one), or
        the documented estimate when none is deployed. Returns (counts, tokenizer description, warnings)."""
        timeout_s = self.directory.timeout_s(None)
        if requested is not None:
            handle = self.directory.handle(self.directory.require(requested))
            answer = await call_method(handle, requested, "count_tokens", texts, timeout_s=timeout_s)
            return answer.counts, f"backend:{requested} ({answer.tokenizer})", []
        statuses = await self.directory.statuses()
        warnings: list[str] = []
        for name in self.directory.auto_rule():
            status = statuses.get(name)
            if status is None or status.status != "ready" or not capabilities_of(status).counts_tokens:
                continue
            try:
                answer = await call_method(
                    self.directory.handle(name), name, "count_tokens", texts, timeout_s=timeout_s
                )
            except OCRError as e:
                warnings.append(f"the tokenizer of {name!r} failed ({e.code}); text tokens are the estimate")
                break
            return answer.counts, f"backend:{name} ({answer.tokenizer})", warnings
        return [estimate_tokens(t) for t in texts], ESTIMATE_NAME, warnings
