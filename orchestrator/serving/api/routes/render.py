"""``POST /v1/render``: text in, page images out, with what they cost in vision tokens per resolution mode."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.responses import Response

from orchestrator.serving.api.deps import RequestIdDep, RouterDep, check_api_key
from orchestrator.serving.api.errors import BACKEND_ERRORS, documented
from orchestrator.serving.api.responses import json_response
from shared.requests import RenderRequest
from shared.schema import ErrorCode, RenderResponse

router = APIRouter(prefix="/v1", tags=["render"], dependencies=[Depends(check_api_key)])


@router.post(
    "/render",
    response_model=RenderResponse,
    responses=documented(ErrorCode.INVALID_OPTION, *BACKEND_ERRORS),
    summary="Render text into pages for a resolution mode: vision tokens per mode, text tokens, compression ratio",
)
async def render(req: RenderRequest, svc: RouterDep, rid: RequestIdDep) -> Response:
    return json_response(await svc.render_service.render(req, rid))
