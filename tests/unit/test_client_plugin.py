"""The client and CLI for chunks and the OpenAI endpoint (OCRClient.ocr/ocr_chunks/chat/chat_stream, ``ocrserve ocr
--chunks``), against a scripted server (httpx's MockTransport) answering with the API's own shapes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from orchestrator.client import OCRClient, ServiceError
from orchestrator.ops import samples
from shared.chunking import chunk_response
from shared.errors import OCRError
from shared.openai_api import ChatCompletionRequest, completion, openai_error, read_messages, sse, stream_chunks
from shared.requests import ChunkingOptions
from shared.schema import ErrorCode
from shared.tokens import bundled_counter
from tests.support.responses import make_response

PAGE = [("title", "Guide", "# Guide"), ("text", "Install it. Then run it.", "Install it. Then run it.")]


def _form(request: httpx.Request) -> dict[str, str]:
    """The text fields of a multipart body."""
    body = request.content.decode("latin-1")
    return dict(re.findall(r'name="([^"]+)"\r\n\r\n([^\r]*)\r\n', body))


def _answer(pages: int, form: dict[str, str], indices: list[int] | None = None) -> dict:
    response = make_response([PAGE] * pages)
    for page, index in zip(response.pages, indices or range(pages)):
        page.index = index
    if form.get("chunking", "none") != "none":
        options = ChunkingOptions.model_validate(
            {k: v for k, v in form.items() if k.startswith("chunk") or k == "tokenizer"}
        )
        response.chunks, response.chunking = chunk_response(response, options, bundled_counter(options.tokenizer))
    return json.loads(response.model_dump_json())


def _client(handler, api_key: str | None = None) -> OCRClient:
    client = OCRClient("http://service", api_key=api_key, max_retries=0)
    client.http = httpx.Client(
        base_url="http://service", transport=httpx.MockTransport(handler), headers=dict(client.http.headers)
    )
    return client


def test_ocr_sends_the_chunking_fields_and_reads_the_chunks():
    seen: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(_form(request))
        return httpx.Response(200, json=_answer(1, seen[-1]))

    client = _client(handler)
    result = client.ocr(b"png", filename="p.png", backend="rapidocr", chunking="layout", chunk_tokens=256)
    assert seen[-1] == {
        "backend": "rapidocr", "include_boxes_image": "true", "include_raw": "false", "chunking": "layout",
        "chunk_tokens": "256",
    }  # fmt: skip
    assert result.chunking.mode == "layout" and result.chunking.chunk_tokens == 256
    assert result.chunks[0].heading_path == ["Guide"] and result.chunks[0].boxes
    client.ocr(b"png", chunking="none", tokenizer="o200k_base")
    assert "chunking" not in seen[-1] and "tokenizer" not in seen[-1]
    with pytest.raises(ValueError, match="at most half"):
        client.ocr(b"png", chunking="tokens", chunk_tokens=100, chunk_overlap=80)
    assert len(seen) == 2  # refused before sending


def test_ocr_chunks_sends_one_request_when_the_pages_fit_else_cuts_the_merged_answer_here(tmp_path):
    seen: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        form = _form(request)
        seen.append(form)
        indices = [int(p) - 1 for p in form["pages"].split(",")] if "pages" in form else [0, 1, 2]
        return httpx.Response(200, json=_answer(len(indices), form, indices))

    pdf = tmp_path / "three.pdf"
    pdf.write_bytes(samples.multi_page_pdf(samples.numbered_pages(3)[0]))
    client = _client(handler)
    options = ChunkingOptions(chunking="tokens", chunk_tokens=64, chunk_overlap=8)
    one = client.ocr_chunks(pdf, options, chunk_pages=4)
    assert len(seen) == 1 and seen[0]["chunking"] == "tokens" and seen[0]["chunk_overlap"] == "8"
    assert one.chunking.mode == "tokens"
    seen.clear()
    done = []
    several = client.ocr_chunks(pdf, options, chunk_pages=2, progress=lambda d, t: done.append((d, t)))
    assert [s.get("chunking") for s in seen] == [None, None] and done[-1] == (3, 3)
    assert several.chunking.tokenizer == "cl100k_base" and len(several.pages) == 3
    assert {p for c in several.chunks for p in c.pages} == {0, 1, 2}
    with pytest.raises(ValueError, match="the server's"):
        client.ocr_chunks(pdf, ChunkingOptions(chunking="layout", tokenizer="backend:deepseek-ocr"), chunk_pages=2)


def _chat_server(seen: list[httpx.Request]):
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = ChatCompletionRequest.model_validate_json(request.content)
        try:
            if body.model != "rapidocr":
                raise OCRError(ErrorCode.UNKNOWN_BACKEND, f"no backend named {body.model!r}", accepted=["rapidocr"])
            chat = read_messages(body, max_bytes=1 << 20, max_images=4)
        except OCRError as e:
            status, error = openai_error(e)
            return httpx.Response(status, json=error.model_dump())
        answer = completion([make_response([PAGE])], model=body.model, chat=chat, answer_format="markdown",
                            counter=bundled_counter(), created=1, completion_id="chatcmpl-1")  # fmt: skip
        if body.stream:
            text = "".join(sse(stream_chunks(answer, include_usage=True)))
            return httpx.Response(200, content=text.encode(), headers={"content-type": "text/event-stream"})
        return httpx.Response(200, json=json.loads(answer.model_dump_json()))

    return handler


def test_chat_sends_pages_as_data_urls_with_the_key_as_a_bearer_token(tmp_path):
    seen: list[httpx.Request] = []
    client = _client(_chat_server(seen), api_key="sekrit")
    page = tmp_path / "p.png"
    page.write_bytes(b"\x89PNG page")
    answer = client.chat(page, model="rapidocr", prompt="Free OCR.", max_tokens=64)
    assert answer.choices[0].message.content == "# Guide\n\nInstall it. Then run it."
    assert answer.ocrserve.usage_source == "tokenizer:cl100k_base" and answer.usage.total_tokens > 0
    request = seen[-1]
    assert request.url.path == "/v1/chat/completions" and request.headers["authorization"] == "Bearer sekrit"
    assert request.headers["x-api-key"] == "sekrit"
    body = json.loads(request.content)
    assert body["max_tokens"] == 64 and body["messages"][0]["content"][0] == {"type": "text", "text": "Free OCR."}
    assert body["messages"][0]["content"][1]["image_url"]["url"] == "data:image/png;base64,iVBORyBwYWdl"
    chunks = list(client.chat_stream([b"one", b"two"], model="rapidocr"))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == answer.choices[0].message.content
    assert chunks[-1].usage is not None and len(json.loads(seen[-1].content)["messages"][0]["content"]) == 2
    for call in (lambda: client.chat(b"x", model="nope"), lambda: list(client.chat_stream(b"x", model="nope"))):
        with pytest.raises(ServiceError) as e:
            call()
        assert e.value.status == 404 and e.value.error.error.code == "unknown_backend"


def test_cli_ocr_chunks_writes_the_chunks_as_json_lines(tmp_path, monkeypatch):
    from orchestrator.ops import cli

    seen: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(_form(request))
        return httpx.Response(200, json=_answer(1, seen[-1]))

    monkeypatch.setattr(cli, "OCRClient", lambda url, api_key=None: _client(handler, api_key))
    page = tmp_path / "page.png"
    page.write_bytes(samples.encode(samples.numbered_pages(1)[0][0]))
    out = tmp_path / "out"
    run = CliRunner().invoke(
        cli.app, ["ocr", str(page), "--chunks", "layout", "--chunk-tokens", "128", "--out", str(out), "--no-boxes"]
    )
    assert run.exit_code == 0, run.output
    assert seen[-1]["chunking"] == "layout" and seen[-1]["chunk_tokens"] == "128"
    lines = [json.loads(line) for line in (out / "page.chunks.jsonl").read_text().splitlines()]
    assert lines and lines[0]["document"] == "d" and lines[0]["chunking"]["mode"] == "layout"
    assert lines[0]["heading_path"] == ["Guide"] and lines[0]["boxes"]
    bad = CliRunner().invoke(cli.app, ["ocr", str(page), "--chunks", "tokens", "--chunk-overlap", "400"])
    assert bad.exit_code == 2 and "at most half" in bad.output
    assert Path(out / "page.md").exists()
