"""vLLM's own scheduler bookkeeping, kept for health: how many pages it had running and waiting.

Continuous batching is the reason to run vLLM, so whether pages really run together must be visible, not
assumed: vLLM hands every stat logger the scheduler's counts after each engine step (``SchedulerStats``
``num_running_reqs`` / ``num_waiting_reqs``). :class:`SchedulerWatch` keeps the current and peak values; health
reports them, tests read them to show that a PDF's pages and concurrent requests share the batch, and the
benchmark prints the peak per concurrency level.
"""

from __future__ import annotations

import threading
from typing import Any


class SchedulerWatch:
    """Current and peak running/waiting requests as vLLM's scheduler reports them (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.steps = 0
        self.running = 0
        self.waiting = 0
        self.peak_running = 0
        self.peak_waiting = 0

    def observe(self, running: int, waiting: int) -> None:
        """Record one scheduler report."""
        with self._lock:
            self.steps += 1
            self.running, self.waiting = running, waiting
            self.peak_running = max(self.peak_running, running)
            self.peak_waiting = max(self.peak_waiting, waiting)

    def reset_peaks(self) -> None:
        """Start a new observation window (the benchmark does, per concurrency level)."""
        with self._lock:
            self.peak_running, self.peak_waiting = self.running, self.waiting

    def snapshot(self) -> dict[str, int]:
        """The counts, for health info."""
        with self._lock:
            return {
                "steps": self.steps,
                "running": self.running,
                "waiting": self.waiting,
                "peak_running": self.peak_running,
                "peak_waiting": self.peak_waiting,
            }

    def logger_factory(self) -> Any:
        """A vLLM stat-logger class feeding this watch (imports vLLM; pass it in ``stat_loggers``)."""
        from vllm.v1.metrics.loggers import StatLoggerBase

        watch = self

        class SchedulerWatchLogger(StatLoggerBase):
            """Receives vLLM's per-step scheduler stats."""

            def __init__(self, vllm_config: Any, engine_index: int = 0) -> None:
                self.engine_index = engine_index

            def record(
                self, scheduler_stats: Any, iteration_stats: Any, mm_cache_stats: Any = None, engine_idx: int = 0
            ) -> None:
                if scheduler_stats is not None:
                    watch.observe(int(scheduler_stats.num_running_reqs), int(scheduler_stats.num_waiting_reqs))

            def log_engine_initialized(self) -> None:
                return None

        return SchedulerWatchLogger
