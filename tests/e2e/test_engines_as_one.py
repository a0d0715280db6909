"""Many engines as one, over real HTTP: a cascade of two CPU backends, and a shadow backend that refuses.

The cascade is MinerU's flash tier (reads text layers, no model) first and RapidOCR (reads pixels) second, on a PDF
built to need it: a born-digital page flash answers, and a scan it cannot read, which the ``no_text_layer`` and
``no_text`` rules send to RapidOCR. RapidOCR's answers are also shadowed by MinerU, which refuses scans
(``models_missing``: its OCR models are not bundled) - as the production pair deepseek-ocr -> mineru mostly will:
the refusal must show in Prometheus as a ``failed`` shadow read. Shadow reads that succeed, and that the client
never waits for them, are tested with fake engines in ``test_signals.py``.
"""

from __future__ import annotations

import httpx
import pytest

from backends.textpdf import article_pages
from orchestrator.ops import samples
from shared.schema import BackendList, OCRResponse
from tests.conftest import METRICS_PORT
from tests.support.mixed_pdf import mixed_pdf
from tests.support.signals import scrape, wait_for_total

pytest.importorskip("mineru", reason="the mineru extra is not installed (scripts/test.sh installs it)")
pytestmark = pytest.mark.cluster

APP = "engines"


@pytest.fixture(scope="module")
def client(deploy_app):
    url = deploy_app(
        APP,
        {
            "backends": {
                "mineru": {
                    "engine": "mineru",
                    "engine_config": {"default_tier": "flash", "tiers": ["flash"]},
                    "deployment": {"ray_actor_options": {"num_cpus": 0.3}},
                },
                "rapidocr": {"engine": "rapidocr", "deployment": {"ray_actor_options": {"num_cpus": 0.5}}},
            },
            "router": {
                "auto_order": ["rapidocr", "mineru"],
                "cascades": {
                    "cascade": {"first": "mineru", "then": "rapidocr", "rules": {"no_text_layer": True}},
                },
                "shadow": {"fraction": 1.0, "pairs": {"rapidocr": "mineru"}, "max_in_flight": 2, "backoff_s": 5},
            },
        },
    )
    with httpx.Client(base_url=url, timeout=300) as c:
        yield c
    deploy_app.retire(APP)


def _total(name: str, minimum: float = 1, **labels: str) -> float:
    """``ray_<name>`` summed over this app's series with ``labels``, once it reaches ``minimum``."""
    return wait_for_total(METRICS_PORT, f"ray_{name}", minimum, application=APP, **labels)


def test_a_cascade_answers_the_digital_page_cheaply_and_escalates_the_scan(client):
    scan, _ = samples.one_column_page(title="Scanned invoice", paragraphs=["Payment is due within thirty days."])
    pdf = mixed_pdf([["Cascades read born-digital pages straight from their text layer."]], [scan])
    r = client.post("/v1/ocr", files={"file": ("mixed.pdf", pdf)}, data={"backend": "cascade"})
    assert r.status_code == 200, r.text[:500]
    result = OCRResponse.model_validate(r.json())
    assert result.backend == "cascade"
    assert [p.backend for p in result.pages] == ["mineru", "rapidocr"]
    assert "born-digital pages" in result.pages[0].markdown  # flash read the text layer
    assert "thirty days" in result.pages[1].markdown  # RapidOCR read the pixels
    assert any("Scanned invoice" in b.text for b in result.pages[1].blocks)
    assert len(result.escalations) == 1
    escalation = result.escalations[0]
    assert (escalation.page, escalation.from_backend, escalation.answered_by) == (1, "mineru", "rapidocr")
    assert "no_text_layer" in escalation.rules
    # cost: both backends' CPU time, no GPU, and no more than both replicas' reservations could have used
    compute = result.usage.compute
    assert compute is not None and compute.gpu_seconds == 0
    assert 0 < compute.cpu_seconds <= (0.3 + 0.5) * result.timings.total_s
    assert result.usage.pages == 2 and "thirty days" in result.markdown

    listing = BackendList.model_validate(client.get("/v1/backends").json())
    [cascade] = listing.cascades
    assert (cascade.name, cascade.first, cascade.then) == ("cascade", "mineru", "rapidocr")
    assert "no_text_layer" in cascade.rules

    assert _total("ocrserve_cascade_pages_total", policy="cascade", outcome="escalated") >= 1
    assert _total("ocrserve_cascade_pages_total", policy="cascade", outcome="kept") >= 1
    assert _total("ocrserve_escalations_total", policy="cascade", rule="no_text_layer") >= 1


def test_a_cascade_of_a_digital_only_document_never_calls_the_stronger_backend(client):
    pdf = article_pages([samples.PARAGRAPHS[:3], samples.PARAGRAPHS[3:]])
    r = client.post("/v1/ocr", files={"file": ("digital.pdf", pdf)}, data={"backend": "cascade"})
    assert r.status_code == 200, r.text[:500]
    result = OCRResponse.model_validate(r.json())
    assert result.escalations == [] and {p.backend for p in result.pages} == {"mineru"}


def test_a_shadow_backend_that_refuses_is_counted_as_failed_and_the_client_is_unaffected(client):
    """RapidOCR answers the scan; its shadow, MinerU, refuses it (models_missing) in the background."""
    image, truth = samples.one_column_page(title="Shadowed scan", paragraphs=["MinerU cannot read this page."])
    direct = client.post("/v1/ocr", files={"file": ("scan.png", samples.encode(image))}, data={"backend": "mineru"})
    assert direct.status_code == 503 and direct.json()["error"]["code"] == "models_missing"  # premise
    pair = {"primary": "rapidocr", "shadow": "mineru"}
    failed = scrape(METRICS_PORT).total("ray_ocrserve_shadow_requests_total", application=APP, outcome="failed", **pair)
    r = client.post("/v1/ocr", files={"file": ("scan.png", samples.encode(image))}, data={"backend": "rapidocr"})
    assert r.status_code == 200 and r.json()["backend"] == "rapidocr" and "MinerU cannot read" in r.json()["markdown"]
    assert _total("ocrserve_shadow_requests_total", outcome="sent", **pair) >= 1
    assert _total("ocrserve_shadow_requests_total", failed + 1, outcome="failed", **pair) >= failed + 1
    # a refusal is not "busy": no back-off, so the next answer is shadowed again
    r = client.post("/v1/ocr", files={"file": ("scan.png", samples.encode(image))}, data={"backend": "rapidocr"})
    assert r.status_code == 200
    assert _total("ocrserve_shadow_requests_total", failed + 2, outcome="failed", **pair) >= failed + 2
    assert _total("ocrserve_shadow_requests_total", 0, outcome="backoff", **pair) == 0


def test_the_serve_demo_runs_each_cascade_beside_the_backends(client, tmp_path):
    """README command 1 ends with this demo: a cascade whose backends are up is shown with who read its pages."""
    from orchestrator.ops.cli import _demo

    _demo(str(client.base_url).rstrip("/"), tmp_path)
    scan = OCRResponse.model_validate_json((tmp_path / "demo-scan-cascade.json").read_text())
    assert {p.backend for p in scan.pages} == {"rapidocr"} and scan.markdown.strip()  # a scan: OCR'd
    digital = OCRResponse.model_validate_json((tmp_path / "demo-digital-cascade.json").read_text())
    assert {p.backend for p in digital.pages} == {"mineru"} and "Comparing backends" in digital.markdown


def test_an_accuracy_run_scores_a_cascade_beside_its_backends(client, tmp_path):
    import json

    from orchestrator.evaluation.run import run_accuracy
    from tests.e2e.test_compare import _generated_manifest

    manifest = _generated_manifest(tmp_path)  # two scans with their text
    report = run_accuracy(manifest, url=str(client.base_url).rstrip("/"), backends=["cascade"], out=tmp_path / "r")
    assert report.backends["cascade"].failures == 0  # MinerU alone refuses scans; the cascade sends them up
    assert report.backends["cascade"].ned_mean <= 0.02  # as RapidOCR reads them
    facts = json.loads((tmp_path / "r" / "run.json").read_text())["backends"]["cascade"]
    assert facts["engine"] == "cascade" and facts["then"]["engine"] == "rapidocr"
    assert facts["first"]["engine"] == "mineru" and "no_text_layer" in facts["rules"]


def test_the_web_page_offers_the_cascade_and_compares_it_with_a_backend(client, page, tmp_path):
    from shared.schema import CompareResponse
    from tests.e2e.test_ui import choose, open_ui, upload

    base = str(client.base_url).rstrip("/")
    open_ui(page, base)
    row = page.locator("#backend-list .backend[data-backend=cascade]")
    assert "ready" in row.inner_text() and "mineru first, rapidocr for pages that need it" in row.inner_text()

    choose(page, ["cascade"])
    upload(page, tmp_path, "scan.png", samples.encode(samples.one_column_page()[0]))
    with page.expect_response(lambda r: r.url.endswith("/v1/ocr")) as answer:
        page.click("#run")
    result = OCRResponse.model_validate(answer.value.json())
    assert result.backend == "cascade" and result.pages[0].backend == "rapidocr"
    page.wait_for_function(
        "n => document.querySelectorAll('.single-view .overlay .block').length === n", arg=len(result.pages[0].blocks)
    )

    choose(page, ["cascade", "rapidocr"])
    with page.expect_response(lambda r: r.url.endswith("/v1/compare")) as answer:
        page.click("#run")
    compared = CompareResponse.model_validate(answer.value.json())
    assert sorted(e.backend for e in compared.entries) == ["cascade", "rapidocr"] and all(
        e.ok for e in compared.entries
    )
    assert compared.agreement[0].agreement == pytest.approx(1.0)  # the cascade sent the scan to RapidOCR
    page.wait_for_selector(".compare-view .column[data-backend=cascade] .block")
