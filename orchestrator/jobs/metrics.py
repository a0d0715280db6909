"""Job metrics, exported by Ray beside the router's ``ocrserve_*`` (Prometheus adds the ``ray_`` prefix).

- ``ocrserve_jobs`` (state: queued, running): jobs not ended; ``ocrserve_job_chunks`` (state: queued — the queue
  depth, chunks waiting for a consumer — and running). Gauges read from the job store by every consumer replica on
  each sweep: the same figure from each, so take ``max`` across replicas, not ``sum``.
- ``ocrserve_jobs_submitted_total`` (backend), ``ocrserve_jobs_ended_total`` (backend, state).
- ``ocrserve_job_chunk_queue_seconds`` (backend): a chunk's time in the queue, from dispatch to a consumer taking it.
- ``ocrserve_job_chunk_seconds`` (backend): a chunk's backend call; ``ocrserve_job_chunks_total`` (backend, outcome:
  done, retried, failed, dropped — a duplicate or a cancelled job's chunk).
- ``ocrserve_job_callbacks_total`` (outcome: delivered, retried, failed).

Outside a Ray worker (unit tests) recording is a no-op.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger("ray.serve")


def _tags(*keys: str) -> Any:
    """Tag keys as Ray's metrics take them (annotated as a 1-tuple there, whatever their number)."""
    return keys


CHUNK_BOUNDARIES = [0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600]


class JobMetrics:
    """Every method is safe to call when metrics are unavailable."""

    def __init__(self) -> None:
        try:
            from ray.serve.metrics import Counter, Gauge, Histogram

            self.jobs = Gauge("ocrserve_jobs", description="Jobs not ended, by state.", tag_keys=("state",))
            self.chunks = Gauge(
                "ocrserve_job_chunks",
                description="Chunks of unended jobs: queued (the queue depth) or running.",
                tag_keys=("state",),
            )
            self.submitted = Counter(
                "ocrserve_jobs_submitted_total", description="Jobs submitted, by backend.", tag_keys=("backend",)
            )
            self.ended = Counter(
                "ocrserve_jobs_ended_total",
                description="Jobs ended, by backend and state.",
                tag_keys=_tags("backend", "state"),
            )
            self.queue_wait = Histogram(
                "ocrserve_job_chunk_queue_seconds",
                description="Time a chunk waited in the queue, dispatch to start, seconds.",
                boundaries=CHUNK_BOUNDARIES,
                tag_keys=("backend",),
            )
            self.chunk_time = Histogram(
                "ocrserve_job_chunk_seconds",
                description="A chunk's backend call, seconds.",
                boundaries=CHUNK_BOUNDARIES,
                tag_keys=("backend",),
            )
            self.chunk_outcomes = Counter(
                "ocrserve_job_chunks_total", description="Chunk runs by outcome.", tag_keys=_tags("backend", "outcome")
            )
            self.callbacks = Counter(
                "ocrserve_job_callbacks_total", description="Callback attempts by outcome.", tag_keys=("outcome",)
            )
            self.enabled = True
        except Exception as e:  # no Ray here
            logger.debug("job metrics unavailable: %s", e)
            self.enabled = False

    def _do(self, what: str, fn: Any) -> None:
        if not self.enabled:
            return
        try:
            fn()
        except Exception as e:  # metrics never break a job
            logger.debug("metric %s failed: %s", what, e)

    def levels(self, *, queued_jobs: int, running_jobs: int, queued_chunks: int, running_chunks: int) -> None:
        def go() -> None:
            self.jobs.set(queued_jobs, tags={"state": "queued"})
            self.jobs.set(running_jobs, tags={"state": "running"})
            self.chunks.set(queued_chunks, tags={"state": "queued"})
            self.chunks.set(running_chunks, tags={"state": "running"})

        self._do("levels", go)

    def job_submitted(self, backend: str) -> None:
        self._do("submitted", lambda: self.submitted.inc(tags={"backend": backend}))

    def job_ended(self, backend: str, state: str) -> None:
        self._do("ended", lambda: self.ended.inc(tags={"backend": backend, "state": state}))

    def chunk_started(self, backend: str, waited_s: float) -> None:
        self._do("queue wait", lambda: self.queue_wait.observe(max(0.0, waited_s), tags={"backend": backend}))

    def chunk_ran(self, backend: str, seconds: float, outcome: str) -> None:
        def go() -> None:
            self.chunk_time.observe(seconds, tags={"backend": backend})
            self.chunk_outcomes.inc(tags={"backend": backend, "outcome": outcome})

        self._do("chunk", go)

    def chunk_outcome(self, backend: str, outcome: str) -> None:
        self._do("chunk outcome", lambda: self.chunk_outcomes.inc(tags={"backend": backend, "outcome": outcome}))

    def callback(self, outcome: str) -> None:
        self._do("callback", lambda: self.callbacks.inc(tags={"outcome": outcome}))
