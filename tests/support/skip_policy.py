"""No silent skips in CI: under ``CI=true`` a skipped test fails the run unless its reason is allowed here.

Why: a test that skips because something is not installed (vLLM, MinerU, python-pptx, Chromium...) reads as green,
so a missing install step in CI would hide whole areas of the suite. ``scripts/test.sh`` installs everything the
suite needs; the only skip a CI machine may take is for hardware it cannot have. Outside CI (a developer's
machine without vLLM, say) skips stay skips and say why.

The allow-list is :data:`ALLOWED_SKIP_REASONS`: short on purpose, and reviewed like code. A test that may skip in CI
skips with one of these reasons *exactly* (``pytest.skip(NEEDS_CUDA)``), so a new reason cannot slip in by
sharing a prefix. Collection-time skips (``pytest.importorskip`` at module level) count as well: under CI they
turn into collection errors, which stop the run before any test runs, naming every module concerned.

Loaded by ``tests/conftest.py`` (``pytest_plugins``); a run outside the repository's suite loads it with
``-p tests.support.skip_policy`` (its own test does that).
"""

from __future__ import annotations

import os
from collections.abc import Generator, Mapping

import pytest

NEEDS_CUDA = "needs a CUDA GPU"
"""Reason of the tests that exercise real GPU code (vLLM on CUDA): a CPU-only CI machine cannot run them."""

ALLOWED_SKIP_REASONS: frozenset[str] = frozenset({NEEDS_CUDA})
"""Every reason a test may be skipped for under ``CI=true``. Adding one is a decision about what CI may leave out."""

TRUE_VALUES = frozenset({"1", "true", "yes", "on"})


def in_ci(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this run is CI's: ``CI`` set to a true value (GitHub Actions, GitLab and most others set ``true``)."""
    env = os.environ if environ is None else environ
    return env.get("CI", "").strip().lower() in TRUE_VALUES


def skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    """The reason a skipped report gives (``pytest.skip("x")`` and ``skipif(reason="x")`` both give ``x``)."""
    longrepr = report.longrepr
    message = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return message.removeprefix("Skipped: ").strip()


def refusal(reason: str) -> str:
    """What a CI run says about a skip it does not allow."""
    allowed = ", ".join(repr(r) for r in sorted(ALLOWED_SKIP_REASONS))
    return (
        f"skipped under CI=true for a reason CI does not allow: {reason!r}. Allowed: {allowed} "
        "(tests/support/skip_policy.py). Install what the test needs (scripts/test.sh does) or fix the test."
    )


def _enforce(report: pytest.TestReport | pytest.CollectReport) -> None:
    if not report.skipped or hasattr(report, "wasxfail") or not in_ci():
        return
    reason = skip_reason(report)
    if reason in ALLOWED_SKIP_REASONS:
        return
    report.outcome = "failed"
    report.longrepr = refusal(reason)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    _enforce(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    _enforce(report)
    return report


def pytest_report_header(config: pytest.Config) -> str:
    if in_ci():
        return f"skip policy: CI=true, a skip fails unless its reason is one of {sorted(ALLOWED_SKIP_REASONS)}"
    return "skip policy: not CI, skips are reported as skips"
