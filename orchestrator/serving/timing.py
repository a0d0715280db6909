"""Where one request's time went inside the router, answered as a ``Server-Timing`` header.

The HTTP layer opens a :class:`ServerTiming` per request (``api.middleware``); code on the request's path records
its phases with :func:`phase` or :func:`record` without being handed anything: the timing travels in a context
variable, which asyncio copies into tasks and ``asyncio.to_thread`` into threads. Outside a request (unit tests
calling the router directly, the job runner) recording is a no-op.

Names used (milliseconds, W3C Server-Timing syntax): ``read`` (body and multipart parsing), ``validate``
(sniffing and limits), ``backend`` (the handle call, round trip), ``engine`` (the backend's own pipeline time, as
it reports in ``timings.inference_s``), ``encode`` (the JSON body), ``app`` (the router's whole time, up to the
response headers). A client's total minus ``app`` is what the proxy and the network cost.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

HEADER = "server-timing"


class ServerTiming:
    """Phases of one request, in the order they were recorded."""

    __slots__ = ("started", "entries")

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.entries: list[tuple[str, float]] = []

    def add(self, name: str, seconds: float) -> None:
        self.entries.append((name, seconds))

    def header(self) -> str:
        """The header's value: every phase, then ``app`` (the time since the request reached the router)."""
        parts = [f"{name};dur={seconds * 1000:.3f}" for name, seconds in self.entries]
        parts.append(f"app;dur={(time.perf_counter() - self.started) * 1000:.3f}")
        return ", ".join(parts)


_current: ContextVar[ServerTiming | None] = ContextVar("ocrserve_server_timing", default=None)


def start() -> tuple[ServerTiming, object]:
    """A new timing for the request being handled, and the token that :func:`finish` resets."""
    timing = ServerTiming()
    return timing, _current.set(timing)


def finish(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]


def record(name: str, seconds: float) -> None:
    """Record a phase measured elsewhere (e.g. reported by a backend)."""
    timing = _current.get()
    if timing is not None:
        timing.add(name, seconds)


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Time the block as phase ``name`` of the current request (also when it raises)."""
    timing = _current.get()
    if timing is None:
        yield
        return
    started = time.perf_counter()
    try:
        yield
    finally:
        timing.add(name, time.perf_counter() - started)


def parse(header: str) -> dict[str, float]:
    """``{name: milliseconds}`` from a Server-Timing header (what benchmarks and clients read)."""
    out: dict[str, float] = {}
    for item in header.split(","):
        name, _, params = item.strip().partition(";")
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "dur" and name:
                try:
                    out[name] = out.get(name, 0.0) + float(value)
                except ValueError:
                    pass
    return out
