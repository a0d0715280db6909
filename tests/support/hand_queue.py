"""The job queue as a list a test delivers from by hand: every message Celery would carry, in order, so the job
path's rules (window, claims, recovery) run deterministically without a broker or Ray."""

from __future__ import annotations

from collections import deque
from typing import Any

from orchestrator.jobs.records import callback_task_id, task_id


class HandQueue:
    """Stands in for :class:`orchestrator.jobs.queue.JobQueue`."""

    def __init__(self) -> None:
        self.messages: deque[tuple[str, tuple]] = deque()
        self.revoked: list[str] = []
        self.redis = False

    def send_chunks(self, job_id: str, indices: list[int]) -> None:
        self.messages.extend(("chunk", (job_id, i)) for i in indices)

    def send_callback(self, job_id: str) -> None:
        self.messages.append(("callback", (job_id,)))

    def waiting(self) -> frozenset[str]:
        """The task ids of the messages not yet delivered (what the embedded broker answers)."""
        return frozenset(task_id(*args) if kind == "chunk" else callback_task_id(*args) for kind, args in self.messages)

    def revoke(self, task_ids: list[str]) -> None:
        self.revoked.extend(task_ids)

    def deliver(self, consumer: Any, *, limit: int = 1000) -> list[str]:
        """Hand queued messages to ``consumer`` (a JobConsumer) in order, up to ``limit``; returns its outcomes."""
        outcomes = []
        while self.messages and limit:
            kind, args = self.messages.popleft()
            outcomes.append(consumer.run_chunk(*args) if kind == "chunk" else consumer.deliver_callback(*args))
            limit -= 1
        return outcomes
