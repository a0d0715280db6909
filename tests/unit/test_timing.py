"""Server-Timing: phases recorded along a request's path come back as one header; nothing outside a request."""

from __future__ import annotations

import asyncio

from fastapi.testclient import TestClient

from orchestrator.serving import timing
from orchestrator.serving.api import create_api
from orchestrator.serving.config import RouterSettings
from orchestrator.serving.router import Router
from shared.schema import OCRResponse
from tests.unit.test_router import PNG, FakeHandle


def test_header_round_trips_and_ends_with_the_router_total():
    t = timing.ServerTiming()
    t.add("read", 0.0012)
    t.add("backend", 0.25)
    parsed = timing.parse(t.header())
    assert list(parsed) == ["read", "backend", "app"]
    assert parsed["read"] == 1.2 and parsed["backend"] == 250.0 and parsed["app"] >= 0
    assert timing.parse('cache;desc="hit", db;dur=53, junk;dur=x') == {"db": 53.0}


def test_recording_outside_a_request_is_a_no_op():
    """Phases recorded where no request is open (unit tests, the job runner) go nowhere: not into the next
    request's header, and the block still runs."""
    ran = []
    with timing.phase("validate"):
        ran.append(True)
    timing.record("engine", 1.0)  # nothing raised
    assert ran == [True]
    t, token = timing.start()
    try:
        timing.record("backend", 0.5)
    finally:
        timing.finish(token)
    timing.record("after", 2.0)  # the request is finished: not added to it
    assert list(timing.parse(t.header())) == ["backend", "app"]


def test_phases_reach_the_timing_across_threads():
    async def request() -> dict[str, float]:
        t, token = timing.start()
        try:
            with timing.phase("validate"):
                await asyncio.to_thread(timing.record, "in_thread", 0.001)
        finally:
            timing.finish(token)
        return timing.parse(t.header())

    assert {"in_thread", "validate", "app"} <= set(asyncio.run(request()))


def test_ocr_answers_with_server_timing_and_the_request_id():
    api = TestClient(create_api(Router({"a": FakeHandle("a")}, RouterSettings())))
    r = api.post("/v1/ocr", files={"file": ("p.png", PNG)}, data={"backend": "a"}, headers={"x-request-id": "t-1"})
    assert r.status_code == 200 and r.headers["x-request-id"] == "t-1"
    assert OCRResponse.model_validate(r.json()).request_id == "t-1"
    phases = timing.parse(r.headers["server-timing"])
    assert {"read", "validate", "backend", "engine", "metrics", "encode", "app"} <= set(phases)
    assert phases["app"] >= phases["backend"] >= 0
    refused = api.post("/v1/ocr", files={"file": ("p.png", b"")}, headers={"x-request-id": "t-2"})
    assert refused.status_code == 400 and refused.headers["x-request-id"] == "t-2"
    assert "app" in timing.parse(refused.headers["server-timing"])
