"""Router logic with fake deployment handles (no Ray), and the HTTP layer with FastAPI's TestClient.

The same code runs inside the Serve replica; here the handles are stand-ins so each rule can be forced:
auto selection, unknown names, a replica dying under a request, overload, time-outs.
"""

from __future__ import annotations

import asyncio
import base64

import pytest
from fastapi.testclient import TestClient

from backends.base import EngineHealth
from backends.pipeline import run_document
from orchestrator.serving.api import create_api
from orchestrator.serving.config import RouterSettings
from orchestrator.serving.router import Router
from orchestrator.serving.selection import choose_backend
from shared import samples
from shared.errors import OCRError
from shared.requests import OCROptions
from shared.schema import BackendStatus, ErrorResponse, OCRResponse
from tests.support.fake_engine import FakeEngine


class _Call:
    def __init__(self, coro):
        self._task = asyncio.ensure_future(coro)
        self.cancelled = False

    def __await__(self):
        return self._task.__await__()

    def cancel(self):
        self.cancelled = True
        self._task.cancel()


class _Method:
    def __init__(self, fn):
        self.fn = fn
        self.calls = 0

    def remote(self, *args):
        self.calls += 1
        return _Call(self.fn(*args))


class FakeHandle:
    """Quacks like a DeploymentHandle of BackendDeployment, backed by the fake engine in-process."""

    def __init__(
        self,
        name: str,
        *,
        status: str = "ready",
        error: Exception | None = None,
        delay_s: float = 0.0,
        media_types=("image/png", "application/pdf"),
    ):
        self.name, self.status, self.error, self.delay_s, self.media_types = name, status, error, delay_s, media_types
        self.engine = FakeEngine({"text": f"from {name}"})
        self.engine.start()
        self.ocr = _Method(self._ocr)
        self.describe = _Method(self._describe)

    async def _ocr(self, doc, run):
        await asyncio.sleep(self.delay_s)
        if isinstance(self.error, OCRError):  # as BackendDeployment does: a client error is a value
            return self.error.detail()
        if self.error is not None:
            raise self.error
        return run_document(
            self.engine,
            doc,
            backend=self.name,
            request_id=run.request_id,
            options=run.options,
            received_at=run.received_at,
        )

    async def _describe(self):
        return BackendStatus(name=self.name, engine="fake", status=self.status, media_types=list(self.media_types))


PNG = samples.encode(samples.one_column_page()[0])


def run(coro):
    return asyncio.new_event_loop().run_until_complete(coro)


def test_named_backend_is_called_and_timed():
    a, b = FakeHandle("a"), FakeHandle("b")
    router = Router({"a": a, "b": b})
    result = run(router.ocr(PNG, "p.png", OCROptions(backend="b"), "rid"))
    assert result.backend == "b" and result.markdown.startswith("from b")
    assert (a.ocr.calls, b.ocr.calls) == (0, 1)
    assert result.request_id == "rid" and result.timings.total_s >= result.timings.inference_s


def test_auto_takes_first_ready_backend_that_reads_the_type():
    router = Router(
        {
            "gpu": FakeHandle("gpu", status="unavailable"),
            "pdf-only": FakeHandle("pdf-only", media_types=("application/pdf",)),
            "cpu": FakeHandle("cpu"),
        },
        RouterSettings(auto_order=["gpu", "pdf-only", "cpu"]),
    )
    assert run(router.ocr(PNG, "p.png", OCROptions(), "r")).backend == "cpu"


def test_a_request_naming_no_backend_gets_the_configured_default():
    router = Router({"a": FakeHandle("a"), "b": FakeHandle("b")}, RouterSettings(default_backend="b"))
    assert run(router.ocr(PNG, "p.png", OCROptions(), "r")).backend == "b"
    assert run(router.ocr(PNG, "p.png", OCROptions(backend="auto"), "r")).backend == "a"


def test_unknown_backend_lists_the_deployed_ones():
    with pytest.raises(OCRError) as e:
        run(Router({"a": FakeHandle("a")}).ocr(PNG, "p.png", OCROptions(backend="zzz"), "r"))
    assert e.value.code == "unknown_backend" and e.value.status == 404 and e.value.accepted == ["a", "auto"]


def test_auto_retries_once_on_another_backend_when_a_replica_dies():
    from ray.exceptions import ActorDiedError

    dying = FakeHandle("first", error=ActorDiedError())
    router = Router({"first": dying, "second": FakeHandle("second")}, RouterSettings(auto_order=["first", "second"]))
    result = run(router.ocr(PNG, "p.png", OCROptions(), "r"))
    assert result.backend == "second" and "first" in result.warnings[0]
    with pytest.raises(OCRError) as e:  # a named backend is not silently swapped
        run(router.ocr(PNG, "p.png", OCROptions(backend="first"), "r"))
    assert e.value.code == "backend_unavailable" and e.value.status == 503


def test_overload_and_timeout_map_to_clear_errors():
    from ray.serve.exceptions import BackPressureError

    busy = FakeHandle("busy", error=BackPressureError(num_queued_requests=5, max_queued_requests=5))
    with pytest.raises(OCRError) as e:
        run(Router({"busy": busy}).ocr(PNG, "p.png", OCROptions(backend="busy"), "r"))
    assert e.value.code == "overloaded" and e.value.status == 503
    slow = FakeHandle("slow", delay_s=5)
    with pytest.raises(OCRError) as e:
        run(Router({"slow": slow}).ocr(PNG, "p.png", OCROptions(backend="slow", timeout_s=0.2), "r"))
    assert e.value.code == "timeout" and e.value.status == 504


def test_backend_errors_pass_through_with_their_code():
    bad = FakeHandle("x", error=OCRError("models_missing", "download the weights"))
    with pytest.raises(OCRError) as e:
        run(Router({"x": bad}).ocr(PNG, "p.png", OCROptions(backend="x"), "r"))
    assert e.value.code == "models_missing" and e.value.status == 503


def test_choose_backend_reports_why_nothing_fits():
    statuses = {"a": BackendStatus(name="a", engine="e", status="unhealthy", media_types=["image/png"])}
    with pytest.raises(OCRError) as e:
        choose_backend("auto", deployed=["a"], statuses=statuses, media_type="image/png", auto_order=["a"])
    assert e.value.code == "backend_unavailable" and e.value.accepted == {"backends": {"a": "unhealthy"}}


@pytest.fixture()
def api():
    router = Router({"a": FakeHandle("a")}, RouterSettings(api_key="s3cret", limits={"max_bytes": 200_000}))
    return TestClient(create_api(router))


def test_api_multipart_json_and_api_key(api):
    headers = {"x-api-key": "s3cret"}
    r = api.post("/v1/ocr", files={"file": ("p.png", PNG)}, data={"backend": "a", "pages": "1"}, headers=headers)
    assert r.status_code == 200 and OCRResponse.model_validate(r.json()).backend == "a"
    body = {"file_base64": base64.b64encode(PNG).decode(), "backend": "a"}
    assert api.post("/v1/ocr", json=body, headers=headers).status_code == 200
    denied = api.post("/v1/ocr", files={"file": ("p.png", PNG)}, headers={"x-api-key": "wrong"})
    assert denied.status_code == 401 and ErrorResponse.model_validate(denied.json()).error.code == "unauthorized"
    assert api.get("/healthz").status_code == 200  # liveness needs no key


@pytest.mark.parametrize(
    "kwargs,status,code",
    [
        ({"files": {"file": ("p.png", b"x" * 300_000)}}, 413, "document_too_large"),
        ({"files": {"nofile": ("p.png", PNG)}}, 400, "invalid_option"),
        ({"files": {"file": ("p.png", PNG)}, "data": {"colour": "red"}}, 400, "invalid_option"),
        ({"files": {"file": ("p.png", PNG)}, "data": {"include_raw": "maybe"}}, 400, "invalid_option"),
        (
            {"content": b"raw bytes", "headers": {"content-type": "application/octet-stream"}},
            415,
            "unsupported_media_type",
        ),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "invalid_option"),
        ({"json": {"file_base64": "###", "backend": "a"}}, 400, "invalid_option"),
    ],
)
def test_api_refuses_malformed_requests_with_json_errors(api, kwargs, status, code):
    headers = {"x-api-key": "s3cret", **kwargs.pop("headers", {})}
    r = api.post("/v1/ocr", headers=headers, **kwargs)
    assert r.status_code == status, r.text
    err = ErrorResponse.model_validate(r.json())
    assert err.error.code == code and err.request_id == r.headers["x-request-id"]


def test_display_name_never_carries_a_path(api):
    r = api.post(
        "/v1/ocr",
        files={"file": ("../../etc/passwd\x00.png", PNG)},
        data={"backend": "a"},
        headers={"x-api-key": "s3cret"},
    )
    name = r.json()["document"]["name"]
    assert name.startswith("passwd") and name.endswith(".png") and "/" not in name and ".." not in name


def test_engine_health_model_is_strict():
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        EngineHealth(ready=True, model={"id": "x", "engine": "y"}, surprise=1)
