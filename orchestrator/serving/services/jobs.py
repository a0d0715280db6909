"""``/v1/jobs``: the router's side of asynchronous jobs (validate and resolve now; the job store and queue,
:mod:`orchestrator.jobs.service`, do the rest)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

from orchestrator.jobs import idempotency
from orchestrator.jobs.service import JobService
from orchestrator.serving.directory import BackendDirectory
from orchestrator.serving.intake import validate
from shared.errors import OCRError
from shared.requests import JobOptions, RunRequest
from shared.schema import ErrorCode, JobPages, JobStatus, OCRResponse


class JobProxy:
    """Submits, follows and cancels jobs; answers ``not_found`` for all of it when the job API is not deployed."""

    def __init__(self, directory: BackendDirectory, jobs: JobService | None) -> None:
        self.directory = directory
        self.settings = directory.settings
        self.jobs = jobs

    async def submit(
        self,
        data: bytes,
        filename: str,
        opts: JobOptions,
        request_id: str,
        *,
        tenant: str = "",
        idempotency_key: str | None = None,
    ) -> tuple[JobStatus, bool]:
        """Validate now, process later through the job queue; returns (the job's status, whether it was a replay
        of an earlier request with the same Idempotency-Key)."""
        jobs = self._jobs()
        limits = self.settings.limits
        doc = await asyncio.to_thread(
            validate, limits, data, filename, pages=opts.pages, dpi=opts.dpi, max_pages=limits.max_job_pages
        )
        requested = opts.backend or self.settings.default_backend
        if requested in self.settings.cascades:
            raise OCRError(
                ErrorCode.INVALID_OPTION,
                f"{requested!r} is a cascade, which answers synchronously (POST /v1/ocr); a job needs a backend",
                accepted=sorted(self.directory.backends),
            )
        name = await self.directory.resolve(requested, doc.media_type, [])
        run = RunRequest.of(opts, request_id=request_id, received_at=time.time(), options=opts.options)
        fp = idempotency.fingerprint("jobs", doc.sha256, filename, opts.model_dump()) if idempotency_key else None
        return await jobs.submit(
            doc,
            name,
            run,
            callback_url=opts.callback_url,
            tenant=tenant,
            idempotency_key=idempotency_key,
            fingerprint=fp,
        )

    async def status(self, job_id: str) -> JobStatus:
        return await self._jobs().status(job_id)

    async def result(self, job_id: str) -> OCRResponse:
        return await self._jobs().result(job_id)

    async def pages(self, job_id: str, start: int = 0) -> JobPages:
        """Pages a job has finished so far, from position ``start`` on (for clients showing them as they come)."""
        return await self._jobs().pages(job_id, start)

    async def cancel(self, job_id: str) -> JobStatus:
        return await self._jobs().cancel(job_id)

    async def events(self, job_id: str, after: int, decorate: Callable[[JobStatus], JobStatus]) -> AsyncIterator[bytes]:
        return await self._jobs().events(job_id, after, decorate)

    def _jobs(self) -> JobService:
        if self.jobs is None:
            raise OCRError(ErrorCode.NOT_FOUND, "the job API is not deployed in this application")
        return self.jobs
