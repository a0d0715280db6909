"""``POST /v1/page-image``: one page of a document as a plain PNG, for viewers that draw blocks over it."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from orchestrator.serving.api.deps import RouterDep, check_api_key
from orchestrator.serving.api.errors import DOCUMENT_ERRORS, documented
from orchestrator.serving.api.uploads import read_upload, request_body
from orchestrator.serving.preview import page_png
from shared.requests import PageImageJSONRequest, PageImageOptions

router = APIRouter(prefix="/v1", tags=["pages"], dependencies=[Depends(check_api_key)])


@router.post(
    "/page-image",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "The page as PNG"}, **documented(*DOCUMENT_ERRORS)},
    summary="Render one page of a PDF or image as the backends see it (plain PNG, no boxes)",
    openapi_extra=request_body(PageImageOptions, PageImageJSONRequest),
)
async def page_image(request: Request, svc: RouterDep) -> Response:
    limits = svc.settings.limits
    data, filename, opts = await read_upload(
        request, max_bytes=limits.max_bytes, model=PageImageOptions, json_model=PageImageJSONRequest
    )
    png = await asyncio.to_thread(page_png, data, filename, page=opts.page, dpi=opts.dpi, limits=limits)
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})
