"""The asynchronous job API: submit a long document, poll its progress in pages, fetch the result."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from orchestrator.serving.api.deps import RequestIdDep, RouterDep, check_api_key
from orchestrator.serving.api.responses import json_response
from orchestrator.serving.api.routes.ocr import ERROR_RESPONSES
from orchestrator.serving.api.uploads import read_upload, request_body
from shared.requests import OCRJSONRequest, OCROptions
from shared.schema import JobPages, JobStatus, OCRResponse

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], dependencies=[Depends(check_api_key)])


def _with_result_url(request: Request, status: JobStatus) -> JobStatus:
    """The API, not the worker, knows where a result is served (paths relative to the app, as Location is)."""
    if status.state != "succeeded":
        return status
    return status.model_copy(update={"result_url": str(request.app.url_path_for("job_result", job_id=status.job_id))})


@router.post(
    "",
    status_code=202,
    response_model=JobStatus,
    responses=ERROR_RESPONSES,
    summary="Submit a document for asynchronous OCR (same fields as /v1/ocr); poll the returned job",
    openapi_extra=request_body(OCROptions, OCRJSONRequest),
)
async def submit(request: Request, svc: RouterDep, rid: RequestIdDep) -> Response:
    data, filename, opts = await read_upload(
        request, max_bytes=svc.settings.limits.max_bytes, model=OCROptions, json_model=OCRJSONRequest
    )
    status = await svc.submit_job(data, filename, opts, rid)
    location = str(request.app.url_path_for("job_status", job_id=status.job_id))
    return json_response(status, status_code=202, headers={"Location": location})


@router.get("/{job_id}", response_model=JobStatus, responses=ERROR_RESPONSES, summary="Progress of a job")
async def job_status(job_id: str, request: Request, svc: RouterDep) -> JobStatus:
    return _with_result_url(request, await svc.job(job_id))


@router.get(
    "/{job_id}/result",
    response_model=OCRResponse,
    responses={**ERROR_RESPONSES, 409: {"model": ERROR_RESPONSES[404]["model"], "description": "Job not finished"}},
    summary="Result of a job (409 job_not_finished until it has succeeded)",
)
async def job_result(job_id: str, svc: RouterDep) -> Response:
    return json_response(await svc.job_result(job_id))


@router.get(
    "/{job_id}/pages",
    response_model=JobPages,
    responses=ERROR_RESPONSES,
    summary="Pages a job has finished so far, from position `start` on (show results as they come)",
)
async def job_pages(
    job_id: str,
    svc: RouterDep,
    start: int = Query(default=0, ge=0, description="Skip the first `start` finished pages (those already seen)."),
) -> Response:
    return json_response(await svc.job_pages(job_id, start))
