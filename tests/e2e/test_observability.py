"""Custom metrics reach Ray's Prometheus endpoint; request ids travel through answers and errors."""

from __future__ import annotations

import time

import httpx
import pytest

from orchestrator.ops import samples
from shared.schema import OCRResponse
from tests.conftest import METRICS_PORT

pytestmark = pytest.mark.cluster


def _metric_lines(name: str) -> list[str]:
    text = httpx.get(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=30).text
    return [line for line in text.splitlines() if line.startswith(f"ray_{name}") and 'application="cpu"' in line]


def test_request_pages_latency_and_error_metrics_are_exported(rapidocr_url):
    png = samples.encode(samples.one_column_page()[0])
    with httpx.Client(base_url=rapidocr_url, timeout=120) as client:
        assert client.post("/v1/ocr", files={"file": ("p.png", png)}, data={"backend": "rapidocr"}).status_code == 200
        assert client.post("/v1/ocr", files={"file": ("p.png", b"")}, data={"backend": "rapidocr"}).status_code == 400
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ok = [x for x in _metric_lines("ocrserve_requests_total") if 'outcome="ok"' in x and 'backend="rapidocr"' in x]
        bad = [x for x in _metric_lines("ocrserve_requests_total") if 'code="empty_document"' in x]
        if ok and bad:
            break
        time.sleep(2)
    assert ok and float(ok[0].rsplit(" ", 1)[1]) >= 1
    assert bad and float(bad[0].rsplit(" ", 1)[1]) >= 1
    assert any('backend="rapidocr"' in x for x in _metric_lines("ocrserve_pages_total"))
    assert any('le="+Inf"' in x for x in _metric_lines("ocrserve_request_seconds_bucket"))
    assert _metric_lines("ocrserve_queue_wait_seconds_count")


def test_each_answer_reports_its_compute_and_prometheus_accumulates_it(rapidocr_url):
    """A lone request on the RapidOCR replica (0.5 CPU reserved) is charged 0.5 x the time it held the engine:
    an interval that contains the engine's own run and lies within the client's round trip, so the charge lies
    between 0.5 x each (containment, whatever the machine's speed; the split among concurrent requests is
    tests/unit/test_cost.py's)."""
    png = samples.encode(samples.one_column_page()[0])
    with httpx.Client(base_url=rapidocr_url, timeout=120) as client:
        started = time.perf_counter()
        r = client.post("/v1/ocr", files={"file": ("p.png", png)}, data={"backend": "rapidocr"})
        round_trip_s = time.perf_counter() - started
    result = OCRResponse.model_validate(r.json())
    compute = result.usage.compute
    assert compute is not None and compute.gpu_seconds == 0
    rounding = 1e-4  # both figures are rounded to 4 decimals
    assert 0.5 * result.timings.inference_s - rounding <= compute.cpu_seconds <= 0.5 * round_trip_s + rounding
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        lines = [x for x in _metric_lines("ocrserve_compute_seconds_total") if 'backend="rapidocr"' in x]
        if lines and 'resource="CPU"' in lines[0]:
            break
        time.sleep(2)
    assert lines and float(lines[0].rsplit(" ", 1)[1]) >= compute.cpu_seconds * 0.99


def test_request_id_is_echoed_on_success_and_error(rapidocr_url):
    with httpx.Client(base_url=rapidocr_url, timeout=60) as client:
        good = client.post(
            "/v1/ocr",
            files={"file": ("p.png", samples.encode(samples.one_column_page()[0]))},
            data={"backend": "fake"},
            headers={"x-request-id": "trace-me-1"},
        )
        bad = client.post("/v1/ocr", files={"file": ("p.png", b"")}, headers={"x-request-id": "trace-me-2"})
    assert good.json()["request_id"] == "trace-me-1" == good.headers["x-request-id"]
    assert bad.json()["request_id"] == "trace-me-2" == bad.headers["x-request-id"]
