"""Asynchronous jobs for long documents: submit, poll progress in pages, fetch the result.

A 300-page PDF should not hold an HTTP request open for half an hour. The router accepts the job, validates
the document, and hands it to the ``jobs`` deployment, which sends it to the backend a chunk of pages at a
time and records progress after each chunk. Job state lives in that deployment (and is mirrored to disk), not
in a router replica, so a router restart between submit and result loses nothing; a restart of the jobs
replica itself finds the finished jobs on disk and marks unfinished ones ``interrupted``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from deployments.backend import BackendRefusal
from shared.documents import Document
from shared.errors import OCRError, as_ocr_error
from shared.merge import merge_responses
from shared.requests import RunRequest
from shared.schema import ErrorDetail, OCRResponse

logger = logging.getLogger("ray.serve")

JobState = Literal["queued", "running", "succeeded", "failed", "interrupted"]


class JobStatus(BaseModel):
    """``GET /v1/jobs/{id}``: where a job stands."""

    model_config = ConfigDict(extra="forbid")

    job_id: str = Field(description="Job id.")
    state: JobState = Field(description="queued, running, succeeded, failed, or interrupted (its worker restarted).")
    backend: str = Field(description="Backend processing it.")
    pages_total: int = Field(description="Pages to process.")
    pages_done: int = Field(default=0, description="Pages processed so far.")
    created_at: float = Field(description="Submit time, epoch seconds.")
    updated_at: float = Field(description="Last progress, epoch seconds.")
    error: ErrorDetail | None = Field(default=None, description="Why it failed.")
    result_url: str | None = Field(default=None, description="Where the result is, once succeeded.")


class JobSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    state_dir: str = Field(
        default_factory=lambda: os.path.join(tempfile.gettempdir(), "ocrserve-jobs"),
        description="Where job status and results are mirrored (survives a jobs-replica restart on this node).",
    )
    chunk_pages: int = Field(default=8, gt=0, description="Pages sent to the backend per call.")
    chunk_timeout_s: float = Field(default=600.0, gt=0, description="Time limit of one chunk.")
    keep_s: float = Field(default=24 * 3600.0, gt=0, description="How long finished jobs are kept.")


class JobStore:
    """Job status and results in memory, mirrored to a directory (one JSON per job, written atomically)."""

    def __init__(self, state_dir: str | Path) -> None:
        self.dir = Path(state_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.status: dict[str, JobStatus] = {}
        for path in self.dir.glob("*.status.json"):
            try:
                status = JobStatus.model_validate_json(path.read_text())
            except ValueError:
                continue
            if status.state in ("queued", "running"):  # its worker died with it
                status = status.model_copy(update={"state": "interrupted", "updated_at": time.time()})
                self._write(path, status.model_dump_json())
            self.status[status.job_id] = status

    def _write(self, path: Path, text: str) -> None:
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)

    def put(self, status: JobStatus) -> None:
        self.status[status.job_id] = status
        self._write(self.dir / f"{status.job_id}.status.json", status.model_dump_json())

    def put_result(self, job_id: str, result: OCRResponse) -> None:
        self._write(self.dir / f"{job_id}.result.json", result.model_dump_json())

    def result(self, job_id: str) -> OCRResponse | None:
        path = self.dir / f"{job_id}.result.json"
        return OCRResponse.model_validate_json(path.read_text()) if path.exists() else None

    def prune(self, keep_s: float) -> None:
        cutoff = time.time() - keep_s
        for job_id, st in list(self.status.items()):
            if st.state in ("succeeded", "failed", "interrupted") and st.updated_at < cutoff:
                del self.status[job_id]
                for suffix in (".status.json", ".result.json"):
                    (self.dir / f"{job_id}{suffix}").unlink(missing_ok=True)


class JobWorker:
    """The ``jobs`` deployment: runs jobs chunk by chunk against backend handles, keeps their state."""

    def __init__(self, backends: dict[str, Any], settings: JobSettings | dict[str, Any] | None = None) -> None:
        self.backends = dict(backends)
        self.settings = settings if isinstance(settings, JobSettings) else JobSettings.model_validate(settings or {})
        self.store = JobStore(self.settings.state_dir)
        self.tasks: dict[str, asyncio.Task] = {}

    async def submit(self, backend: str, doc: Document, run: RunRequest) -> JobStatus:
        """Register a job and start it in the background; returns at once."""
        self.store.prune(self.settings.keep_s)
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

    async def get(self, job_id: str) -> JobStatus | BackendRefusal:
        """The job's status; an unknown id is answered with a refusal value (404), not an exception."""
        try:
            return self._status(job_id)
        except OCRError as e:
            return BackendRefusal.of(e)

    async def result(self, job_id: str) -> OCRResponse | BackendRefusal:
        """The job's result; not found (404) or not finished (409) are refusal values."""
        try:
            return self._result(job_id)
        except OCRError as e:
            return BackendRefusal.of(e)

    def _status(self, job_id: str) -> JobStatus:
        status = self.store.status.get(job_id)
        if status is None:
            raise OCRError("not_found", f"no job {job_id!r} (finished jobs are kept {self.settings.keep_s:.0f} s)")
        return status

    def _result(self, job_id: str) -> OCRResponse:
        status = self._status(job_id)
        if status.state != "succeeded":
            raise OCRError(
                "not_found",
                f"job {job_id} is {status.state}; the result exists once it has succeeded",
                accepted={"state": status.state, "pages_done": status.pages_done, "pages_total": status.pages_total},
                status=409 if status.state in ("queued", "running") else 404,
            )
        result = self.store.result(job_id)
        if result is None:
            raise OCRError("not_found", f"the result of job {job_id} is gone")
        return result

    async def _run(self, status: JobStatus, doc: Document, run: RunRequest) -> None:
        parts: list[OCRResponse] = []
        size = self.settings.chunk_pages
        try:
            status = status.model_copy(update={"state": "running", "updated_at": time.time()})
            self.store.put(status)
            for start in range(0, len(doc.page_indices), size):
                chunk = dataclasses.replace(doc, page_indices=doc.page_indices[start : start + size])
                call = self.backends[status.backend].ocr.remote(chunk, run)
                try:
                    part = await asyncio.wait_for(call, self.settings.chunk_timeout_s)
                except asyncio.TimeoutError:
                    call.cancel()
                    raise OCRError(
                        "timeout", f"a chunk took longer than {self.settings.chunk_timeout_s:.0f} s"
                    ) from None
                if isinstance(part, BackendRefusal):
                    raise part.error()
                parts.append(part)
                done = status.pages_done + len(part.pages)
                status = status.model_copy(update={"pages_done": done, "updated_at": time.time()})
                self.store.put(status)
            result = merge_responses(parts)
            result.document = doc.info()
            result.timings.total_s = round(time.time() - run.received_at, 4)
            self.store.put_result(status.job_id, result)
            status = status.model_copy(
                update={
                    "state": "succeeded",
                    "updated_at": time.time(),
                    "result_url": f"/v1/jobs/{status.job_id}/result",
                }
            )
        except Exception as e:
            err = as_ocr_error(e) or OCRError("internal_error", f"job failed ({type(e).__name__})")
            logger.warning("job %s failed: %s", status.job_id, err)
            status = status.model_copy(
                update={
                    "state": "failed",
                    "updated_at": time.time(),
                    "error": ErrorDetail(code=err.code, message=err.message, accepted=err.accepted),
                }  # type: ignore[arg-type]
            )
        finally:
            self.store.put(status)
            self.tasks.pop(status.job_id, None)
