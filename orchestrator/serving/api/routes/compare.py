"""``POST /v1/compare``: one document through several backends at once, with their agreement."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from orchestrator.serving.api.deps import RequestIdDep, RouterDep, check_api_key
from orchestrator.serving.api.errors import DOCUMENT_ERRORS, documented
from orchestrator.serving.api.responses import json_response
from orchestrator.serving.api.uploads import read_upload, request_body
from shared.requests import CompareJSONRequest, CompareOptions
from shared.schema import CompareResponse, ErrorCode

router = APIRouter(prefix="/v1", tags=["compare"], dependencies=[Depends(check_api_key)])


@router.post(
    "/compare",
    response_model=CompareResponse,
    responses=documented(*DOCUMENT_ERRORS, ErrorCode.UNKNOWN_BACKEND),
    summary="Run one document through several backends concurrently and compare their texts",
    openapi_extra=request_body(CompareOptions, CompareJSONRequest),
)
async def compare(request: Request, svc: RouterDep, rid: RequestIdDep) -> Response:
    data, filename, opts = await read_upload(
        request, max_bytes=svc.settings.limits.max_bytes, model=CompareOptions, json_model=CompareJSONRequest
    )
    return json_response(await svc.compare_service.compare(data, filename, opts, rid))
