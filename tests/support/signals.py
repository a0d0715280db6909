"""What end-to-end tests read instead of clocks: Prometheus scrapes, gates the fake engine waits on, and one
polling helper whose deadline is a hang guard, never the thing under test.

Metrics reach Ray's Prometheus endpoint a few seconds after they are recorded (Ray's metrics agent exports them
on an interval), so a test asks for a condition and waits for it; how long it took is not asserted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
from prometheus_client.parser import text_string_to_metric_families

T = TypeVar("T")

HANG_GUARD_S = 180.0
"""Longest wait for a condition: far beyond what any of them needs; reaching it means it never came."""


def until(condition: Callable[[], T], what: str, *, timeout_s: float = HANG_GUARD_S, every_s: float = 0.5) -> T:
    """Poll ``condition`` until it returns something truthy, and return that.

    Raises:
        AssertionError: naming ``what`` when ``timeout_s`` passes first (a hang guard, not a timing claim).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened within {timeout_s:.0f} s: {what}")
        time.sleep(every_s)


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


class Scrape:
    """One scrape of a Prometheus endpoint, parsed by the Prometheus client's own text parser."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples = [
            Sample(s.name, dict(s.labels), float(s.value))
            for family in text_string_to_metric_families(text)
            for s in family.samples
        ]

    def series(self, name: str, **labels: str) -> list[Sample]:
        """Samples called ``name`` (exactly) whose labels include ``labels``."""
        return [s for s in self.samples if s.name == name and labels.items() <= s.labels.items()]

    def total(self, name: str, **labels: str) -> float:
        """Sum of those samples (0 when there are none)."""
        return sum(s.value for s in self.series(name, **labels))


def scrape(port: int) -> Scrape:
    """Ray's Prometheus endpoint on this machine (``tests.conftest.METRICS_PORT`` for the session's cluster)."""
    return Scrape(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text)


def wait_for_total(port: int, name: str, minimum: float, **labels: str) -> float:
    """The total of ``name`` with ``labels`` once it reaches ``minimum`` (Ray exports with a delay)."""
    seen = [0.0]

    def reached() -> bool:
        seen[0] = scrape(port).total(name, **labels)
        return seen[0] >= minimum

    until(reached, f"{name}{labels} >= {minimum}")
    return seen[0]


class Gate:
    """A gate the fake engine's ``hold`` option waits on (``gate_dir`` in its config): closed until opened.

    A test that must know the order of two events holds one of them behind a gate instead of making it slow.
    """

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = Path(directory)
        self.name = name

    def waiting(self) -> int:
        """Requests waiting at this gate right now."""
        return len(list(self.directory.glob(f"{self.name}.waiting.*")))

    def passed(self) -> int:
        """Calls the engine let through this gate so far (each leaves a record): how many times a request ran."""
        return len(list(self.directory.glob(f"{self.name}.passed.*")))

    def open(self) -> None:
        (self.directory / self.name).touch()

    def is_open(self) -> bool:
        return (self.directory / self.name).exists()
