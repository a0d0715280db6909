"""The Python client's retry rule, against a scripted server (httpx's MockTransport)."""

from __future__ import annotations

import httpx
import pytest
from pydantic import ValidationError

from orchestrator.client import OCRClient, ServiceError


def _client(answers: list[httpx.Response]) -> tuple[OCRClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers[min(len(seen), len(answers)) - 1]

    client = OCRClient("http://service", max_retries=3)
    client.http = httpx.Client(base_url="http://service", transport=httpx.MockTransport(handler))
    return client, seen


def _error(code: str, status: int = 503) -> httpx.Response:
    return httpx.Response(
        status, headers={"retry-after": "0"}, json={"success": False, "error": {"code": code, "message": "m"}}
    )


def test_overload_is_waited_out_then_the_answer_returned():
    ok = httpx.Response(200, json={"success": True})
    client, seen = _client([_error("overloaded"), _error("backend_unavailable"), ok])
    with pytest.raises(ValidationError):  # the scripted 200 is not a full OCRResponse; reaching it is the point
        client.ocr_bytes(b"x", "a.png", backend="a")
    assert len(seen) == 3


def test_missing_models_are_not_retried():
    client, seen = _client([_error("models_missing")])
    with pytest.raises(ServiceError) as e:
        client.ocr_bytes(b"x", "a.png", backend="a")
    assert e.value.error.error.code == "models_missing" and len(seen) == 1


def test_retries_are_bounded():
    client, seen = _client([_error("overloaded")])
    with pytest.raises(ServiceError):
        client.ocr_bytes(b"x", "a.png", backend="a")
    assert len(seen) == 4  # the first try and max_retries=3
