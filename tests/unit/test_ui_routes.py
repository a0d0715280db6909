"""The web page's routes, the offline docs, the page-image route and the jobs' partial pages, without Ray.

The browser tests (tests/e2e/test_ui*.py) drive the page in Chromium over real HTTP; these pin the server side
cheaply: what is served, with which headers, under a route prefix, and nothing outside the page's folder.
"""

from __future__ import annotations

import io

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from benchmarks.support.fake_engine import FakeEngine
from deployments.backend import options_schema
from orchestrator.jobs.consumer import JobConsumer
from orchestrator.jobs.service import JobService
from orchestrator.jobs.settings import JobSettings
from orchestrator.ops import samples
from orchestrator.serving.api import create_api
from orchestrator.serving.api.routes.ui import DOCS_ASSETS, DOCS_FILES, WEB_DIR
from orchestrator.serving.config import RouterSettings
from orchestrator.serving.router import Router
from shared.documents import open_document
from shared.schema import ErrorResponse, JobPages
from tests.support.hand_queue import HandQueue
from tests.unit.test_router import FakeHandle


@pytest.fixture()
def client():
    return TestClient(create_api(Router({"a": FakeHandle("a")}, RouterSettings())), follow_redirects=False)


def test_home_redirects_to_the_page_which_is_served_with_a_strict_policy(client):
    assert client.get("/").headers["location"] == "/ui/"
    assert client.get("/ui").headers["location"] == "/ui/"
    page = client.get("/ui/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "{{ROOT}}" not in page.text and 'src="/ui/js/app.js"' in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp and "unsafe-inline" not in csp


def test_the_page_knows_its_route_prefix():
    """Under ``serve run`` with a route prefix, the page's URLs and its API root carry the prefix."""
    client = TestClient(create_api(Router({}, RouterSettings())), root_path="/ocr", follow_redirects=False)
    assert client.get("/ocr/").headers["location"] == "/ocr/ui/"
    page = client.get("/ocr/ui/").text
    assert '<meta name="ocrserve-root" content="/ocr">' in page and 'href="/ocr/docs"' in page


def test_page_files_are_served_as_modules_and_nothing_else_is(client):
    served = [("js/app.js", "text/javascript"), ("vendor/purify.es.mjs", "text/javascript"), ("style.css", "text/css")]
    for path, kind in served:
        r = client.get(f"/ui/{path}")
        assert r.status_code == 200 and r.headers["content-type"].startswith(kind), path
    for path in ["../api/app.py", "..%2F..%2Frouter.py", "js/missing.js", "vendor/README"]:
        r = client.get(f"/ui/{path}")
        assert r.status_code == 404 and ErrorResponse.model_validate(r.json()).error.code == "not_found", path


def test_vendored_libraries_carry_their_licences():
    vendor = WEB_DIR / "vendor"
    assert {"marked.esm.js", "marked.LICENSE.txt", "purify.es.mjs", "dompurify.LICENSE.txt", "README.txt"} <= {
        p.name for p in vendor.iterdir()
    }
    assert "MIT" in (vendor / "marked.LICENSE.txt").read_text()
    assert "Apache License" in (vendor / "dompurify.LICENSE.txt").read_text()


def test_docs_load_swagger_ui_from_local_assets_only(client):
    docs = client.get("/docs").text
    assert "/docs/assets/swagger-ui-bundle.js" in docs and "/openapi.json" in docs
    assert "cdn." not in docs and "https://" not in docs.replace("https://swagger.io", "")
    assert client.get("/redoc").status_code == 404  # FastAPI's CDN-bound ReDoc page is off
    for name in DOCS_FILES:
        assert (DOCS_ASSETS / name).is_file(), name
        assert client.get(f"/docs/assets/{name}").status_code == 200
    assert client.get("/docs/assets/core.py").status_code == 404
    assert client.get("/openapi.json").json()["paths"]["/v1/page-image"]


def test_page_image_renders_the_page_the_backends_see(client):
    first, second = samples.one_column_page()[0], samples.two_column_page()[0].resize((600, 800))
    pdf = samples.multi_page_pdf([first, second], dpi=100)
    r = client.post("/v1/page-image", files={"file": ("d.pdf", pdf)}, data={"page": "2", "dpi": "72"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(r.content))
    size = open_document(pdf, page_range="2", dpi=72).page_indices  # same rasterisation as the backends'
    assert size == [1] and image.size == (432, 576)  # 600x800 px at 100 DPI = 432x576 pt, at 72 DPI


@pytest.mark.parametrize(
    "fields,status,code",
    [
        ({"page": "3"}, 400, "invalid_page_range"),
        ({"page": "0"}, 400, "invalid_option"),
        ({"dpi": "5"}, 400, "invalid_option"),
    ],
)
def test_page_image_refuses_what_an_ocr_request_would(client, fields, status, code):
    pdf = samples.multi_page_pdf([samples.one_column_page()[0]] * 2)
    r = client.post("/v1/page-image", files={"file": ("d.pdf", pdf)}, data=fields)
    assert r.status_code == status and r.json()["error"]["code"] == code


def test_page_image_of_a_format_without_pages_says_what_has_them(client):
    r = client.post("/v1/page-image", files={"file": ("t.html", b"<html><body><p>hi</p></body></html>")})
    assert r.status_code == 415
    assert "application/pdf" in r.json()["error"]["accepted"]


def test_options_schema_carries_the_deployments_defaults():
    engine = FakeEngine({})
    engine.reconfigure({"sleep_s": 0.5})
    schema = options_schema(engine)
    assert schema["properties"]["sleep_s"]["default"] == 0.5 and schema["properties"]["fail"]["default"] is False
    assert FakeEngine.Options.model_json_schema()["properties"]["sleep_s"]["default"] == 0.0  # class untouched


def test_job_pages_arrive_chunk_by_chunk_and_each_page_once(tmp_path):
    """A client polling /v1/jobs/{id}/pages sees each chunk's pages as soon as it is done, then the rest."""
    settings = JobSettings(state_dir=str(tmp_path / "{app}"), chunk_pages=2, window_chunks=2)
    queue = HandQueue()
    backend = FakeHandle("a")
    router = Router({"a": backend}, RouterSettings(), jobs=JobService(settings, queue=queue))
    consumer = JobConsumer({"a": backend}, settings, queue=queue, background=False)
    client = TestClient(create_api(router))
    pdf = samples.multi_page_pdf([Image.new("RGB", (120, 90), "white")] * 5, dpi=72)
    r = client.post("/v1/jobs", files={"file": ("d.pdf", pdf)}, data={"backend": "a"})
    assert r.status_code == 202 and r.headers["location"] == f"/v1/jobs/{r.json()['job_id']}"
    job_id = r.json()["job_id"]
    seen: list[JobPages] = []
    while True:
        got = JobPages.model_validate(
            client.get(f"/v1/jobs/{job_id}/pages", params={"start": len(sum((s.pages for s in seen), []))}).json()
        )
        seen.append(got)
        if got.state == "succeeded":
            break
        assert queue.deliver(consumer, limit=1) == ["done"]  # one chunk at a time
    pages = [p.index for s in seen for p in s.pages]
    assert sorted(pages) == [0, 1, 2, 3, 4] and len(pages) == 5  # each page once across polls
    assert any(0 < s.pages_done < 5 and s.pages for s in seen)  # some arrived before the end
    assert seen[-1].pages_done == seen[-1].pages_total == 5
    assert client.get(f"/v1/jobs/{job_id}").json()["result_url"] == f"/v1/jobs/{job_id}/result"


def test_job_pages_of_an_unknown_job_is_not_found(tmp_path):
    settings = JobSettings(state_dir=str(tmp_path / "{app}"))
    router = Router({"a": FakeHandle("a")}, RouterSettings(), jobs=JobService(settings, queue=HandQueue()))
    r = TestClient(create_api(router)).get(f"/v1/jobs/{'0' * 32}/pages")
    assert r.status_code == 404 and ErrorResponse.model_validate(r.json()).error.code == "not_found"
