"""The ``jobs`` deployment: runs asynchronous jobs chunk by chunk against the backend handles, keeps their state.

A 300-page PDF should not hold an HTTP request open for half an hour. The router validates the document and hands
it here; this replica sends it to the backend a chunk of pages at a time and records progress after each chunk.
Job state lives in this deployment (mirrored to disk by :class:`~orchestrator.jobs.store.JobStore`), not in a
router replica, so a router restart between submit and result loses nothing. Answers cross to the router as
values (``JobStatus | OCRResponse | ErrorDetail``), like the backends'.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from typing import Any

from deployments.backend import call_backend
from orchestrator.jobs.settings import JobSettings
from orchestrator.jobs.store import JobStore
from shared.documents import Document
from shared.errors import OCRError
from shared.merge import merge_responses
from shared.requests import RunRequest
from shared.schema import ErrorCode, ErrorDetail, JobPages, JobStatus, OCRResponse, PageResult

logger = logging.getLogger("ray.serve")


class JobWorker:
    """Runs jobs in the background of one replica; answers status and results by id."""

    def __init__(self, backends: dict[str, Any], settings: JobSettings | dict[str, Any] | None = None) -> None:
        self.backends = dict(backends)
        self.settings = settings if isinstance(settings, JobSettings) else JobSettings.model_validate(settings or {})
        self.store = JobStore(self.settings.state_dir)
        self.tasks: dict[str, asyncio.Task] = {}
        self.partial: dict[str, list[PageResult]] = {}
        """Pages of unfinished (or failed) jobs done so far, for :meth:`pages`; the same objects the chunks'
        responses hold, so keeping them costs no copy."""

    async def submit(self, backend: str, doc: Document, run: RunRequest) -> JobStatus:
        """Register a job and start it in the background; returns at once."""
        self.store.prune(self.settings.keep_s)
        for gone in set(self.partial) - set(self.store.status):
            del self.partial[gone]
        now = time.time()
        status = JobStatus(
            job_id=uuid.uuid4().hex,
            state="queued",
            backend=backend,
            pages_total=len(doc.page_indices),
            created_at=now,
            updated_at=now,
        )
        self.store.put(status)
        self.tasks[status.job_id] = asyncio.get_running_loop().create_task(self._run(status, doc, run))
        return status

    async def get(self, job_id: str) -> JobStatus | ErrorDetail:
        """The job's status, or ``not_found``."""
        status = self.store.status.get(job_id)
        if status is None:
            return self._unknown(job_id)
        return status

    async def result(self, job_id: str) -> OCRResponse | ErrorDetail:
        """The job's result; ``not_found``, or ``job_not_finished`` while it runs."""
        status = self.store.status.get(job_id)
        if status is None:
            return self._unknown(job_id)
        progress = {"state": status.state, "pages_done": status.pages_done, "pages_total": status.pages_total}
        if status.state in ("queued", "running"):
            return ErrorDetail(
                code=ErrorCode.JOB_NOT_FINISHED,
                message=f"job {job_id} is {status.state}; poll its status until it has succeeded",
                accepted=progress,
            )
        if status.state != "succeeded":
            return ErrorDetail(
                code=ErrorCode.NOT_FOUND,
                message=f"job {job_id} {status.state}, so it has no result"
                + (f": {status.error.message}" if status.error else ""),
                accepted=progress,
            )
        result = self.store.result(job_id)
        if result is None:
            return ErrorDetail(code=ErrorCode.NOT_FOUND, message=f"the result of job {job_id} is gone")
        return result

    async def pages(self, job_id: str, start: int = 0) -> JobPages | ErrorDetail:
        """The pages finished so far from position ``start`` on, so a client shows them as they come without
        waiting for the whole result (a failed job's finished pages too); or ``not_found``."""
        status = self.store.status.get(job_id)
        if status is None:
            return self._unknown(job_id)
        done: list[PageResult] = self.partial.get(job_id, [])
        if status.state == "succeeded":
            result = self.store.result(job_id)
            done = result.pages if result is not None else []
        start = max(0, start)
        return JobPages(
            job_id=job_id,
            state=status.state,
            pages_done=status.pages_done,
            pages_total=status.pages_total,
            start=start,
            pages=done[start:],
            error=status.error,
        )

    def _unknown(self, job_id: str) -> ErrorDetail:
        return ErrorDetail(
            code=ErrorCode.NOT_FOUND, message=f"no job {job_id!r} (finished jobs are kept {self.settings.keep_s:.0f} s)"
        )

    async def _run(self, status: JobStatus, doc: Document, run: RunRequest) -> None:
        parts: list[OCRResponse] = []
        size = self.settings.chunk_pages
        handle = self.backends[status.backend]
        try:
            status = status.model_copy(update={"state": "running", "updated_at": time.time()})
            self.store.put(status)
            for start in range(0, len(doc.page_indices), size):
                chunk = dataclasses.replace(doc, page_indices=doc.page_indices[start : start + size])
                part = await call_backend(handle, status.backend, chunk, run, timeout_s=self.settings.chunk_timeout_s)
                parts.append(part)
                self.partial.setdefault(status.job_id, []).extend(part.pages)
                done = status.pages_done + len(part.pages)
                status = status.model_copy(update={"pages_done": done, "updated_at": time.time()})
                self.store.put(status)
            result = merge_responses(parts)
            result.document = doc.info()
            result.timings.total_s = round(time.time() - run.received_at, 4)
            # every chunk measured its queue from the job's receipt, so their sum counts the same wait again and
            # again: the job's queue is receipt to the first chunk's start (later chunks follow without a queue)
            result.timings.queue_s = parts[0].timings.queue_s
            self.store.put_result(status.job_id, result)
            status = status.model_copy(update={"state": "succeeded", "updated_at": time.time()})
        except OCRError as e:
            logger.info("job %s failed: %s", status.job_id, e)
            status = status.model_copy(update={"state": "failed", "updated_at": time.time(), "error": e.detail()})
        except Exception as e:  # a bug, or a backend's server fault: the job fails, the worker goes on
            logger.exception("job %s failed", status.job_id)
            error = ErrorDetail(code=ErrorCode.INTERNAL_ERROR, message=f"job failed ({type(e).__name__})")
            status = status.model_copy(update={"state": "failed", "updated_at": time.time(), "error": error})
        finally:
            self.store.put(status)
            self.tasks.pop(status.job_id, None)
            if status.state == "succeeded":  # its pages are in the stored result now
                self.partial.pop(status.job_id, None)
