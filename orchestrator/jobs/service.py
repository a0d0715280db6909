"""The job API as the router serves it: submit, status, pages, result, cancel, events, idempotent OCR.

Stateless: every answer is read from the job store (:mod:`.store`), every job's first chunks are put in the queue
(:mod:`.queue`) here and the rest by the consumers. So any number of router replicas, on any node, answer for any
job, and a router restart loses nothing. Store calls block (SQLite or Redis clients): they run in worker threads.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from orchestrator.jobs import idempotency
from orchestrator.jobs.callbacks import check_callback_url
from orchestrator.jobs.dispatch import Dispatcher
from orchestrator.jobs.events import RETRY_MS, plan_events, progress_status, sse
from orchestrator.jobs.metrics import JobMetrics
from orchestrator.jobs.queue import JobQueue, current_app
from orchestrator.jobs.records import Callback, JobRecord, plan_chunks, task_id
from orchestrator.jobs.settings import JobSettings
from orchestrator.jobs.store import MISSING, JobStore
from shared.documents import Document
from shared.errors import OCRError
from shared.merge import merge_responses
from shared.requests import RunRequest
from shared.schema import ErrorCode, JobPageEvent, JobPages, JobStatus, OCRResponse

logger = logging.getLogger("ray.serve")

JOB_ID_CHARS = frozenset("0123456789abcdef")
KEEPALIVE_S = 15.0


def check_job_id(job_id: str) -> str:
    """``job_id`` if it has the shape of one (32 lowercase hex digits).

    Raises:
        OCRError: ``not_found``, saying what a job id looks like.
    """
    if len(job_id) != 32 or not set(job_id) <= JOB_ID_CHARS:
        raise OCRError(
            ErrorCode.NOT_FOUND,
            f"no job {job_id[:64]!r}: job ids are 32 hex digits, as POST /v1/jobs answered",
            accepted={"job_id": "32 lowercase hex digits"},
        )
    return job_id


class JobService:
    """What a router replica does for the job API."""

    def __init__(self, settings: JobSettings, *, store: JobStore | None = None, queue: JobQueue | None = None) -> None:
        self.settings = settings
        app = current_app()
        self.store = store or JobStore.open(settings, app)
        self.me = f"router-{uuid.uuid4().hex[:12]}"
        self.dispatcher = Dispatcher(self.store, queue or JobQueue(settings, app), self.me)
        self.metrics = JobMetrics()

    async def _io(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    async def _record(self, job_id: str) -> JobRecord:
        record = await self._io(self.store.get, check_job_id(job_id))
        if record is None:
            raise OCRError(ErrorCode.NOT_FOUND, f"no job {job_id!r} (ended jobs are kept {self.settings.keep_s:.0f} s)")
        return record

    # --- submit ----------------------------------------------------------------------------------------------

    async def submit(
        self,
        doc: Document,
        backend: str,
        run: RunRequest,
        *,
        callback_url: str | None = None,
        tenant: str = "",
        idempotency_key: str | None = None,
        fingerprint: str | None = None,
    ) -> tuple[JobStatus, bool]:
        """Store the job and its document, queue its first chunks; returns (status, whether it was a replay).

        Raises:
            OCRError: a callback URL that is not allowed (400); a key reused for another request (422).
        """
        if callback_url is not None:
            check_callback_url(callback_url, self.settings.callback_hosts)
        job_id = uuid.uuid4().hex
        replayed = False
        if idempotency_key is not None:
            name = idempotency.record_key(tenant, "job", idempotency_key)
            claim = {"fp": fingerprint, "job_id": job_id}
            ttl = self.settings.keep_s + 7 * 24 * 3600.0
            if not await self._io(self.store.put_json, name, claim, ttl):
                existing = await self._io(self.store.get_json, name)
                if existing is not None:
                    if existing.get("fp") != fingerprint:
                        raise idempotency.reused(idempotency_key)
                    job_id, replayed = existing["job_id"], True
        now = time.time()
        record = JobRecord(
            job_id=job_id,
            tenant=tenant,
            backend=backend,
            request=run,
            document=doc.info(),
            dpi=doc.dpi,
            window=self.settings.window_chunks,
            chunks=plan_chunks(list(doc.page_indices), self.settings.chunk_pages),
            callback=Callback(url=callback_url) if callback_url else None,
            created_at=now,
            updated_at=now,
            idempotency_key=idempotency_key,
            fingerprint=fingerprint,
        )
        if await self._io(self.store.create, record, doc.data):
            await self._io(self.dispatcher.dispatch_new, record)
            self.metrics.job_submitted(backend)
            logger.info(
                "job %s: %d pages on %s in %d chunks", job_id, len(doc.page_indices), backend, len(record.chunks)
            )
            return (await self._record(job_id)).status(), replayed
        return (await self._record(job_id)).status(), True  # the same key's first request made it

    # --- reading ---------------------------------------------------------------------------------------------

    async def status(self, job_id: str) -> JobStatus:
        return (await self._record(job_id)).status()

    async def pages(self, job_id: str, start: int = 0) -> JobPages:
        """Pages finished so far, in the order they finished, from position ``start`` on."""
        record = await self._record(job_id)
        start = max(0, start)
        wanted: list[tuple[int, int]] = []  # (chunk, first page of it to give)
        position = 0
        for c in record.order:
            n = len(record.chunks[c].pages)
            if position + n > start:
                wanted.append((c, max(0, start - position)))
            position += n
        keys = [record.chunks[c].result_key or "" for c, _ in wanted]
        answers = await self._io(self.store.results, keys)
        pages = [p for (_, skip), a in zip(wanted, answers, strict=True) if a is not None for p in a.pages[skip:]]
        return JobPages(
            job_id=job_id,
            state=record.state,
            pages_done=record.pages_done,
            pages_total=record.pages_total,
            start=start,
            pages=pages,
            error=record.error,
        )

    async def result(self, job_id: str) -> OCRResponse:
        """The merged answer, pages in document order.

        Raises:
            OCRError: ``job_not_finished`` (409) while it runs, ``job_cancelled`` (409), ``not_found`` for a failed
                job (with its error) or an unknown one.
        """
        record = await self._record(job_id)
        progress = {"state": record.state, "pages_done": record.pages_done, "pages_total": record.pages_total}
        if record.state in ("queued", "running"):
            raise OCRError(
                ErrorCode.JOB_NOT_FINISHED,
                f"job {job_id} is {record.state}; wait for it to succeed (its status, or its event stream)",
                accepted=progress,
            )
        if record.state == "cancelled":
            raise OCRError(
                ErrorCode.JOB_CANCELLED,
                f"job {job_id} was cancelled after {record.pages_done} of {record.pages_total} pages, so it has no "
                f"result; its finished pages are at /v1/jobs/{job_id}/pages",
                accepted=progress,
            )
        if record.state != "succeeded":
            raise OCRError(
                ErrorCode.NOT_FOUND,
                f"job {job_id} {record.state}, so it has no result"
                + (f": {record.error.message}" if record.error else ""),
                accepted=progress,
            )
        return await self._io(self._merge, record)

    def _merge(self, record: JobRecord) -> OCRResponse:
        keys = [c.result_key or "" for c in record.chunks]
        parts = self.store.results(keys)
        if any(p is None for p in parts):
            raise OCRError(ErrorCode.NOT_FOUND, f"the results of job {record.job_id} are gone (expired)")
        merged = merge_responses([p for p in parts if p is not None])
        merged.request_id = record.request.request_id
        merged.document = record.document
        finished = record.finished_at or time.time()
        first = min((c.started_at for c in record.chunks if c.started_at), default=record.created_at)
        merged.timings.queue_s = round(max(0.0, first - record.created_at), 4)
        merged.timings.total_s = round(max(0.0, finished - record.request.received_at), 4)
        return merged

    # --- cancel ----------------------------------------------------------------------------------------------

    async def cancel(self, job_id: str) -> JobStatus:
        """Cancel a job: no chunk starts after this, running ones are cancelled, finished pages stay readable.

        Raises:
            OCRError: ``job_finished`` (409) for a job that already succeeded or failed; ``not_found``.
        """
        check_job_id(job_id)
        now = time.time()

        def cancel(r: JobRecord) -> tuple[bool, bool, list[str], JobRecord]:
            cancelled = r.cancel(now)
            queued = [task_id(r.job_id, i) for i, c in enumerate(r.chunks) if c.dispatched_at and not c.done_at]
            return cancelled, r.take_callback(self.me, now), queued, r.model_copy()

        answer = await self._io(self.store.update, job_id, cancel)
        if answer is MISSING:
            raise OCRError(ErrorCode.NOT_FOUND, f"no job {job_id!r} (ended jobs are kept {self.settings.keep_s:.0f} s)")
        cancelled, callback, queued, record = answer
        if not cancelled and record.state != "cancelled":
            raise OCRError(
                ErrorCode.JOB_FINISHED,
                f"job {job_id} already {record.state}; only a queued or running job can be cancelled",
                accepted={"state": record.state},
            )
        if cancelled:
            self.metrics.job_ended(record.backend, "cancelled")
            logger.info("job %s cancelled after %d of %d pages", job_id, record.pages_done, record.pages_total)
            await self._io(self.dispatcher.queue.revoke, queued)
        if callback:
            await self._io(self.dispatcher.send_callback, job_id)
        return record.status()

    # --- events ----------------------------------------------------------------------------------------------

    async def events(self, job_id: str, after: int, decorate: Callable[[JobStatus], JobStatus]) -> AsyncIterator[bytes]:
        """The job's server-sent events after id ``after`` (see :mod:`.events`); raises ``not_found`` before the
        stream starts. ``decorate`` adds the URLs the API knows to each status."""
        record = await self._record(job_id)
        return self._stream(record, after, decorate)

    async def _stream(
        self, record: JobRecord, after: int, decorate: Callable[[JobStatus], JobStatus]
    ) -> AsyncIterator[bytes]:
        yield f"retry: {RETRY_MS}\n\n".encode()
        yield sse("status", decorate(record.status()).model_dump_json())
        sent = after
        cache: dict[int, OCRResponse | None] = {}
        quiet = time.monotonic()
        while True:
            refs = plan_events(record, sent)
            if not refs and record.ended:
                return  # the client has seen the end already (its Last-Event-ID is the end's, or beyond)
            for ref in refs:
                if ref.kind == "page":
                    if ref.chunk not in cache:
                        key = record.chunks[ref.chunk].result_key or ""
                        cache[ref.chunk] = (await self._io(self.store.results, [key]))[0]
                    answer = cache[ref.chunk]
                    if answer is None or ref.offset >= len(answer.pages):
                        return  # the job's results expired under the stream: nothing more to say
                    event = JobPageEvent(job_id=record.job_id, position=ref.position, page=answer.pages[ref.offset])
                    yield sse("page", event.model_dump_json(), ref.id)
                elif ref.kind == "progress":
                    cache.pop(ref.chunk, None)
                    yield sse("progress", decorate(progress_status(record, ref)).model_dump_json(), ref.id)
                else:
                    yield sse("end", decorate(record.status()).model_dump_json(), ref.id)
                    return
                sent = ref.id
                quiet = time.monotonic()
            await asyncio.sleep(self.settings.events_poll_s)
            if time.monotonic() - quiet > KEEPALIVE_S:
                yield b": keep-alive\n\n"
                quiet = time.monotonic()
            fresh = await self._io(self.store.get, record.job_id)
            if fresh is None:
                return
            record = fresh

    # --- idempotent OCR --------------------------------------------------------------------------------------

    async def once(
        self,
        *,
        tenant: str,
        key: str,
        fp: str,
        timeout_s: float,
        work: Callable[[], Awaitable[OCRResponse]],
    ) -> tuple[OCRResponse, bool]:
        """``work()`` run once per Idempotency-Key (see :mod:`.idempotency`)."""
        return await idempotency.run_once(
            self.store,
            tenant=tenant,
            key=key,
            fp=fp,
            timeout_s=timeout_s,
            ttl_s=self.settings.idempotency_ttl_s,
            me=self.me,
            work=work,
        )
