"""Every route's documented error statuses against the statuses it really answers.

The OpenAPI ``responses`` are built from ``shared.errors.HTTP_STATUS`` (``api.errors.documented``); here each route
is driven into each of its failures through the real router with stand-in backends, and the statuses that come
back must be exactly the documented ones (500, which any route answers for a server fault, is probed once).
"""

from __future__ import annotations

import base64
from collections import defaultdict
from typing import Any

import pytest
from fastapi.testclient import TestClient

from orchestrator.jobs.consumer import JobConsumer
from orchestrator.jobs.service import JobService
from orchestrator.jobs.settings import JobSettings
from orchestrator.ops import samples
from orchestrator.serving.api import create_api
from orchestrator.serving.config import RouterSettings
from orchestrator.serving.router import Router
from shared.errors import HTTP_STATUS, OCRError
from shared.openai_api import OpenAIError
from shared.schema import BackendStatus, Capabilities, ErrorCode, ErrorResponse
from tests.support.hand_queue import HandQueue
from tests.unit.test_router import FakeHandle, _Method

KEY = {"x-api-key": "k"}
BACKEND_PROBES = [("zzz", ErrorCode.UNKNOWN_BACKEND), ("busy", ErrorCode.OVERLOADED), ("late", ErrorCode.TIMEOUT)]
PNG = samples.encode(samples.one_column_page()[0])
B64 = base64.b64encode(PNG).decode()
BAD_PDF = base64.b64encode(b"%PDF-1.4\n" + b"\x00garbage" * 20).decode()
BIG = base64.b64encode(b"x" * 300_000).decode()
TEXT = base64.b64encode(b"just text").decode()


class Failing:
    """A backend that can do everything (it says) and answers every call with one error, as a value."""

    def __init__(self, name: str, code: ErrorCode, *, status: str = "ready") -> None:
        self.name, self.code, self.status = name, code, status
        self.describe = _Method(self._describe)
        for method in ("ocr", "extract", "count_tokens"):
            setattr(self, method, _Method(self._fail))

    async def _fail(self, *_: Any):
        return OCRError(self.code, "as told").detail()

    async def _describe(self) -> BackendStatus:
        return BackendStatus(
            name=self.name,
            engine="stub",
            status=self.status,  # type: ignore[arg-type]
            media_types=["image/png", "application/pdf"],
            capabilities=Capabilities(extracts=True, counts_tokens=True),
        )


def _client(tmp_path, backends: dict[str, Any]) -> TestClient:
    settings = JobSettings(state_dir=str(tmp_path / "{app}"))
    queue = HandQueue()
    router = Router(
        backends, RouterSettings(api_key="k", limits={"max_bytes": 200_000}), jobs=JobService(settings, queue=queue)
    )
    client = TestClient(create_api(router), raise_server_exceptions=False)
    client.finish_jobs = lambda: queue.deliver(JobConsumer(backends, settings, queue=queue, background=False))  # type: ignore[attr-defined]
    return client


def _documented(client: TestClient) -> dict[tuple[str, str], set[int]]:
    out = {}
    for path, ops in client.get("/openapi.json").json()["paths"].items():
        for method, op in ops.items():
            out[(method.upper(), path)] = {int(s) for s in op.get("responses", {}) if int(s) >= 400}
    return out


def _upload_probes(path: str, extra: dict[str, Any]) -> list[tuple[dict[str, Any], ErrorCode]]:
    """A document route's own failures: bad option, too large, not a document type, unreadable."""
    return [
        ({"json": {"file_base64": B64, "colour": "red", **extra}}, ErrorCode.INVALID_OPTION),
        ({"json": {"file_base64": BIG, **extra}}, ErrorCode.DOCUMENT_TOO_LARGE),
        ({"json": {"file_base64": TEXT, **extra}}, ErrorCode.UNSUPPORTED_MEDIA_TYPE),
        ({"json": {"file_base64": BAD_PDF, **extra}}, ErrorCode.INVALID_DOCUMENT),
    ]


def test_every_route_documents_exactly_the_statuses_it_answers(tmp_path):
    backends = {
        "a": FakeHandle("a"),
        "busy": Failing("busy", ErrorCode.OVERLOADED),
        "late": Failing("late", ErrorCode.TIMEOUT),
        "broken": FakeHandle("broken", error=RuntimeError("bug")),
    }
    client = _client(tmp_path, backends)
    down = _client(tmp_path / "down", {"gone": Failing("gone", ErrorCode.BACKEND_UNAVAILABLE, status="unavailable")})
    job = client.post("/v1/jobs", json={"file_base64": B64, "backend": "a"}, headers=KEY).json()["job_id"]
    jobs = f"/v1/jobs/{job}"
    unknown = f"/v1/jobs/{'0' * 32}"
    probes: list[tuple[str, str, str, TestClient, dict[str, Any], ErrorCode]] = []

    def probe(method, route, url=None, *, via=client, code, **kwargs):
        probes.append((method, route, url or route, via, kwargs, code))

    for route, extra in [
        ("/v1/ocr", {"backend": "a"}),
        ("/v1/compare", {"backends": ["a"]}),
        ("/v1/extract", {"backend": "a", "preset": "receipt"}),
        ("/v1/page-image", {}),
        ("/v1/jobs", {"backend": "a"}),
    ]:
        for kwargs, code in _upload_probes(route, extra):
            probe("POST", route, code=code, **kwargs)
    probe("POST", "/v1/ocr", json={"file_base64": B64, "backend": "zzz"}, code=ErrorCode.UNKNOWN_BACKEND)
    probe("POST", "/v1/ocr", json={"file_base64": B64, "backend": "busy"}, code=ErrorCode.OVERLOADED)
    probe("POST", "/v1/ocr", json={"file_base64": B64, "backend": "late"}, code=ErrorCode.TIMEOUT)
    probe("POST", "/v1/ocr", json={"file_base64": B64, "backend": "broken"}, code=ErrorCode.INTERNAL_ERROR)
    probe("POST", "/v1/compare", json={"file_base64": B64, "backends": ["zzz"]}, code=ErrorCode.UNKNOWN_BACKEND)
    for backend, code in BACKEND_PROBES:
        probe("POST", "/v1/extract", json={"file_base64": B64, "backend": backend, "preset": "receipt"}, code=code)
    probe("POST", "/v1/render", json={"text": "hi", "max_pages": 0}, code=ErrorCode.INVALID_OPTION)
    for backend, code in BACKEND_PROBES:
        probe("POST", "/v1/render", json={"text": "hi", "backend": backend}, code=code)
    probe("POST", "/v1/jobs", json={"file_base64": B64, "backend": "zzz"}, code=ErrorCode.UNKNOWN_BACKEND)
    probe(
        "POST", "/v1/jobs", via=down, json={"file_base64": B64, "backend": "auto"}, code=ErrorCode.BACKEND_UNAVAILABLE
    )
    probe("GET", "/v1/jobs/{job_id}", unknown, code=ErrorCode.NOT_FOUND)
    probe("DELETE", "/v1/jobs/{job_id}", unknown, code=ErrorCode.NOT_FOUND)
    probe("GET", "/v1/jobs/{job_id}/result", unknown, code=ErrorCode.NOT_FOUND)
    probe("GET", "/v1/jobs/{job_id}/result", f"{jobs}/result", code=ErrorCode.JOB_NOT_FINISHED)
    probe("GET", "/v1/jobs/{job_id}/pages", unknown + "/pages", code=ErrorCode.NOT_FOUND)
    probe("GET", "/v1/jobs/{job_id}/pages", f"{jobs}/pages?start=-1", code=ErrorCode.INVALID_OPTION)
    probe("GET", "/v1/jobs/{job_id}/events", unknown + "/events", code=ErrorCode.NOT_FOUND)
    probe("GET", "/v1/jobs/{job_id}/events", f"{jobs}/events?last_event_id=x", code=ErrorCode.INVALID_OPTION)

    chat_probes = [  # the OpenAI-compatible route answers the same codes, in OpenAI's error shape
        ("a", [], ErrorCode.INVALID_OPTION),  # no image
        ("zzz", [B64], ErrorCode.UNKNOWN_BACKEND),
        ("a", [BIG], ErrorCode.DOCUMENT_TOO_LARGE),
        ("a", [TEXT], ErrorCode.UNSUPPORTED_MEDIA_TYPE),
        ("a", [BAD_PDF], ErrorCode.INVALID_DOCUMENT),
        ("busy", [B64], ErrorCode.OVERLOADED),
        ("late", [B64], ErrorCode.TIMEOUT),
    ]

    documented = _documented(client)
    answered: dict[tuple[str, str], set[int]] = defaultdict(set)
    for method, route in documented:
        if route.startswith("/v1/"):  # every /v1 route refuses a request without the key
            url = route.replace("{job_id}", job)
            r = client.request(method, url, json={"file_base64": B64} if method == "POST" else None)
            assert r.status_code == HTTP_STATUS[ErrorCode.UNAUTHORIZED], (method, route, r.text)
            answered[(method, route)].add(r.status_code)
    for method, route, url, via, kwargs, code in probes:
        r = via.request(method, url, headers=KEY, **kwargs)
        assert r.status_code == HTTP_STATUS[code], (method, url, kwargs, r.text)
        assert ErrorResponse.model_validate(r.json()).error.code == code, (method, url, r.text)
        answered[(method, route)].add(r.status_code)
    for model, images, code in chat_probes:
        content: list[dict[str, Any]] = [{"type": "text", "text": "Free OCR."}]
        content += [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64}"}} for b64 in images]
        body = {"model": model, "messages": [{"role": "user", "content": content}]}
        r = client.post("/v1/chat/completions", json=body, headers=KEY)
        assert r.status_code == HTTP_STATUS[code], (model, code, r.text)
        assert OpenAIError.model_validate(r.json()).error.code, r.text
        answered[("POST", "/v1/chat/completions")].add(r.status_code)
    # a job that has ended cannot be cancelled
    client.finish_jobs()  # type: ignore[attr-defined]
    r = client.delete(jobs, headers=KEY)
    assert r.status_code == HTTP_STATUS[ErrorCode.JOB_FINISHED] and r.json()["error"]["code"] == "job_finished"
    answered[("DELETE", "/v1/jobs/{job_id}")].add(r.status_code)

    fault = HTTP_STATUS[ErrorCode.INTERNAL_ERROR]  # any route's server fault: probed once, documented everywhere
    for op, statuses in documented.items():
        assert statuses - {fault} == answered.get(op, set()) - {fault}, op
        assert fault in statuses or not op[1].startswith("/v1/"), op
    assert fault in answered[("POST", "/v1/ocr")]


@pytest.mark.parametrize("code", list(ErrorCode))
def test_documented_descriptions_name_each_code_under_its_status(code):
    from orchestrator.serving.api.errors import documented

    responses = documented(code)
    assert code.value in responses[HTTP_STATUS[code]]["description"]


def test_every_ref_resolves_and_the_chat_route_documents_its_body(tmp_path):
    spec = _client(tmp_path, {"a": FakeHandle("a")}).get("/openapi.json").json()
    refs: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            refs.update([node["$ref"]] if "$ref" in node else [])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)
    components = spec["components"]["schemas"]
    assert refs and all(ref.startswith("#/components/schemas/") and ref.split("/")[-1] in components for ref in refs)
    body = spec["paths"]["/v1/chat/completions"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"model", "messages", "stream", "max_tokens"} <= set(body["properties"])
    assert "image_url" in str(body["properties"]["messages"])  # the message parts, written in place
