"""The asynchronous job API: submit a long document, follow it (status, pages, events), cancel it, fetch the result."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response, StreamingResponse

from orchestrator.jobs.events import parse_last_event_id
from orchestrator.jobs.idempotency import HEADER as IDEMPOTENCY_HEADER
from orchestrator.jobs.idempotency import REPLAYED_HEADER, check_key, tenant_of
from orchestrator.serving.api.deps import RequestIdDep, RouterDep, check_api_key, given_api_key
from orchestrator.serving.api.errors import DOCUMENT_ERRORS, documented
from orchestrator.serving.api.responses import json_response
from orchestrator.serving.api.uploads import read_upload, request_body
from shared.errors import OCRError
from shared.requests import JobJSONRequest, JobOptions
from shared.schema import ErrorCode, JobPages, JobStatus, OCRResponse

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], dependencies=[Depends(check_api_key)])

JOB = ErrorCode.NOT_FOUND  # an unknown job, or no job API in this application
RESOLVE_ERRORS = (ErrorCode.UNKNOWN_BACKEND, ErrorCode.BACKEND_UNAVAILABLE)  # a job is queued, not run: no time-out


def with_urls(request: Request, status: JobStatus) -> JobStatus:
    """The API, not the job store, knows where things are served (paths relative to the app, as Location is)."""
    urls = {"events_url": str(request.app.url_path_for("job_events", job_id=status.job_id))}
    if status.state == "succeeded":
        urls["result_url"] = str(request.app.url_path_for("job_result", job_id=status.job_id))
    return status.model_copy(update=urls)


@router.post(
    "",
    status_code=202,
    response_model=JobStatus,
    responses=documented(*DOCUMENT_ERRORS, *RESOLVE_ERRORS, ErrorCode.IDEMPOTENCY_KEY_REUSED, JOB),
    summary="Submit a document for asynchronous OCR (the fields of /v1/ocr, and callback_url); follow the job",
    openapi_extra=request_body(JobOptions, JobJSONRequest),
)
async def submit(request: Request, svc: RouterDep, rid: RequestIdDep) -> Response:
    key = check_key(request.headers.get(IDEMPOTENCY_HEADER))
    data, filename, opts = await read_upload(
        request, max_bytes=svc.settings.limits.max_bytes, model=JobOptions, json_model=JobJSONRequest
    )
    status, replayed = await svc.job_proxy.submit(
        data, filename, opts, rid, tenant=tenant_of(given_api_key(request)), idempotency_key=key
    )
    location = str(request.app.url_path_for("job_status", job_id=status.job_id))
    headers = {"Location": location, **({REPLAYED_HEADER: "true"} if replayed else {})}
    return json_response(with_urls(request, status), status_code=202, headers=headers)


@router.get("/{job_id}", response_model=JobStatus, responses=documented(JOB), summary="Progress of a job")
async def job_status(job_id: str, request: Request, svc: RouterDep) -> Response:
    return json_response(with_urls(request, await svc.job_proxy.status(job_id)))


@router.delete(
    "/{job_id}",
    response_model=JobStatus,
    responses=documented(JOB, ErrorCode.JOB_FINISHED),
    summary="Cancel a job: no chunk starts after this; the pages finished stay readable (409 if it already ended)",
)
async def cancel_job(job_id: str, request: Request, svc: RouterDep) -> Response:
    return json_response(with_urls(request, await svc.job_proxy.cancel(job_id)))


@router.get(
    "/{job_id}/result",
    response_model=OCRResponse,
    responses=documented(JOB, ErrorCode.JOB_NOT_FINISHED, ErrorCode.JOB_CANCELLED),
    summary="Result of a job (409 job_not_finished until it has succeeded, job_cancelled if it was cancelled)",
)
async def job_result(job_id: str, svc: RouterDep) -> Response:
    return json_response(await svc.job_proxy.result(job_id))


@router.get(
    "/{job_id}/pages",
    response_model=JobPages,
    responses=documented(JOB, ErrorCode.INVALID_OPTION),
    summary="Pages a job has finished so far, in the order they finished, from position `start` on",
)
async def job_pages(
    job_id: str,
    svc: RouterDep,
    start: int = Query(default=0, ge=0, le=10**9, description="Skip the first `start` finished pages (those seen)."),
) -> Response:
    return json_response(await svc.job_proxy.pages(job_id, start))


@router.get(
    "/{job_id}/events",
    responses={
        **documented(JOB, ErrorCode.INVALID_OPTION),
        200: {"content": {"text/event-stream": {}}, "description": "Server-sent events: status, page, progress, end"},
    },
    summary="The job's progress and pages as server-sent events, until it ends (resume with Last-Event-ID)",
)
async def job_events(
    job_id: str,
    request: Request,
    svc: RouterDep,
    last_event_id: str | None = Query(
        default=None,
        description="Resume after this event id (what the Last-Event-ID header says, for clients "
        "that cannot set headers).",
    ),
) -> Response:
    try:
        after = parse_last_event_id(request.headers.get("last-event-id", last_event_id))
    except ValueError as e:
        raise OCRError(ErrorCode.INVALID_OPTION, str(e), accepted={"Last-Event-ID": "0 to 1000000000"}) from None
    stream = await svc.job_proxy.events(job_id, after, lambda status: with_urls(request, status))
    return StreamingResponse(
        stream,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
