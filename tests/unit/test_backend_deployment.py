"""The deployment class outside Serve: errors as values, typed engine failures, health, memory-based recycling."""

from __future__ import annotations

import asyncio

import pytest

from benchmarks.support.fake_engine import FAKE
from deployments.backend import BackendDeployment, resident_mb
from shared import samples
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


def test_replica_is_recycled_past_its_memory_ceiling():
    assert resident_mb() > 10  # this test process
    roomy = BackendDeployment({"name": "f", "engine": FAKE, "max_rss_mb": 1_000_000})
    run(roomy.check_health())
    tight = BackendDeployment({"name": "f", "engine": FAKE, "max_rss_mb": 1})
    with pytest.raises(RuntimeError, match="max_rss_mb"):
        run(tight.check_health())
