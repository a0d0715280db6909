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
from benchmarks.support.fake_engine import FakeEngine
from orchestrator.ops import samples
from orchestrator.serving.api import create_api
from orchestrator.serving.config import RouterSettings
from orchestrator.serving.router import Router
from orchestrator.serving.selection import choose_backend
from shared.errors import OCRError
from shared.requests import JobOptions, OCROptions
from shared.schema import BackendStatus, ErrorResponse, OCRResponse


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
        config: dict | None = None,
        gate: asyncio.Event | None = None,
    ):
        """``gate``: every call waits until the test sets it (the order of events decided, not timed)."""
        self.name, self.status, self.error, self.delay_s, self.media_types = name, status, error, delay_s, media_types
        self.gate = gate
        self.engine = FakeEngine(config or {"text": f"from {name}"})
        self.engine.start()
        self.ocr = _Method(self._ocr)
        self.describe = _Method(self._describe)
        self.docs: list = []  # every document this backend was sent
        self.runs: list = []  # ... and what it was told with it
        self.finished = 0

    async def _ocr(self, doc, run):
        self.docs.append(doc)
        self.runs.append(run)
        await asyncio.sleep(self.delay_s)
        if self.gate is not None:
            await self.gate.wait()
        self.finished += 1
        if isinstance(self.error, OCRError):  # as BackendDeployment does: a client error is a value
            return self.error.detail()
        if self.error is not None:
            raise self.error
        return run_document(
            self.engine,
            doc,
            run,
            backend=self.name,
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

    async def never_answers():
        silent = FakeHandle("silent", gate=asyncio.Event())  # never set: only the time limit can end the call
        await Router({"silent": silent}).ocr(PNG, "p.png", OCROptions(backend="silent", timeout_s=0.2), "r")

    with pytest.raises(OCRError) as e:
        run(never_answers())
    assert e.value.code == "timeout" and e.value.status == 504 and e.value.accepted == {"max_timeout_s": 0.2}


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


# --- cascades and shadow traffic through the router ----------------------------------------------------------


def _mixed_pdf() -> bytes:
    from tests.support.mixed_pdf import mixed_pdf

    return mixed_pdf([["A born-digital page about replicas."]], [samples.one_column_page()[0]])


def test_a_cascade_escalates_only_the_pages_that_meet_a_rule_and_answers_once():
    cheap, strong = FakeHandle("cheap"), FakeHandle("strong")
    settings = RouterSettings(
        cascades={"cascade": {"first": "cheap", "then": "strong", "rules": {"no_text_layer": True}}}
    )
    router = Router({"cheap": cheap, "strong": strong}, settings)
    result = run(router.ocr(_mixed_pdf(), "mixed.pdf", OCROptions(backend="cascade"), "r"))
    assert result.backend == "cascade"
    assert [p.backend for p in result.pages] == ["cheap", "strong"]
    assert "from cheap" in result.pages[0].markdown and "from strong" in result.pages[1].markdown
    assert [(e.page, e.rules, e.answered_by) for e in result.escalations] == [(1, ["no_text_layer"], "strong")]
    assert cheap.docs[0].page_indices == [0] and strong.docs[0].page_indices == [1]  # the scan went straight up
    assert result.document.pages_processed == [0, 1] and result.timings.total_s >= result.timings.inference_s


def test_a_cascade_sends_a_flagged_page_up_after_reading_it():
    table = {"blocks": [{"type": "table", "text": "<table><tr><td>1</td></tr></table>", "box": [0, 0, 1, 1]}]}
    cheap, strong = FakeHandle("cheap", config=table), FakeHandle("strong")
    router = Router(
        {"cheap": cheap, "strong": strong}, RouterSettings(cascades={"c": {"first": "cheap", "then": "strong"}})
    )
    result = run(router.ocr(PNG, "p.png", OCROptions(backend="c"), "r"))
    assert [(e.page, e.rules, e.answered_by) for e in result.escalations] == [(0, ["table"], "strong")]
    assert cheap.ocr.calls == 1 and result.pages[0].backend == "strong"


def test_an_image_under_the_no_text_layer_rule_never_reaches_the_first_backend():
    cheap, strong = FakeHandle("cheap"), FakeHandle("strong")
    settings = RouterSettings(cascades={"c": {"first": "cheap", "then": "strong", "rules": {"no_text_layer": True}}})
    result = run(Router({"cheap": cheap, "strong": strong}, settings).ocr(PNG, "p.png", OCROptions(backend="c"), "r"))
    assert cheap.ocr.calls == 0 and result.pages[0].backend == "strong"
    assert result.escalations[0].rules == ["no_text_layer"]


def test_a_document_the_first_backend_refuses_goes_up_whole_unless_the_rule_is_off():
    refusing = FakeHandle("cheap", error=OCRError("models_missing", "needs OCR models"))
    router = Router(
        {"cheap": refusing, "strong": FakeHandle("strong")},
        RouterSettings(
            cascades={
                "c": {"first": "cheap", "then": "strong"},
                "strict": {"first": "cheap", "then": "strong", "rules": {"first_failed": False}},
            }
        ),
    )
    result = run(router.ocr(_mixed_pdf(), "mixed.pdf", OCROptions(backend="c"), "r"))
    assert [p.backend for p in result.pages] == ["strong", "strong"] and result.backend == "c"
    assert [e.rules for e in result.escalations] == [["first_failed"], ["first_failed"]]
    with pytest.raises(OCRError) as e:
        run(router.ocr(_mixed_pdf(), "mixed.pdf", OCROptions(backend="strict"), "r"))
    assert e.value.code == "models_missing"


def test_a_cascade_whose_stronger_backend_fails_keeps_the_first_answer_and_says_so():
    table = {"blocks": [{"type": "table", "text": "<table><tr><td>1</td></tr></table>", "box": [0, 0, 1, 1]}]}
    settings = RouterSettings(
        cascades={
            "c": {"first": "cheap", "then": "strong"},
            "scans-up": {"first": "cheap", "then": "strong", "rules": {"no_text_layer": True}},
        }
    )
    broken = FakeHandle("strong", error=OCRError("overloaded", "busy"))
    router = Router({"cheap": FakeHandle("cheap", config=table), "strong": broken}, settings)
    result = run(router.ocr(PNG, "p.png", OCROptions(backend="c"), "r"))
    assert [p.backend for p in result.pages] == ["cheap"] and result.escalations[0].answered_by == "cheap"
    assert "overloaded" in result.warnings[-1]
    with pytest.raises(OCRError) as e:  # a scan sent straight up has no other answer: the error is the answer
        run(router.ocr(PNG, "p.png", OCROptions(backend="scans-up"), "r"))
    assert e.value.code == "overloaded"


def test_a_cascade_with_nothing_to_escalate_never_calls_the_stronger_backend():
    strong = FakeHandle("strong")
    settings = RouterSettings(cascades={"c": {"first": "cheap", "then": "strong"}})
    router = Router({"cheap": FakeHandle("cheap"), "strong": strong}, settings)
    result = run(router.ocr(PNG, "p.png", OCROptions(backend="c"), "r"))
    assert result.escalations == [] and strong.ocr.calls == 0 and result.pages[0].backend == "cheap"


def test_a_cascade_is_refused_for_jobs_with_a_clear_error(tmp_path):
    from orchestrator.jobs.service import JobService
    from orchestrator.jobs.settings import JobSettings
    from tests.support.hand_queue import HandQueue

    settings = RouterSettings(cascades={"c": {"first": "a", "then": "b"}})
    jobs = JobService(JobSettings(state_dir=str(tmp_path / "{app}")), queue=HandQueue())
    router = Router({"a": FakeHandle("a"), "b": FakeHandle("b")}, settings, jobs=jobs)
    with pytest.raises(OCRError) as e:
        run(router.submit_job(PNG, "p.png", JobOptions(backend="c"), "r"))
    assert e.value.code == "invalid_option" and "synchronously" in e.value.message


def test_shadow_reads_run_after_the_answer_and_within_their_bounds():
    async def scenario():
        held = asyncio.Event()  # the shadow read cannot end before the test sets it
        shadow = FakeHandle("shadow", gate=held)
        settings = RouterSettings(shadow={"fraction": 1.0, "pairs": {"primary": "shadow"}, "max_in_flight": 1})
        router = Router({"primary": FakeHandle("primary"), "shadow": shadow}, settings)
        first = await router.ocr(PNG, "p.png", OCROptions(backend="primary"), "r1")
        assert first.backend == "primary" and shadow.finished == 0  # answered; its shadow read is still held
        await router.ocr(PNG, "p.png", OCROptions(backend="primary"), "r2")  # over max_in_flight: dropped
        assert shadow.finished == 0 and router.ocr_service.shadow.sampler.in_flight == 1
        held.set()
        await asyncio.gather(*router.ocr_service.shadow.tasks)
        assert shadow.ocr.calls == 1 and shadow.finished == 1 and router.ocr_service.shadow.sampler.in_flight == 0
        assert shadow.docs[0].sha256 == first.document.sha256
        assert shadow.runs[0].options == {} and not shadow.runs[0].output.include_boxes_image  # its own way, no images

    run(scenario())


def test_a_busy_shadow_backend_is_left_alone_for_the_backoff():
    async def scenario():
        shadow = FakeHandle("shadow", error=OCRError("overloaded", "busy"))
        settings = RouterSettings(shadow={"fraction": 1.0, "pairs": {"primary": "shadow"}, "backoff_s": 60})
        router = Router({"primary": FakeHandle("primary"), "shadow": shadow}, settings)
        for i in range(3):
            await router.ocr(PNG, "p.png", OCROptions(backend="primary"), f"r{i}")
            await asyncio.gather(*router.ocr_service.shadow.tasks)
        assert shadow.ocr.calls == 1  # refused once, then backed off

    run(scenario())


def test_compare_takes_a_cascade_beside_backends_and_lists_cascades_when_a_name_is_unknown():
    from shared.requests import CompareOptions

    settings = RouterSettings(cascades={"c": {"first": "cheap", "then": "strong", "rules": {"no_text_layer": True}}})
    router = Router({"cheap": FakeHandle("cheap"), "strong": FakeHandle("strong")}, settings)
    cmp = run(router.compare(_mixed_pdf(), "m.pdf", CompareOptions(backends=["c", "strong"]), "r"))
    assert [e.backend for e in cmp.entries] == ["c", "strong"] and all(e.ok for e in cmp.entries)
    assert [p.backend for p in cmp.entries[0].result.pages] == ["cheap", "strong"]
    with pytest.raises(OCRError) as e:
        run(router.compare(PNG, "p.png", CompareOptions(backends=["nope"]), "r"))
    assert e.value.code == "unknown_backend" and "c" in e.value.accepted


def test_the_output_options_reach_the_backend_whole_and_answer_as_asked():
    from shared.requests import CompareOptions, OutputOptions

    a = FakeHandle("a")
    router = Router({"a": a})
    answer = run(router.ocr(PNG, "p.png", OCROptions(backend="a", include_raw=True, include_boxes_image=False), "r"))
    assert a.runs[0].output == OutputOptions(include_raw=True, include_boxes_image=False)
    assert answer.raw_result is not None and answer.pages[0].boxes_image is None
    run(router.compare(PNG, "p.png", CompareOptions(backends=["a"]), "c"))
    assert a.runs[1].output == OutputOptions(include_boxes_image=False)  # compare's own default; no raw field
