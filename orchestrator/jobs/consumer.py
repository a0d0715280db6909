"""The job consumer: a Serve deployment that takes chunks from the queue and runs each against a backend.

A plain class; the builder makes it a ``@task_consumer`` deployment (Ray Serve's async inference, Celery adapter),
so Ray runs a Celery worker in each replica with ``max_ongoing_requests`` threads. Each thread runs one task at a
time: :meth:`JobConsumer.run_chunk` takes one chunk of one job and

1. claims it in the job store (a chunk already done, or run by a live consumer, or of an ended job, is dropped:
   redeliveries and duplicates cost nothing and add no page twice);
2. cuts the chunk's pages out of the stored document (read from the store once per replica, cached) and calls
   the backend with them, checking every few seconds that the job was not cancelled (a cancel cancels the call);
   a busy, unavailable or timed-out backend is tried again with backoff, ``chunk_attempts`` times in all;
3. stores the answer with the pages numbered as in the whole document, records the chunk done, and puts the
   job's next chunk in the queue (the job's window: at most ``window_chunks`` queued or running). The chunk
   that finishes the job ends it; a chunk that fails for good fails it. Either way the callback is queued.

Every replica beats (``heartbeat_s``) and sweeps (``sweep_s``, and at start): chunks held by a consumer that
stopped beating go back to the queue (:func:`~orchestrator.jobs.records.recover`). Replicas hold no job state:
any number, on any node that reaches the store and the broker.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from ray.serve.task_consumer import task_handler

from deployments.backend import call_backend
from orchestrator.jobs.callbacks import CallbackFailed, callback_body, check_callback_url, deliver
from orchestrator.jobs.dispatch import Dispatcher
from orchestrator.jobs.metrics import JobMetrics
from orchestrator.jobs.queue import CALLBACK_TASK, CHUNK_TASK, JobQueue, current_app, prune_embedded_broker
from orchestrator.jobs.records import MAX_CLAIMS, Chunk, JobRecord, callback_task_id, recover, task_id
from orchestrator.jobs.settings import JobSettings
from orchestrator.jobs.store import MISSING, JobStore
from shared.documents import Document
from shared.errors import OCRError
from shared.schema import ErrorCode, ErrorDetail, OCRResponse
from shared.subdocument import sub_document

logger = logging.getLogger("ray.serve")

TRANSIENT = frozenset({ErrorCode.OVERLOADED, ErrorCode.BACKEND_UNAVAILABLE, ErrorCode.TIMEOUT})
"""Backend answers a later try can change: the chunk is tried again (``chunk_attempts``)."""
CANCEL_CHECK_S = 2.0
DOCUMENT_CACHE_BYTES = 512 * 1024 * 1024


class JobEnded(Exception):
    """The job ended (cancelled) while its chunk ran."""


class DocumentCache:
    """The documents of the jobs this replica works on, read from the store once each (least recently used go)."""

    def __init__(self, max_bytes: int = DOCUMENT_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._docs: OrderedDict[str, Document] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, record: JobRecord, store: JobStore) -> Document | None:
        with self._lock:
            doc = self._docs.get(record.job_id)
            if doc is not None:
                self._docs.move_to_end(record.job_id)
                return doc
        data = store.document(record.job_id)
        if data is None:
            return None
        info = record.document
        doc = Document(
            data=data,
            name=info.name,
            media_type=info.media_type,
            sha256=info.sha256,
            page_count=info.page_count,
            page_indices=list(info.pages_processed),
            dpi=record.dpi,
        )
        with self._lock:
            self._docs[record.job_id] = doc
            while len(self._docs) > 1 and sum(d.size_bytes for d in self._docs.values()) > self.max_bytes:
                self._docs.popitem(last=False)
        return doc

    def forget(self, job_id: str) -> None:
        with self._lock:
            self._docs.pop(job_id, None)


class JobConsumer:
    """Runs job chunks and callbacks from the queue (see the module's docstring)."""

    def __init__(
        self,
        backends: dict[str, Any],
        settings: JobSettings | dict[str, Any] | None = None,
        *,
        queue: JobQueue | None = None,
        background: bool = True,
    ) -> None:
        """
        Args:
            backends: Backend deployment handles by name.
            settings: The job settings (``jobs:`` of the app's args).
            queue: Where next chunks and callbacks go (tests pass a stand-in); the job queue by default.
            background: Start the heartbeat and sweep threads (tests drive :meth:`sweep` themselves).
        """
        self.backends = dict(backends)
        self.settings = settings if isinstance(settings, JobSettings) else JobSettings.model_validate(settings or {})
        app = current_app()
        self.app = app
        self.store = JobStore.open(self.settings, app)
        self.id = consumer_id()
        self.dispatcher = Dispatcher(self.store, queue or JobQueue(self.settings, app), self.id)
        self.docs = DocumentCache()
        self.metrics = JobMetrics()
        try:
            self.loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # constructed outside an event loop (tests): calls run on a loop of their own
            self.loop = None
        self._stop = threading.Event()
        self.store.heartbeat(self.id, time.time())
        self._threads = [
            threading.Thread(target=self._every, args=(self.settings.heartbeat_s, self._beat), daemon=True),
            threading.Thread(target=self._every, args=(self.settings.sweep_s, self.sweep), daemon=True),
        ]
        for thread in self._threads if background else []:
            thread.start()
        logger.info("job consumer %s ready (%s)", self.id, self.settings.describe())

    # --- chunks ----------------------------------------------------------------------------------------------

    @task_handler(name=CHUNK_TASK)
    def run_chunk(self, job_id: str, index: int) -> str:
        """Run chunk ``index`` of job ``job_id`` (the Celery task :data:`~orchestrator.jobs.queue.CHUNK_TASK`).

        Returns what happened (Celery keeps no result: for logs): ``done``, ``failed``, or why it was dropped.
        """
        if not isinstance(job_id, str) or not isinstance(index, int):
            logger.warning("chunk task with arguments %r, %r dropped", job_id, index)
            return "bad task"
        tid = task_id(job_id, index)
        if not self.dispatcher.hold(tid):
            return "duplicate"  # this replica is running it already
        try:
            return self._run_chunk(job_id, index)
        finally:
            self.dispatcher.release(tid)

    def _run_chunk(self, job_id: str, index: int) -> str:
        now = time.time()
        alive = self.store.liveness(now)
        seen: dict[str, Any] = {}

        def claim(record: JobRecord) -> str:
            seen["waited"] = now - (record.chunks[index].dispatched_at or now) if index < len(record.chunks) else 0
            outcome = record.claim(index, self.id, now, alive)
            seen["record"] = record.model_copy(deep=True)
            return outcome

        outcome = self.store.update(job_id, claim)
        if outcome == "exhausted":
            detail = f"chunk {index} (pages {_pages(seen['record'].chunks[index].pages)}) was started {MAX_CLAIMS} "
            logger.warning("job %s: %s times and never finished", job_id, detail)
            self._fail(job_id, ErrorDetail(code=ErrorCode.INTERNAL_ERROR, message=detail + "times and never finished"))
            return "failed"
        if outcome is MISSING or outcome != "run":
            why = "no such job" if outcome is MISSING else str(outcome)
            logger.info("job %s chunk %d dropped: %s", job_id, index, why)
            return f"dropped ({why})"
        record: JobRecord = seen["record"]
        chunk = record.chunks[index]
        self.metrics.chunk_started(record.backend, seen["waited"])
        started = time.monotonic()
        try:
            result = self._ocr(record, index, chunk)
        except JobEnded:
            self.metrics.chunk_ran(record.backend, time.monotonic() - started, "dropped")
            return "dropped (ended)"
        except OCRError as e:
            logger.info("job %s chunk %d failed: %s", job_id, index, e)
            self.metrics.chunk_ran(record.backend, time.monotonic() - started, "failed")
            self._fail(job_id, e.detail())
            return "failed"
        except Exception as e:  # a bug, or a backend's server fault: the job fails, the consumer goes on
            logger.exception("job %s chunk %d failed", job_id, index)
            self.metrics.chunk_ran(record.backend, time.monotonic() - started, "failed")
            self._fail(job_id, ErrorDetail(code=ErrorCode.INTERNAL_ERROR, message=f"chunk failed ({type(e).__name__})"))
            return "failed"
        self.metrics.chunk_ran(record.backend, time.monotonic() - started, "done")
        key = self.store.put_result(job_id, index, result)
        done_at = time.time()

        def complete(r: JobRecord) -> tuple[bool, list[int], bool, bool]:
            was_ended = r.ended
            stored = r.complete(index, key, done_at)
            successors = r.take_window(self.id, done_at) if stored else []
            return stored, successors, r.take_callback(self.id, done_at), r.ended and not was_ended

        answer = self.store.update(job_id, complete)
        if answer is MISSING:
            self.store.drop_result(key)
            return "no such job"
        stored, successors, callback, finished = answer  # type: ignore[misc]
        if not stored:
            self.store.drop_result(key)
        self.dispatcher.send_chunks(job_id, successors)
        if finished:
            self._ended(job_id, record.backend, "succeeded")
        if callback:
            self.dispatcher.send_callback(job_id)
        return "done" if stored else "dropped"

    def _ocr(self, record: JobRecord, index: int, chunk: Chunk) -> OCRResponse:
        """The backend's answer for the chunk's pages (a document of just those pages, at their own positions);
        tries again on a busy, unavailable or slow backend.

        Raises:
            OCRError: the backend's refusal, or its last transient error after ``chunk_attempts`` tries.
            JobEnded: the job was cancelled meanwhile.
        """
        doc = self.docs.get(record, self.store)
        if doc is None:
            raise OCRError(ErrorCode.INTERNAL_ERROR, "the job's document is gone from the store")
        part = sub_document(doc, chunk.pages)
        handle = self.backends.get(record.backend)
        if handle is None:
            raise OCRError(
                ErrorCode.UNKNOWN_BACKEND,
                f"backend {record.backend!r} is not deployed in this application any more",
                accepted=sorted(self.backends),
            )
        for attempt in range(1, self.settings.chunk_attempts + 1):
            run = record.request.model_copy(
                update={"request_id": f"{record.request.request_id}:{index}", "received_at": time.time()}
            )
            try:
                return self._call(
                    record.job_id,
                    call_backend(handle, record.backend, part, run, timeout_s=self.settings.chunk_timeout_s),
                )
            except OCRError as e:
                if e.code not in TRANSIENT or attempt == self.settings.chunk_attempts:
                    raise
                wait = min(60.0, 2.0**attempt)
                logger.info("job %s chunk %d: %s; try %d in %.0f s", record.job_id, index, e.code, attempt + 1, wait)
                self.metrics.chunk_outcome(record.backend, "retried")
                self._sleep_unless_ended(record.job_id, wait)
        raise AssertionError("unreachable")

    def _call(self, job_id: str, coro: Any) -> OCRResponse:
        """Run a backend call on the replica's event loop, cancelling it if the job ends meanwhile."""
        if self.loop is None:
            return asyncio.run(coro)
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        while True:
            try:
                return future.result(timeout=CANCEL_CHECK_S)
            except concurrent.futures.TimeoutError:
                if self._job_ended(job_id):
                    future.cancel()
                    raise JobEnded() from None

    def _sleep_unless_ended(self, job_id: str, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self._stop.wait(min(CANCEL_CHECK_S, max(0.0, deadline - time.monotonic()))) or self._job_ended(job_id):
                raise JobEnded()

    def _job_ended(self, job_id: str) -> bool:
        record = self.store.get(job_id)
        return record is None or record.ended

    def _fail(self, job_id: str, error: ErrorDetail) -> None:
        now = time.time()

        def fail(r: JobRecord) -> tuple[bool, bool, str]:
            return r.fail(error, now), r.take_callback(self.id, now), r.backend

        answer = self.store.update(job_id, fail)
        if answer is MISSING:
            return
        failed, callback, backend = answer  # type: ignore[misc]
        if failed:
            self._ended(job_id, backend, "failed")
        if callback:
            self.dispatcher.send_callback(job_id)

    def _ended(self, job_id: str, backend: str, state: str) -> None:
        self.metrics.job_ended(backend, state)
        self.docs.forget(job_id)
        logger.info("job %s %s", job_id, state)

    # --- the callback ----------------------------------------------------------------------------------------

    @task_handler(name=CALLBACK_TASK)
    def deliver_callback(self, job_id: str) -> str:
        """POST the job's end to its ``callback_url`` (the Celery task :data:`~orchestrator.jobs.queue.CALLBACK_TASK`),
        trying ``callback_attempts`` times with backoff."""
        if not isinstance(job_id, str):
            return "bad task"
        tid = callback_task_id(job_id)
        if not self.dispatcher.hold(tid):
            return "duplicate"
        try:
            return self._deliver_callback(job_id)
        finally:
            self.dispatcher.release(tid)

    def _deliver_callback(self, job_id: str) -> str:
        now = time.time()
        alive = self.store.liveness(now)
        seen: dict[str, JobRecord] = {}

        def claim(r: JobRecord) -> bool:
            ok = r.claim_callback(self.id, now, alive)
            seen["record"] = r.model_copy(deep=True)
            return ok

        claimed = self.store.update(job_id, claim)
        if claimed is MISSING or not claimed:
            return "skipped"
        record = seen["record"]
        assert record.callback is not None
        secret = self.settings.callback_secret
        body = callback_body(record.status())
        delivered, error, tries = False, None, 0
        try:  # the allow-list may have changed since the job was submitted: it is checked again before any POST
            check_callback_url(record.callback.url, self.settings.callback_hosts)
            attempts = self.settings.callback_attempts
        except OCRError as e:
            error, attempts, tries = e.message, 0, 1
        for attempt in range(1, attempts + 1):
            tries = attempt
            try:
                deliver(
                    record.callback.url,
                    body,
                    job_id=job_id,
                    secret=secret.get_secret_value() if secret else "",
                    timeout_s=self.settings.callback_timeout_s,
                )
                delivered, error = True, None
                self.metrics.callback("delivered")
                break
            except CallbackFailed as e:
                error = str(e)
                logger.info("job %s callback, try %d: %s", job_id, attempt, e)
                if e.final or attempt == self.settings.callback_attempts:
                    break
                self.metrics.callback("retried")
                if self._stop.wait(min(60.0, 2.0**attempt)):
                    return "stopping"  # the sweep of another replica takes it over
        if not delivered:
            self.metrics.callback("failed")

        def done(r: JobRecord) -> JobRecord:
            for _ in range(tries - 1):
                r.callback_tried(delivered=False, error=error, gave_up=False)
            r.callback_tried(delivered=delivered, error=error, gave_up=True)
            return r.model_copy()

        final = self.store.update(job_id, done)
        if isinstance(final, JobRecord):
            self.store.settled(final)
        return "delivered" if delivered else "failed"

    # --- keeping alive and recovering ------------------------------------------------------------------------

    def _every(self, period_s: float, fn: Any) -> None:
        fn()
        while not self._stop.wait(period_s):
            try:
                fn()
            except Exception:  # the store is away: try again next time
                logger.exception("job consumer %s: %s failed", self.id, getattr(fn, "__name__", fn))

    def _beat(self) -> None:
        self.store.heartbeat(self.id, time.time())

    def sweep(self) -> dict[str, int]:
        """Queue again what a gone consumer held, fill every job's window, queue pending callbacks, clean up.

        Returns counts (for tests and logs): jobs looked at, chunks and callbacks queued.
        """
        now = time.time()
        alive = self.store.liveness(now)
        waiting = self._waiting_messages()  # read after ``now``: an item queued since is within the grace
        counts = {"jobs": 0, "chunks": 0, "callbacks": 0}
        levels = {"queued_jobs": 0, "running_jobs": 0, "queued_chunks": 0, "running_chunks": 0}
        grace = self.settings.stale_s

        def visit(r: JobRecord) -> tuple[list[int], bool, JobRecord]:
            recover(r, me=self.id, now=now, alive=alive, mine=self.dispatcher.holds, grace_s=grace, waiting=waiting)
            return r.take_window(self.id, now), r.take_callback(self.id, now), r.model_copy()

        for job_id in self.store.active():
            answer = self.store.update(job_id, visit)
            if answer is MISSING:
                self.store.forget_active(job_id)
                continue
            chunks, callback, record = answer  # type: ignore[misc]
            counts["jobs"] += 1
            self.dispatcher.send_chunks(job_id, chunks)
            if callback:
                self.dispatcher.send_callback(job_id)
            counts["chunks"] += len(chunks)
            counts["callbacks"] += int(callback)
            if record.ended:
                self.store.settle_ended(record)
            else:
                queued, running = record.queued_and_running()
                levels["queued_chunks"] += queued
                levels["running_chunks"] += running
                levels["queued_jobs" if record.state == "queued" else "running_jobs"] += 1
        self.metrics.levels(**levels)
        self.store.kv.prune()
        if not self.dispatcher.queue.redis:
            prune_embedded_broker(self.settings, self.app, older_than_s=self.settings.keep_s)
        if counts["chunks"] or counts["callbacks"]:
            logger.info("job consumer %s sweep: %s", self.id, counts)
        return counts

    def _waiting_messages(self) -> Callable[[str], bool]:
        """Whether a task's message still waits in the broker, asked once per sweep and only if needed."""
        seen: list[frozenset[str] | None] = []

        def waiting(tid: str) -> bool:
            if not seen:
                try:
                    seen.append(self.dispatcher.queue.waiting())
                except Exception as e:  # the broker is busy or away: no message is judged gone this time
                    logger.info("job consumer %s: reading the queue failed (%s)", self.id, e)
                    seen.append(None)
            return seen[0] is None or tid in seen[0]

        return waiting

    def check_health(self) -> None:
        """Serve's liveness probe: a consumer whose beat or sweep thread died is replaced."""
        if any(t.ident is not None and not t.is_alive() for t in self._threads):
            raise RuntimeError("the job consumer's heartbeat or sweep thread stopped")

    def close(self) -> None:
        """A clean stop: the beat and sweep end, and this consumer leaves the store, so its chunks are recovered
        at once rather than after ``stale_s``. Once; the replica's end calls it too."""
        stop = getattr(self, "_stop", None)
        if stop is None or stop.is_set():
            return
        stop.set()
        try:
            self.store.leave(self.id)
        except Exception:
            logger.debug("leaving the store failed", exc_info=True)

    def __del__(self) -> None:
        self.close()


def consumer_id() -> str:
    """A new id for this consumer replica: node, replica and a random part (a restarted replica is a new one)."""
    try:
        from ray import serve

        tag = serve.get_replica_context().replica_tag
    except Exception:  # outside Serve
        tag = f"pid{os.getpid()}"
    return f"{tag}-{uuid.uuid4().hex[:8]}"


def _pages(indices: list[int]) -> str:
    """1-based pages, as a person reads them: '5-8' or '5'."""
    return f"{indices[0] + 1}-{indices[-1] + 1}" if len(indices) > 1 else f"{indices[0] + 1}"
