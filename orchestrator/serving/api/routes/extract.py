"""``POST /v1/extract``: a document's fields as JSON, constrained to a JSON Schema (or a shipped preset)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from orchestrator.serving.api.deps import RequestIdDep, RouterDep, check_api_key
from orchestrator.serving.api.errors import BACKEND_ERRORS, DOCUMENT_ERRORS, documented
from orchestrator.serving.api.responses import json_response
from orchestrator.serving.api.uploads import read_upload, request_body
from shared.requests import ExtractJSONRequest, ExtractOptions
from shared.schema import ExtractResponse

router = APIRouter(prefix="/v1", tags=["extract"], dependencies=[Depends(check_api_key)])


@router.post(
    "/extract",
    response_model=ExtractResponse,
    responses=documented(*DOCUMENT_ERRORS, *BACKEND_ERRORS),
    summary="Extract fields as JSON constrained to a schema (on a backend whose capabilities say it extracts), "
    "with the OCR for audit",
    openapi_extra=request_body(ExtractOptions, ExtractJSONRequest),
)
async def extract(request: Request, svc: RouterDep, rid: RequestIdDep) -> Response:
    data, filename, opts = await read_upload(
        request, max_bytes=svc.settings.limits.max_bytes, model=ExtractOptions, json_model=ExtractJSONRequest
    )
    return json_response(await svc.extract_service.extract(data, filename, opts, rid))
