"""Putting a job's chunks and callback in the queue, and remembering what this process is busy with.

Every dispatch is two writes around one put: the store marks the items dispatched by this process (inside the
update that decided to send them), the queue gets the messages, then the store confirms (or, if the put failed,
un-marks them so the sweep sends them again). An item marked by a process that then died is found by the sweep
(:func:`~orchestrator.jobs.records.recover`). The router (at submit) and the consumers (next chunks, sweeps,
callbacks) all send through here.
"""

from __future__ import annotations

import logging
import threading

from orchestrator.jobs.queue import JobQueue
from orchestrator.jobs.records import JobRecord, callback_task_id, task_id
from orchestrator.jobs.store import JobStore

logger = logging.getLogger("ray.serve")


class Dispatcher:
    """Sends items of jobs to the queue on behalf of process ``me``, and knows which task ids it holds now."""

    def __init__(self, store: JobStore, queue: JobQueue, me: str) -> None:
        self.store = store
        self.queue = queue
        self.me = me
        self._running: set[str] = set()
        self._sending: set[str] = set()
        self._lock = threading.Lock()

    def hold(self, tid: str) -> bool:
        """Note that this process runs task ``tid``; False if it already does (a duplicate message)."""
        with self._lock:
            if tid in self._running:
                return False
            self._running.add(tid)
            return True

    def release(self, tid: str) -> None:
        with self._lock:
            self._running.discard(tid)

    def holds(self, tid: str) -> bool:
        """Whether this process runs task ``tid`` or is putting its message in the queue right now."""
        with self._lock:
            return tid in self._running or tid in self._sending

    def send_chunks(self, job_id: str, indices: list[int]) -> None:
        """Put chunks ``indices`` (already marked dispatched by ``me``) in the queue, then confirm them."""
        if not indices:
            return
        tids = [task_id(job_id, i) for i in indices]
        with self._lock:
            self._sending.update(tids)
        try:
            self.queue.send_chunks(job_id, indices)
        except Exception as e:
            logger.warning("job %s: queueing chunks %s failed (%s); the sweep will", job_id, indices, e)
            self.store.update(job_id, lambda r: r.undispatch(indices, self.me))
        else:
            self.store.update(job_id, lambda r: r.confirm(indices, self.me))
        finally:
            with self._lock:
                self._sending.difference_update(tids)

    def send_callback(self, job_id: str) -> None:
        """Put the job's callback (already marked dispatched by ``me``) in the queue, then confirm it."""
        tid = callback_task_id(job_id)
        with self._lock:
            self._sending.add(tid)
        try:
            self.queue.send_callback(job_id)
        except Exception as e:
            logger.warning("job %s: queueing the callback failed (%s); the sweep will", job_id, e)
            self.store.update(job_id, lambda r: r.undispatch_callback(self.me))
        else:
            self.store.update(job_id, lambda r: r.confirm_callback(self.me))
        finally:
            with self._lock:
                self._sending.discard(tid)

    def dispatch_new(self, record: JobRecord) -> None:
        """Fill a just-created job's window (the router, at submit)."""
        now = record.created_at
        picked = self.store.update(record.job_id, lambda r: r.take_window(self.me, now))
        if isinstance(picked, list):
            self.send_chunks(record.job_id, picked)
