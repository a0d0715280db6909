"""The asynchronous job API: submit a long document, poll its progress in pages, fetch the result."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from orchestrator.api.deps import RequestIdDep, RouterDep, check_api_key
from orchestrator.api.routes.ocr import ERROR_RESPONSES
from orchestrator.api.uploads import read_upload, request_body
from orchestrator.jobs import JobStatus
from shared.requests import OCRJSONRequest, OCROptions
from shared.schema import OCRResponse

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], dependencies=[Depends(check_api_key)])


@router.post(
    "",
    status_code=202,
    response_model=JobStatus,
    responses=ERROR_RESPONSES,
    summary="Submit a document for asynchronous OCR (same fields as /v1/ocr); poll the returned job",
    openapi_extra=request_body(OCROptions, OCRJSONRequest),
)
async def submit(request: Request, svc: RouterDep, rid: RequestIdDep) -> JSONResponse:
    data, filename, opts = await read_upload(
        request, max_bytes=svc.settings.limits.max_bytes, model=OCROptions, json_model=OCRJSONRequest
    )
    status = await svc.submit_job(data, filename, opts, rid)
    return JSONResponse(
        status.model_dump(mode="json"), status_code=202, headers={"Location": f"/v1/jobs/{status.job_id}"}
    )


@router.get("/{job_id}", response_model=JobStatus, responses=ERROR_RESPONSES, summary="Progress of a job")
async def status(job_id: str, svc: RouterDep) -> JobStatus:
    return await svc.job(job_id)


@router.get("/{job_id}/result", response_model=OCRResponse, responses=ERROR_RESPONSES, summary="Result of a job")
async def result(job_id: str, svc: RouterDep) -> OCRResponse:
    return await svc.job(job_id, result=True)
