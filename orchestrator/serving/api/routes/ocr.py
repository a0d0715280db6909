"""``POST /v1/ocr``: one document, one backend, the unified response."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from orchestrator.jobs.idempotency import HEADER as IDEMPOTENCY_HEADER
from orchestrator.jobs.idempotency import REPLAYED_HEADER, check_key, tenant_of
from orchestrator.serving.api.deps import RequestIdDep, RouterDep, check_api_key, given_api_key
from orchestrator.serving.api.errors import BACKEND_ERRORS, DOCUMENT_ERRORS, documented
from orchestrator.serving.api.responses import json_response
from orchestrator.serving.api.uploads import read_upload, request_body
from shared.requests import OCRJSONRequest, OCROptions
from shared.schema import ErrorCode, OCRResponse

router = APIRouter(prefix="/v1", tags=["ocr"], dependencies=[Depends(check_api_key)])


@router.post(
    "/ocr",
    response_model=OCRResponse,
    responses=documented(*DOCUMENT_ERRORS, *BACKEND_ERRORS, ErrorCode.IDEMPOTENCY_KEY_REUSED),
    summary="OCR one document with one backend",
    openapi_extra=request_body(OCROptions, OCRJSONRequest),
)
async def ocr(request: Request, svc: RouterDep, rid: RequestIdDep) -> Response:
    key = check_key(request.headers.get(IDEMPOTENCY_HEADER))
    data, filename, opts = await read_upload(
        request, max_bytes=svc.settings.limits.max_bytes, model=OCROptions, json_model=OCRJSONRequest
    )
    if key is None:
        return json_response(await svc.ocr_service.ocr(data, filename, opts, rid))
    tenant = tenant_of(given_api_key(request))
    result, replayed = await svc.ocr_service.ocr_once(data, filename, opts, rid, tenant=tenant, key=key)
    return json_response(result, headers={REPLAYED_HEADER: "true"} if replayed else None)
