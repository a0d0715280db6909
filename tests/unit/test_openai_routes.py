"""The OpenAI routes and the chunks of /v1/ocr through the real app and Router, with fake backend handles.

The same over real HTTP, with real engines and the official ``openai`` client: tests/e2e/test_openai_http.py.
"""

from __future__ import annotations

import base64
import json

import pytest
from fastapi.testclient import TestClient

from orchestrator.ops import samples
from orchestrator.serving.api import create_api
from orchestrator.serving.config import RouterSettings
from orchestrator.serving.router import Router
from shared.schema import OCRResponse
from shared.tokens import NamedCounter, bundled_counter
from tests.support.chunk_checks import check_chunks
from tests.unit.test_router import PNG, FakeHandle

DATA_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()


def _client(**settings) -> TestClient:
    router = Router(
        {"a": FakeHandle("a"), "b": FakeHandle("b")},
        RouterSettings(**{"cascades": {"ab": {"first": "a", "then": "b"}}, **settings}),
    )
    return TestClient(create_api(router))


def _chat(content, model="a", **fields):
    return {"model": model, "messages": [{"role": "user", "content": content}], **fields}


def _image(url=DATA_URL):
    return {"type": "image_url", "image_url": {"url": url}}


def test_models_lists_auto_backends_and_cascades():
    r = _client().get("/v1/models")
    assert r.status_code == 200
    assert [m["id"] for m in r.json()["data"]] == ["auto", "a", "b", "ab"] and r.json()["object"] == "list"


def test_chat_answers_the_pages_markdown_with_usage_and_streams_it_ending_with_done():
    client = _client()
    plain = client.post("/v1/chat/completions", json=_chat([_image(), _image()], temperature=0))
    assert plain.status_code == 200, plain.text
    body = plain.json()
    content = body["choices"][0]["message"]["content"]
    assert body["object"] == "chat.completion" and body["choices"][0]["finish_reason"] == "stop"
    assert content.count("from a") >= 2 and body["ocrserve"]["backends"] == ["a", "a"]
    assert body["usage"]["completion_tokens"] > 0 and body["ocrserve"]["usage_source"] == "tokenizer:cl100k_base"
    assert "temperature" in body["ocrserve"]["ignored"]

    stream = client.post(
        "/v1/chat/completions", json=_chat([_image()], stream=True, stream_options={"include_usage": True})
    )
    assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
    events = [line[6:] for line in stream.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text.startswith("from a") and chunks[-1]["usage"]["total_tokens"] > 0


@pytest.mark.parametrize(
    ("content", "model", "status", "code", "param"),
    [
        ([{"type": "text", "text": "hello"}], "a", 400, "invalid_option", "messages"),
        ([_image("https://example.com/page.png")], "a", 400, "invalid_option", "messages[0].content[0].image_url.url"),
        ([_image()], "nope", 404, "model_not_found", "model"),
        ([_image("data:image/png;base64,@@not base64@@")], "a", 400, "invalid_option", None),
        ([_image("data:image/png,rawbytes")], "a", 400, "invalid_option", None),
        ([{"type": "text", "text": "Write a poem about this"}, _image()], "a", 400, "invalid_option", "messages"),
    ],
)
def test_bad_chat_requests_get_their_4xx_in_openais_error_shape(content, model, status, code, param):
    r = _client().post("/v1/chat/completions", json=_chat(content, model))
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["code"] == code
    assert error["type"] == ("not_found_error" if status == 404 else "invalid_request_error")
    if param is not None:
        assert error["param"] == param


def test_images_over_the_byte_and_pixel_limits_are_refused_in_openais_shape():
    small = _client(limits={"max_bytes": 2000})
    r = small.post("/v1/chat/completions", json=_chat([_image()]))
    assert r.status_code == 413 and r.json()["error"]["code"] == "document_too_large"
    few_pixels = _client(limits={"max_pixels_per_page": 10_000})
    r = few_pixels.post("/v1/chat/completions", json=_chat([_image()]))
    assert r.status_code == 413 and "error" in r.json() and r.json()["error"]["type"] == "invalid_request_error"
    r = _client().post("/v1/chat/completions", content=b"{not json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_option"


def test_the_api_key_is_taken_as_a_bearer_token_and_refused_in_openais_shape():
    client = _client(api_key="sekrit")
    r = client.post("/v1/chat/completions", json=_chat([_image()]))
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    r = client.get("/v1/models", headers={"authorization": "Bearer wrong"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    ok = client.post("/v1/chat/completions", json=_chat([_image()]), headers={"authorization": "Bearer sekrit"})
    assert ok.status_code == 200, ok.text
    assert client.get("/v1/backends", headers={"authorization": "Bearer sekrit"}).status_code == 200
    assert client.get("/v1/backends", headers={"x-api-key": "sekrit"}).status_code == 200


def test_ocr_answers_chunks_after_a_cascade_when_asked_and_refuses_an_unknown_tokenizer():
    pdf = samples.multi_page_pdf([samples.one_column_page()[0]] * 3)
    client = _client()
    form = {"backend": "ab", "chunking": "tokens", "chunk_tokens": "40", "chunk_overlap": "8"}
    r = client.post("/v1/ocr", files={"file": ("d.pdf", pdf)}, data=form)
    assert r.status_code == 200, r.text
    result = OCRResponse.model_validate(r.json())
    assert result.chunks and result.chunking is not None and result.chunking.mode == "tokens"
    check_chunks(result, result.chunks, result.chunking, bundled_counter("cl100k_base"))
    as_json = {"file_base64": base64.b64encode(PNG).decode(), "backend": "a", "chunking": "layout"}
    r = client.post("/v1/ocr", json=as_json)
    assert r.status_code == 200 and r.json()["chunking"]["mode"] == "layout" and r.json()["chunks"]
    plain = client.post("/v1/ocr", files={"file": ("p.png", PNG)}, data={"backend": "a"}).json()
    assert plain["chunks"] is None and plain["chunking"] is None
    bad = client.post("/v1/ocr", files={"file": ("p.png", PNG)}, data={"chunking": "layout", "tokenizer": "gpt2"})
    assert bad.status_code == 400 and "backend:a" in json.dumps(bad.json()["error"]["accepted"])
    job = client.post("/v1/jobs", files={"file": ("p.png", PNG)}, data={"chunking": "layout"})
    assert job.status_code == 400


def test_chunks_counted_by_a_backends_own_tokenizer_asked_over_its_handle():
    from shared.schema import TokenCount
    from tests.unit.test_router import _Method

    handle = FakeHandle("a", config={"text": "\n\n".join(samples.PARAGRAPHS)})
    asked: list[list[str]] = []

    async def count_tokens(texts):
        asked.append(list(texts))
        return TokenCount(counts=[len(t.split()) for t in texts], tokenizer="words")

    handle.count_tokens = _Method(count_tokens)
    client = TestClient(create_api(Router({"a": handle})))
    form = {"backend": "a", "chunking": "tokens", "chunk_tokens": "32", "tokenizer": "backend:a"}
    pdf = samples.multi_page_pdf([samples.one_column_page()[0]] * 2)
    r = client.post("/v1/ocr", files={"file": ("d.pdf", pdf)}, data=form)
    assert r.status_code == 200, r.text
    result = OCRResponse.model_validate(r.json())
    assert result.chunking.tokenizer == "backend:a (words)" and len(result.chunks) > 1
    words = NamedCounter("words", lambda texts: [len(t.split()) for t in texts])
    check_chunks(result, result.chunks, result.chunking, words)
    asked_texts = [t for batch in asked for t in batch]
    assert len(asked_texts) == len(set(asked_texts))  # each text asked once (cached)
