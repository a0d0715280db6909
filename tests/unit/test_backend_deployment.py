"""The deployment class outside Serve: errors as values, typed engine failures, health, memory-based recycling."""

from __future__ import annotations

import asyncio

import pytest

from benchmarks.support.fake_engine import FAKE
from deployments.backend import BackendDeployment, resident_mb
from orchestrator.ops import samples
from shared.documents import open_document
from shared.errors import OCRError
from shared.requests import RunRequest
from shared.schema import ErrorCode, ErrorDetail


def run(coro):
    return asyncio.new_event_loop().run_until_complete(coro)


def test_client_errors_come_back_as_error_values_and_results_as_responses():
    dep = BackendDeployment({"name": "f", "engine": FAKE})
    doc = open_document(samples.encode(samples.one_column_page()[0]))
    ok = run(dep.ocr(doc, RunRequest(request_id="a", received_at=0.0)))
    assert ok.backend == "f" and ok.pages[0].markdown.startswith("fake text")
    refused = run(dep.ocr(doc, RunRequest(request_id="b", received_at=0.0, options={"nope": 1})))
    assert isinstance(refused, ErrorDetail) and refused.code == ErrorCode.INVALID_OPTION
    assert OCRError.from_detail(refused).status == 400


def test_health_check_fails_when_engine_breaks():
    dep = BackendDeployment({"name": "f", "engine": FAKE})
    run(dep.check_health())
    dep.engine.healthy = False
    with pytest.raises(RuntimeError, match="unhealthy"):
        run(dep.check_health())


def test_the_health_check_answers_while_every_request_thread_is_busy():
    """Requests hold the loop's default thread pool while the engine works; the liveness probe has a thread of its
    own, so a replica that is only busy is not reported dead (Serve would kill it and every request in it)."""
    import concurrent.futures
    import threading

    dep = BackendDeployment({"name": "f", "engine": FAKE})
    release = threading.Event()

    async def probe_while_busy() -> None:
        loop = asyncio.get_running_loop()
        busy = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        loop.set_default_executor(busy)  # one request thread, and a request holding it
        held = loop.run_in_executor(None, release.wait, 120)
        try:
            await asyncio.wait_for(dep.check_health(), timeout=30)  # a hang guard: queued behind it, it never ran
        finally:
            release.set()
        assert await held is True

    run(probe_while_busy())


def test_replica_is_recycled_past_its_memory_ceiling():
    assert resident_mb() > 10  # this test process
    roomy = BackendDeployment({"name": "f", "engine": FAKE, "max_rss_mb": 1_000_000})
    run(roomy.check_health())
    tight = BackendDeployment({"name": "f", "engine": FAKE, "max_rss_mb": 1})
    with pytest.raises(RuntimeError, match="max_rss_mb"):
        run(tight.check_health())


@pytest.mark.parametrize(
    ("failure", "code", "said"),
    [
        ("cuda_oom", ErrorCode.BACKEND_UNAVAILABLE, "OutOfMemoryError"),
        ("value_error", ErrorCode.BACKEND_UNAVAILABLE, "ValueError"),
        ("models_missing", ErrorCode.MODELS_MISSING, "not on disk"),
    ],
)
def test_an_engine_that_cannot_start_leaves_the_replica_up_and_saying_why(failure, code, said):
    """Only OCRError used to be caught: a CUDA OOM or a library's ValueError escaped the constructor and Serve
    restarted the replica in a loop. Now every start failure is the replica's answer, and liveness holds."""
    dep = BackendDeployment({"name": "f", "engine": FAKE, "engine_config": {"fail_start": failure}})
    assert dep.start_error is not None and dep.start_error.code == code and said in dep.start_error.message
    status = run(dep.describe())
    assert status.status == "unavailable" and said in (status.detail or "")
    doc = open_document(samples.encode(samples.one_column_page()[0]))
    answer = run(dep.ocr(doc, RunRequest(request_id="a", received_at=0.0)))
    assert isinstance(answer, ErrorDetail) and answer.code == code and OCRError.from_detail(answer).status == 503
    run(dep.check_health())  # no exception: Serve keeps this replica instead of restarting it
