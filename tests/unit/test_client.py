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


def _status(state: str, done: int, total: int = 3) -> dict:
    return {
        "job_id": "0" * 32,
        "state": state,
        "backend": "a",
        "pages_total": total,
        "pages_done": done,
        "created_at": 1.0,
        "updated_at": 2.0,
    }


def _sse(*events: tuple[int | None, str, dict]) -> bytes:
    import json

    out = b"retry: 2000\n\n: a comment\n\n"
    for eid, kind, data in events:
        head = f"id: {eid}\n" if eid is not None else ""
        out += f"{head}event: {kind}\ndata: {json.dumps(data)}\n\n".encode()
    return out


def _page(i: int) -> dict:
    return {"index": i, "width": 10, "height": 10, "markdown": f"page {i}", "blocks": []}


def test_run_job_follows_the_event_stream_resuming_after_the_last_event_when_it_breaks():
    """The stream breaks after two events; the client reconnects with Last-Event-ID and sees each page once."""
    page = {"job_id": "0" * 32, "position": 0, "page": _page(1)}
    first = _sse((None, "status", _status("queued", 0)), (1, "page", page))
    second = _sse(
        (None, "status", _status("running", 1)),
        (2, "progress", _status("running", 1)),
        (3, "page", {**page, "position": 1, "page": _page(0)}),
        (4, "end", _status("succeeded", 3)),
    )
    asked: list[str | None] = []
    result = {
        "request_id": "r",
        "backend": "a",
        "model": {"id": "m", "engine": "e"},
        "document": {"name": "d", "media_type": "application/pdf", "size_bytes": 1, "sha256": "0", "page_count": 2,
                     "pages_processed": [0, 1]},
        "markdown": "page 0\n\npage 1",
        "pages": [_page(0), _page(1)],
        "usage": {"pages": 2},
    }  # fmt: skip

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "POST":
            return httpx.Response(202, json=_status("queued", 0))
        if path.endswith("/events"):
            asked.append(request.headers.get("last-event-id"))
            if len(asked) == 1:  # the connection drops after the first page
                return httpx.Response(200, stream=_Broken(first), headers={"content-type": "text/event-stream"})
            return httpx.Response(200, content=second, headers={"content-type": "text/event-stream"})
        if path.endswith("/result"):
            return httpx.Response(200, json=result)
        return httpx.Response(200, json=_status("succeeded", 3))

    client = OCRClient("http://service")
    client.http = httpx.Client(base_url="http://service", transport=httpx.MockTransport(handler))
    pages, progress = [], []
    answer = client.run_job(
        b"%PDF", "d.pdf", on_page=lambda p: pages.append(p.index), progress=lambda d, t: progress.append(d)
    )
    assert asked == [None, "1"]  # resumed after the last event seen
    assert pages == [1, 0] and progress[-1] == 3 and answer.markdown == "page 0\n\npage 1"


class _Broken(httpx.SyncByteStream):
    """A response body that ends with a network error after its bytes."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __iter__(self):
        yield self.data
        raise httpx.ReadError("connection reset")


def test_cancel_and_bad_job_answers_are_service_errors():
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE":
            return httpx.Response(409, json={"success": False, "error": {"code": "job_finished", "message": "m"}})
        return httpx.Response(404, json={"success": False, "error": {"code": "not_found", "message": "no job"}})

    client = OCRClient("http://service")
    client.http = httpx.Client(base_url="http://service", transport=httpx.MockTransport(handler))
    with pytest.raises(ServiceError) as e:
        client.cancel_job("0" * 32)
    assert e.value.status == 409 and e.value.error.error.code == "job_finished"
    with pytest.raises(ServiceError) as e:
        list(client.job_events("0" * 32))
    assert e.value.status == 404
