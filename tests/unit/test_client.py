"""The Python client's retry rule and its reading of answers, against a scripted server (httpx's MockTransport)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from orchestrator.client import OCRClient, ServiceError
from orchestrator.client.http import IDEMPOTENCY_HEADER
from orchestrator.ops import samples

Answer = httpx.Response | Exception


def _client(answers: list[Answer]) -> tuple[OCRClient, list[httpx.Request], list[float]]:
    """A client whose server gives ``answers`` in turn (the last one again and again); the requests it saw and the
    waits the client made."""
    seen: list[httpx.Request] = []
    waits: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers[min(len(seen), len(answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    client = OCRClient("http://service", max_retries=3)
    client.http = httpx.Client(base_url="http://service", transport=httpx.MockTransport(handler))
    client.sleep = waits.append
    return client, seen, waits


def _error(code: str, status: int = 503, retry_after: str | None = "0") -> httpx.Response:
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    return httpx.Response(status, headers=headers, json={"success": False, "error": {"code": code, "message": "m"}})


DROPPED = httpx.RemoteProtocolError("Server disconnected without sending a response.")
LISTING = httpx.Response(200, json={"backends": [], "auto_order": [], "default_backend": "auto"})


def test_overload_is_waited_out_then_the_answer_returned():
    ok = httpx.Response(200, json={"success": True})
    client, seen, _ = _client([_error("overloaded"), _error("backend_unavailable"), ok])
    with pytest.raises(ValidationError):  # the scripted 200 is not a full OCRResponse; reaching it is the point
        client.ocr_bytes(b"x", "a.png", backend="a")
    assert len(seen) == 3


def test_missing_models_are_not_retried():
    client, seen, _ = _client([_error("models_missing")])
    with pytest.raises(ServiceError) as e:
        client.ocr_bytes(b"x", "a.png", backend="a")
    assert e.value.error.error.code == "models_missing" and len(seen) == 1


def test_retries_are_bounded():
    client, seen, _ = _client([_error("overloaded")])
    with pytest.raises(ServiceError):
        client.ocr_bytes(b"x", "a.png", backend="a")
    assert len(seen) == 4  # the first try and max_retries=3


def test_retry_after_is_honoured_and_capped():
    client, _, waits = _client([_error("backend_unavailable", retry_after="2"), _error("overloaded", retry_after="99")])
    with pytest.raises(ServiceError):
        client.backends()
    assert waits == [2.0, 30.0, 30.0]


def test_a_get_whose_connection_dropped_is_sent_again():
    client, seen, waits = _client([DROPPED, httpx.ConnectError("refused"), LISTING])
    assert client.backends().backends == []
    assert len(seen) == 3 and waits == [0.5, 1.0]  # no Retry-After without an answer: a growing wait


def test_a_post_carries_one_idempotency_key_on_every_try_and_a_new_one_per_call():
    client, seen, _ = _client([DROPPED, _error("backend_unavailable"), _error("invalid_option", 400)])
    with pytest.raises(ServiceError):
        client.ocr_bytes(b"x", "a.png", backend="a")
    keys = [r.headers[IDEMPOTENCY_HEADER] for r in seen]
    assert len(keys) == 3 and len(set(keys)) == 1 and len(keys[0]) == 36  # a UUID, the same on each retry
    with pytest.raises(ServiceError):
        client.ocr_bytes(b"x", "a.png", backend="a")
    assert seen[-1].headers[IDEMPOTENCY_HEADER] != keys[0]
    with pytest.raises(ServiceError):
        client.ocr_bytes(b"x", "a.png", backend="a", idempotency_key="mine-1")
    assert seen[-1].headers[IDEMPOTENCY_HEADER] == "mine-1"


def test_each_chunk_of_a_document_is_a_call_of_its_own(tmp_path: Path):
    images, _ = samples.numbered_pages(3)
    pdf = tmp_path / "three.pdf"
    pdf.write_bytes(samples.multi_page_pdf(images))
    client, seen, _ = _client([_error("invalid_option", 400)])
    with pytest.raises(ServiceError):
        client.ocr_file(pdf, chunk_pages=2, idempotency_key="doc-7")
    assert seen[-1].headers[IDEMPOTENCY_HEADER] == "doc-7:1,2"  # the first chunk failed: nothing else was sent


def test_a_post_without_a_key_is_never_sent_twice():
    client, seen, _ = _client([DROPPED, LISTING])
    with pytest.raises(httpx.RemoteProtocolError):
        client._send("POST", "/v1/ocr", retry=False)
    assert len(seen) == 1
    with pytest.raises(ValueError, match=IDEMPOTENCY_HEADER):
        client._send("POST", "/v1/ocr", retry=True)


def test_the_routers_own_timeout_is_final_a_proxys_is_waited_out():
    client, seen, _ = _client([_error("timeout", 504, retry_after=None)])
    with pytest.raises(ServiceError) as e:
        client.backends()
    assert e.value.status == 504 and len(seen) == 1
    client, seen, _ = _client([_error("timeout", 504), LISTING])
    assert client.backends().backends == [] and len(seen) == 2


def test_an_answer_that_is_not_the_services_json_is_a_service_error_not_a_crash():
    plain = httpx.Response(500, text="Internal Server Error", headers={"content-type": "text/plain"})
    client, seen, _ = _client([plain])
    with pytest.raises(ServiceError) as e:
        client.ocr_bytes(b"x", "a.png", backend="a")
    assert e.value.status == 500 and e.value.error.error.code == "internal_error" and len(seen) == 1
    assert "Internal Server Error" in e.value.error.error.message

    other_json = httpx.Response(422, json={"detail": [{"msg": "field required"}]})
    client, _, _ = _client([other_json])
    with pytest.raises(ServiceError) as e:
        client.backends()
    assert e.value.status == 422 and "field required" in e.value.error.error.message

    html = httpx.Response(200, text="<html>a login page</html>", headers={"content-type": "text/html"})
    client, _, _ = _client([html])
    with pytest.raises(ServiceError):
        client.backends()


def test_a_balancers_plain_503_is_waited_out_then_reported_in_the_api_shape():
    plain = httpx.Response(503, text="Service Unavailable", headers={"content-type": "text/plain"})
    client, seen, waits = _client([plain])
    with pytest.raises(ServiceError) as e:
        client.backends()
    assert len(seen) == 4 and waits == [0.5, 1.0, 2.0]
    assert e.value.status == 503 and e.value.error.error.code == "backend_unavailable"


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
