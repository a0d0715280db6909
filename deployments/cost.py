"""What a request cost in compute: the replica's reserved resources × the time the request spent in its engine,
shared fairly among the requests that were in the engine at the same time.

Operators compare backends by cost as well as by accuracy, and what they pay for is reserved capacity (a GPU per
replica, some CPUs), not instructions retired. A replica serving one request at a time charges it all of its
resources for the request's engine time; a vLLM replica batching 32 pages charges each request its share of each
moment (1/n while n requests were in flight), so the costs of a replica's requests add up to its busy time.
"""

from __future__ import annotations

import itertools
import threading
import time


class ComputeMeter:
    """Resource-seconds per request, split among the requests in flight at each moment."""

    def __init__(self, resources: dict[str, float], *, clock=time.monotonic) -> None:
        """Args:
        resources: What one replica holds, e.g. ``{"CPU": 4, "GPU": 1}`` (Ray's assigned resources).
        clock: Seconds, monotonic (tests pass a fake one).
        """
        self.resources = {k: float(v) for k, v in resources.items() if v}
        self._clock = clock
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._share: dict[int, float] = {}  # token -> seconds of replica time charged so far
        self._last = clock()

    def _advance(self) -> None:
        now = self._clock()
        if self._share:
            slice_s = (now - self._last) / len(self._share)
            for token in self._share:
                self._share[token] += slice_s
        self._last = now

    def start(self) -> int:
        """A request enters the engine; returns its token."""
        with self._lock:
            self._advance()
            token = next(self._ids)
            self._share[token] = 0.0
            return token

    def stop(self, token: int) -> dict[str, float]:
        """The request left the engine: its resource-seconds, e.g. ``{"CPU": 2.1, "GPU": 0.52}``."""
        with self._lock:
            self._advance()
            seconds = self._share.pop(token, 0.0)
        return {name: amount * seconds for name, amount in self.resources.items()}
