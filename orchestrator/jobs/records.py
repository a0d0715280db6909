"""A job as one record, and every rule of its life as a pure function on that record.

The record holds the job's state, its chunks (which pages each has, whether it is queued, who runs it, whether it is
done and where its result is), the order chunks finished in, and the end-of-job callback. Every change goes through
:meth:`~orchestrator.jobs.kv.KV.update`, which hands these functions the current record under a lock (SQLite) or a
watch (Redis): so the rules below are the whole protocol, and tests exercise them without any store or queue.

A chunk or the callback is a :class:`Work` item, queued through Celery. Its life:

- **dispatched** (``dispatched_at``): a message for it was or is being put in the queue. ``dispatched_by`` names
  the process putting it there until that process has confirmed the put; a confirmed dispatch has none.
- **claimed** (``owner``): a consumer replica took the message and runs it. A second message for the same item
  (a redelivery, a duplicate) finds it claimed by a live consumer, or done, and is dropped: every page once.
- **done** (chunks: ``done_at`` and ``result_key``; the callback: ``state``).

Recovery (:func:`recover`), run by every consumer on start and every ``sweep_s``: an item claimed, or being
dispatched, by a process that has stopped beating (``stale_s``) goes back to undispatched; so does one its own
consumer holds but no longer runs (a message Celery dropped when its broker connection broke), and one whose
message left the broker without being claimed (fetched by a consumer killed before its claim: the embedded broker
never gives such a message back). Then the job's window is filled again (:meth:`JobRecord.take_window`).
Duplicates this may create are harmless (the claim drops them); no chunk is lost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.requests import RunRequest
from shared.schema import JOB_ENDED_STATES, DocumentInfo, ErrorDetail, JobState, JobStatus

ClaimOutcome = Literal["run", "done", "busy", "ended", "missing", "exhausted"]
MAX_CLAIMS = 5
"""Starts of one chunk before the job fails instead: a chunk that kills every consumer taking it (a page that
exhausts memory) must not go round the cluster forever."""


class Work(BaseModel):
    """Queue bookkeeping of one chunk or of the callback."""

    model_config = ConfigDict(extra="forbid")

    dispatched_at: float | None = None
    dispatched_by: str | None = None
    owner: str | None = None
    claimed_at: float | None = None
    attempts: int = 0


class Chunk(Work):
    """Some consecutive pages of the job, sent to the backend in one call."""

    pages: list[int]
    started_at: float | None = None
    done_at: float | None = None
    result_key: str | None = None


class Callback(Work):
    """The job's end-of-job POST."""

    url: str
    state: Literal["waiting", "pending", "delivered", "failed"] = "waiting"
    last_error: str | None = None


class JobRecord(BaseModel):
    """Everything about one job except its document and its chunks' results (stored beside it)."""

    model_config = ConfigDict(extra="forbid")

    job_id: str
    tenant: str = ""
    state: JobState = "queued"
    backend: str
    request: RunRequest
    document: DocumentInfo
    dpi: float
    window: int = Field(gt=0)
    chunks: list[Chunk]
    order: list[int] = Field(default_factory=list, description="Chunk indices in the order they finished.")
    callback: Callback | None = None
    created_at: float
    updated_at: float
    started_at: float | None = None
    finished_at: float | None = None
    error: ErrorDetail | None = None
    idempotency_key: str | None = None
    fingerprint: str | None = None

    # --- reading ---------------------------------------------------------------------------------------------

    @property
    def ended(self) -> bool:
        return self.state in JOB_ENDED_STATES

    @property
    def pages_total(self) -> int:
        return sum(len(c.pages) for c in self.chunks)

    @property
    def pages_done(self) -> int:
        return sum(len(self.chunks[i].pages) for i in self.order)

    @property
    def needs_sweeping(self) -> bool:
        """Still has work for the consumers: unfinished, or a callback not yet delivered or given up."""
        return not self.ended or (self.callback is not None and self.callback.state == "pending")

    def status(self) -> JobStatus:
        return JobStatus(
            job_id=self.job_id,
            state=self.state,
            backend=self.backend,
            pages_total=self.pages_total,
            pages_done=self.pages_done,
            chunks_total=len(self.chunks),
            chunks_done=len(self.order),
            created_at=self.created_at,
            updated_at=self.updated_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
            error=self.error,
            callback=None if self.callback is None else self.callback.state,
        )

    def queued_and_running(self) -> tuple[int, int]:
        """Chunks waiting in the queue, and chunks a consumer holds (for the queue-depth metrics)."""
        queued = sum(1 for c in self.chunks if c.dispatched_at is not None and c.owner is None and c.done_at is None)
        running = sum(1 for c in self.chunks if c.owner is not None and c.done_at is None)
        return queued, running

    # --- dispatching -----------------------------------------------------------------------------------------

    def take_window(self, by: str, now: float) -> list[int]:
        """Mark the lowest undispatched chunks dispatched (by ``by``), up to ``window`` in flight; returns them.

        Nothing for an ended job. The caller puts their messages in the queue, then :meth:`confirm`s them.
        """
        if self.ended:
            return []
        in_flight = sum(1 for c in self.chunks if c.dispatched_at is not None and c.done_at is None)
        picked: list[int] = []
        for i, chunk in enumerate(self.chunks):
            if in_flight + len(picked) >= self.window:
                break
            if chunk.dispatched_at is None and chunk.done_at is None:
                chunk.dispatched_at, chunk.dispatched_by = now, by
                picked.append(i)
        if picked:
            self.updated_at = now
        return picked

    def confirm(self, indices: list[int], by: str) -> None:
        """The messages of these chunks are in the queue."""
        for i in indices:
            if self.chunks[i].dispatched_by == by:
                self.chunks[i].dispatched_by = None

    def undispatch(self, indices: list[int], by: str) -> None:
        """Putting these chunks' messages in the queue failed: back to undispatched (the sweeper tries again)."""
        for i in indices:
            chunk = self.chunks[i]
            if chunk.dispatched_by == by and chunk.owner is None and chunk.done_at is None:
                chunk.dispatched_at = chunk.dispatched_by = None

    # --- running a chunk -------------------------------------------------------------------------------------

    def claim(self, index: int, consumer: str, now: float, alive: Callable[[str], bool]) -> ClaimOutcome:
        """Take chunk ``index`` for ``consumer``: ``run`` it, or say why not (``done``, ``busy`` elsewhere,
        the job ``ended``, ``missing``: no such chunk, ``exhausted``: started ``MAX_CLAIMS`` times already)."""
        if not 0 <= index < len(self.chunks):
            return "missing"
        if self.ended:
            return "ended"
        chunk = self.chunks[index]
        if chunk.done_at is not None:
            return "done"
        if chunk.owner is not None and chunk.owner != consumer and alive(chunk.owner):
            return "busy"
        if chunk.attempts >= MAX_CLAIMS:
            return "exhausted"
        chunk.owner, chunk.claimed_at, chunk.dispatched_by = consumer, now, None
        chunk.dispatched_at = chunk.dispatched_at or now
        chunk.started_at = chunk.started_at or now
        chunk.attempts += 1
        if self.state == "queued":
            self.state, self.started_at = "running", now
        self.updated_at = now
        return "run"

    def complete(self, index: int, result_key: str, now: float) -> bool:
        """Record chunk ``index`` done, its result under ``result_key``; ends the job when it was the last.

        Returns whether this result is the chunk's: False when the job ended first (a cancel: no page is added
        after the end) or another run of the chunk finished first (its result stands; this one is dropped).
        """
        chunk = self.chunks[index]
        if chunk.done_at is not None:
            return chunk.result_key == result_key  # the same write seen again (a retried store call)
        if self.ended:
            return False
        chunk.done_at, chunk.result_key, chunk.owner = now, result_key, None
        self.order.append(index)
        self.updated_at = now
        if len(self.order) == len(self.chunks):
            self._end("succeeded", now)
        return True

    def fail(self, error: ErrorDetail, now: float) -> bool:
        """End the job as failed with ``error``, unless it already ended; returns whether it did."""
        if self.ended:
            return False
        self.error = error
        self._end("failed", now)
        return True

    def cancel(self, now: float) -> bool:
        """End the job as cancelled, unless it already ended; returns whether it did."""
        if self.ended:
            return False
        self._end("cancelled", now)
        return True

    def _end(self, state: JobState, now: float) -> None:
        self.state, self.finished_at, self.updated_at = state, now, now
        for chunk in self.chunks:
            if chunk.done_at is None:
                chunk.owner = chunk.dispatched_by = None
        if self.callback is not None and self.callback.state == "waiting":
            self.callback.state = "pending"

    # --- the callback ----------------------------------------------------------------------------------------

    def take_callback(self, by: str, now: float) -> bool:
        """Mark the pending callback dispatched by ``by``, unless it is already; returns whether it was marked."""
        cb = self.callback
        if cb is None or cb.state != "pending" or cb.dispatched_at is not None:
            return False
        cb.dispatched_at, cb.dispatched_by = now, by
        return True

    def confirm_callback(self, by: str) -> None:
        if self.callback is not None and self.callback.dispatched_by == by:
            self.callback.dispatched_by = None

    def undispatch_callback(self, by: str) -> None:
        cb = self.callback
        if cb is not None and cb.dispatched_by == by and cb.owner is None:
            cb.dispatched_at = cb.dispatched_by = None

    def claim_callback(self, consumer: str, now: float, alive: Callable[[str], bool]) -> bool:
        cb = self.callback
        if cb is None or cb.state != "pending":
            return False
        if cb.owner is not None and cb.owner != consumer and alive(cb.owner):
            return False
        cb.owner, cb.claimed_at, cb.dispatched_by = consumer, now, None
        cb.dispatched_at = cb.dispatched_at or now
        return True

    def callback_tried(self, *, delivered: bool, error: str | None, gave_up: bool) -> None:
        cb = self.callback
        if cb is None or cb.state != "pending":
            return
        cb.attempts += 1
        cb.last_error = error
        if delivered:
            cb.state = "delivered"
        elif gave_up:
            cb.state = "failed"
        if cb.state != "pending":
            cb.owner = cb.dispatched_by = None


def recover(
    record: JobRecord,
    *,
    me: str,
    now: float,
    alive: Callable[[str], bool],
    mine: Callable[[str], bool],
    grace_s: float,
    waiting: Callable[[str], bool] | None = None,
) -> bool:
    """Put back to undispatched every chunk (and the callback) whose process is gone or dropped it, or whose
    message is gone.

    Args:
        record: The job (changed in place).
        me: This consumer's id.
        alive: Whether a consumer id has beaten within ``stale_s``.
        mine: Whether this consumer holds the item's task now (running it, or about to queue it), by task id.
        grace_s: How old a claim or dispatch must be before its holder is judged (a claim is recorded just before
            the task starts running; a dispatch just before the message is put).
        waiting: Whether the item's message still waits in the broker, by task id (None: the broker was not
            asked). A queued item older than ``grace_s`` whose message neither waits nor was claimed was fetched
            by a consumer that died before claiming it.

    Returns:
        Whether anything changed.
    """
    changed = False
    items: list[tuple[str, Work]] = [(task_id(record.job_id, i), c) for i, c in enumerate(record.chunks)]
    if record.callback is not None and record.callback.state == "pending":
        items.append((callback_task_id(record.job_id), record.callback))
    for tid, item in items:
        if isinstance(item, Chunk) and (item.done_at is not None or record.ended):
            continue
        holder = item.owner or item.dispatched_by
        if holder is None:
            queued_long = item.dispatched_at is not None and now - item.dispatched_at >= grace_s
            if queued_long and waiting is not None and not waiting(tid):
                item.dispatched_at = None
                changed = True
            continue
        since = item.claimed_at if item.owner is not None else item.dispatched_at
        if since is None or now - since < grace_s:
            continue
        gone = not alive(holder) if holder != me else not mine(tid)
        if gone:
            item.owner = item.dispatched_by = None
            item.dispatched_at = None
            changed = True
    return changed


def task_id(job_id: str, index: int) -> str:
    """The Celery task id of a chunk: the same for every message of that chunk."""
    return f"{job_id}.{index}"


def callback_task_id(job_id: str) -> str:
    return f"{job_id}.callback"


def plan_chunks(page_indices: list[int], chunk_pages: int) -> list[Chunk]:
    """The job's pages in consecutive chunks of ``chunk_pages``."""
    return [Chunk(pages=page_indices[i : i + chunk_pages]) for i in range(0, len(page_indices), chunk_pages)]
