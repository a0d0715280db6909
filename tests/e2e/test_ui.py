"""The web page in a real headless Chromium against the service over real HTTP (CPU profile engines).

What a person does: upload a generated page and check its blocks sit where the API says (positions read from
the DOM) and that hovering one highlights its text in the markdown; compare backends and see every column, the
agreement and the blocks they disagree on, a failing backend's error in its own column; upload a bad file and
read the API's error; push a multi-page PDF through the job API and watch progress and pages arrive; open /docs
offline. Every page is cut off from anything but this machine (tests/support/browser.py).

Set ``OCRSERVE_SCREENSHOTS=docs`` to save the README's screenshots from these runs.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import pytest

from benchmarks.support.layout_samples import report_page
from orchestrator.ops import samples
from shared.agreement import disagreements
from shared.schema import CompareResponse, OCRResponse
from tests.conftest import STRICT_KEY
from tests.support.signals import HANG_GUARD_S, Gate, until

pytestmark = pytest.mark.cluster

SHOTS = os.environ.get("OCRSERVE_SCREENSHOTS")


def shot(pg, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        pg.evaluate("() => { window.scrollTo(0, 0); document.querySelector('.controls')?.scrollTo(0, 0); }")
        pg.screenshot(path=str(Path(SHOTS) / f"ui-{name}.png"))


def open_ui(pg, base_url: str) -> None:
    pg.goto(f"{base_url}/")  # the service's address opens the page
    assert pg.url.endswith("/ui/")
    pg.wait_for_selector("#backend-list .backend")


def choose(pg, backends: list[str]) -> None:
    for box in pg.locator("#backend-list input[name=backend]").all():
        box.set_checked(box.get_attribute("value") in backends)


def upload(pg, tmp_path: Path, name: str, data: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    pg.set_input_files("#file-input", str(path))
    pg.wait_for_selector(f"#file-summary:has-text('{name}')")


def block_rects(pg, scope: str) -> list[list[float]]:
    """Each drawn block's box as fractions of the page picture it is drawn over, read from the layout."""
    return pg.evaluate(
        """(scope) => {
            const overlay = document.querySelector(`${scope} .overlay`).getBoundingClientRect();
            return [...document.querySelectorAll(`${scope} .overlay .block`)].map((b) => {
                const r = b.getBoundingClientRect();
                return [(r.left - overlay.left) / overlay.width, (r.top - overlay.top) / overlay.height,
                        (r.right - overlay.left) / overlay.width, (r.bottom - overlay.top) / overlay.height];
            });
        }""",
        scope,
    )


def words(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text)).strip()


def test_one_backend_draws_blocks_where_the_api_says_and_links_them_to_the_markdown(rapidocr_url, page, tmp_path):
    open_ui(page, rapidocr_url)
    choose(page, ["rapidocr"])
    upload(page, tmp_path, "report.png", samples.encode(report_page().image))
    with page.expect_response(lambda r: r.url.endswith("/v1/ocr")) as answer:
        page.click("#run")
    result = OCRResponse.model_validate(answer.value.json())
    (api_page,) = result.pages
    blocks = page.locator(".single-view .overlay .block")
    page.wait_for_function(
        "n => document.querySelectorAll('.single-view .overlay .block').length === n", arg=len(api_page.blocks)
    )
    page.wait_for_function("() => document.querySelector('.single-view .page-image').naturalWidth > 0")

    # the picture is the page the backend read, and each box sits on its block's bbox_norm
    natural = page.evaluate(
        "() => { const i = document.querySelector('.single-view .page-image');"
        " return [i.naturalWidth, i.naturalHeight]; }"
    )
    assert natural == [api_page.width, api_page.height]
    for drawn, block in zip(block_rects(page, ".single-view"), api_page.blocks):
        assert drawn == pytest.approx(block.bbox_norm, abs=0.004), block.text[:40]
    assert {b.type for b in api_page.blocks} >= {"title", "text", "table"}
    assert page.locator(".markdown-pane table td", has_text="RapidOCR").count() == 1  # tables as tables

    # hovering a block shows its type, score and text, and highlights that text in the markdown
    k = max(
        range(len(api_page.blocks)),
        key=lambda i: len(api_page.blocks[i].text) if api_page.blocks[i].type == "text" else 0,
    )
    block = api_page.blocks[k]
    blocks.nth(k).hover()
    tip = page.locator(".single-view .block-tip")
    assert tip.is_visible() and "text" in tip.inner_text() and words(block.text)[:30] in words(tip.inner_text())
    highlighted = page.locator(".markdown-pane .hl")
    assert highlighted.count() >= 1 and words(block.text)[:30] in words(highlighted.first.inner_text())
    shot(page, "single")

    # keyboard: blocks are focusable in reading order and show the same details
    blocks.nth(0).focus()
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.dataset.index") == "1"
    assert words(api_page.blocks[1].text)[:20] in words(tip.inner_text())

    # downloads are the API's own markdown and JSON
    with page.expect_download() as dl:
        page.click(".single-view .result-head button:has-text('Markdown')")
    assert Path(dl.value.path()).read_text() == result.markdown
    assert result.timings.total_s > 0 and page.locator(".result-head .fact", has_text="Total").count() == 1


def test_compare_shows_every_column_the_agreement_and_the_disagreeing_blocks(rapidocr_url, page, tmp_path):
    open_ui(page, rapidocr_url)
    choose(page, ["truth", "edited", "fake"])
    page.click("#backend-options summary:has-text('fake options')")
    page.check("#opt-fake-fail")  # a backend documented option, from its schema: this one makes it fail
    upload(page, tmp_path, "page.png", samples.encode(samples.one_column_page()[0]))
    assert page.inner_text("#run") == "Compare 3 backends"
    with page.expect_response(lambda r: r.url.endswith("/v1/compare")) as answer:
        page.click("#run")
    cmp = CompareResponse.model_validate(answer.value.json())
    page.wait_for_selector(".compare-view .column[data-backend=edited] .block")

    columns = page.locator(".compare-view .column")
    shown = [c.get_attribute("data-backend") for c in columns.all()]
    assert shown == [e.backend for e in cmp.entries] and sorted(shown) == ["edited", "fake", "truth"]
    failed = page.locator(".column[data-backend=fake] .error-body")
    assert failed.get_attribute("data-code") == "internal_error" and "failed" in failed.inner_text()
    (pair,) = cmp.agreement
    row = page.locator(".agreement-table tr[data-pair='truth|edited']")
    assert f"{pair.agreement * 100:.1f} %" in row.inner_text()

    # the real block-level agreement of the response marks exactly the blocks the service calls disagreements
    (page_cmp,) = cmp.pages
    for name in ("truth", "edited"):
        marked = page.locator(f".column[data-backend={name}] .block.disagree").evaluate_all(
            "els => els.map(e => +e.dataset.index)"
        )
        assert marked == disagreements(page_cmp, name) == [2]
    # hovering a block lights up its match in the other column, with the match's agreement in the details
    page.hover(".column[data-backend=edited] .block[data-index='2']")
    assert page.locator(".column[data-backend=truth] .block.peer").evaluate_all(
        "els => els.map(e => e.dataset.index)"
    ) == ["2"]
    assert "Disagreement" in page.inner_text(".column[data-backend=edited] .block-tip")
    shot(page, "compare")


def test_compare_of_two_real_engines_on_a_report_page(rapidocr_url, page, tmp_path):
    """The screenshot a person would take: RapidOCR's two settings on a page with a table and a figure."""
    open_ui(page, rapidocr_url)
    choose(page, ["rapidocr", "rapidocr-default"])
    upload(page, tmp_path, "report.png", samples.encode(report_page().image))
    page.click("#run")
    page.wait_for_selector(".compare-view .column[data-backend=rapidocr-default] .block", timeout=180_000)
    assert page.locator(".compare-view .column").count() == 2
    assert page.locator(".agreement-table tbody tr").count() == 1
    page.hover(".column[data-backend=rapidocr] .block >> nth=1")
    shot(page, "compare-real")


def test_a_bad_file_shows_the_api_error_and_what_is_accepted(rapidocr_url, page, tmp_path):
    open_ui(page, rapidocr_url)
    choose(page, ["rapidocr"])
    upload(page, tmp_path, "scan.pdf", b"these bytes are not a document \x00\x01\x02" * 20)
    page.click("#run")
    card = page.locator("#error .error-body")
    card.wait_for()
    assert card.get_attribute("data-code") == "unsupported_media_type"
    text = card.inner_text()
    assert "not a document type this service knows" in text and "PDF (application/pdf)" in text
    assert "Traceback" not in page.content()
    shot(page, "error")


def test_a_long_pdf_goes_through_the_job_api_with_progress_and_every_page(strict_url, strict_gates, page, tmp_path):
    """The strict app: API key required, jobs in chunks of 2 pages; the 'steady' fake backend holds each chunk at
    its own gate (``chunk-{page}``), so the test opens the first chunk's gate only and sees the page part-way -
    some pages shown, the progress bar between the ends - before it lets the rest through."""
    page.goto(f"{strict_url}/ui/")
    page.wait_for_selector("#key-panel:not([hidden])")
    assert "API key needed" in page.inner_text("#service-status")
    page.fill("#api-key", STRICT_KEY)
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("#backend-list .backend")
    choose(page, ["steady"])
    page.click("#backend-options summary:has-text('steady options')")
    prefix = f"ui-{uuid.uuid4().hex[:8]}-chunk-"
    page.fill("#opt-steady-hold", prefix + "{page}")
    n = 6  # chunks of 2: pages 1-2, 3-4, 5-6 wait at gates <prefix>1, <prefix>3, <prefix>5
    first, rest = Gate(strict_gates, f"{prefix}1"), [Gate(strict_gates, f"{prefix}{p}") for p in (3, 5)]
    upload(page, tmp_path, "long.pdf", samples.multi_page_pdf([samples.one_column_page()[0]] * n, dpi=150))
    assert page.is_checked("#use-job")  # PDFs go through the job API by default

    state_js = """() => ({bar: document.querySelector('#progress-bar').value,
                         max: document.querySelector('#progress-bar').max,
                         text: document.querySelector('#progress-text').textContent,
                         pages: document.querySelectorAll('.single-view .page-button').length,
                         done: !!document.querySelector('.single-view .result-head .downloads')})"""
    page.click("#run")
    until(lambda: first.waiting() == 1, "the first chunk held at its gate")
    first.open()
    page.wait_for_function("n => document.querySelectorAll('.single-view .page-button').length === n", arg=2)
    part_way = page.evaluate(state_js)
    assert not any(g.is_open() for g in rest)  # the other chunks are still held: this is the page mid-job
    assert part_way["pages"] == 2 and not part_way["done"], part_way
    assert part_way["max"] == n and 0 < part_way["bar"] < n, part_way
    assert f"of {n} pages" in part_way["text"], part_way
    if SHOTS:  # pages arriving, the progress bar part-way, the first page's picture in
        page.wait_for_function("() => document.querySelector('.single-view .page-image').naturalWidth > 0")
        shot(page, "job")
    for gate in rest:
        gate.open()
    page.wait_for_selector(".single-view .result-head .downloads", timeout=HANG_GUARD_S * 1000)

    # every page is there, with its own blocks over its own (server-rendered) picture
    assert page.locator(".single-view .page-button").count() == n
    for i in range(n):
        page.click(f".single-view .page-button[data-page='{i}']")
        block = page.locator(".single-view .overlay .block").first
        assert f"fake text page {i + 1}" in block.get_attribute("aria-label")
    page.wait_for_function("() => document.querySelector('.single-view .page-image').naturalWidth > 0")


def test_stop_offers_to_cancel_the_job_and_the_pages_read_stay(strict_url, strict_gates, page, tmp_path):
    """Stop during a job asks whether to cancel it in the service; cancelling leaves the pages read on the page.
    Only the first chunk's gate is opened, so the job is certainly part-way when Stop is pressed."""
    import httpx

    page.goto(f"{strict_url}/ui/")
    page.wait_for_selector("#key-panel:not([hidden])")
    page.fill("#api-key", STRICT_KEY)
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("#backend-list .backend")
    choose(page, ["steady"])
    page.click("#backend-options summary:has-text('steady options')")
    prefix = f"stop-{uuid.uuid4().hex[:8]}-chunk-"
    page.fill("#opt-steady-hold", prefix + "{page}")
    n = 6
    gates = [Gate(strict_gates, f"{prefix}{p}") for p in (1, 3, 5)]
    upload(page, tmp_path, "long.pdf", samples.multi_page_pdf([samples.one_column_page(width=400)[0]] * n, dpi=72))
    try:
        with page.expect_response(lambda r: r.url.endswith("/v1/jobs") and r.request.method == "POST") as submitted:
            page.click("#run")
        job_id = submitted.value.json()["job_id"]
        until(lambda: gates[0].waiting() == 1, "the first chunk held at its gate")
        gates[0].open()
        page.wait_for_function(
            "() => document.querySelectorAll('.single-view .page-button').length > 0", timeout=HANG_GUARD_S * 1000
        )
        page.click("#cancel")
        assert page.is_visible("#stop-choice") and "goes on in the service" in page.inner_text("#stop-choice")
        page.click("#cancel-job")
        page.wait_for_selector("#error:not([hidden])")
        assert "Job cancelled after" in page.inner_text("#error")
        status = httpx.get(f"{strict_url}/v1/jobs/{job_id}", headers={"x-api-key": STRICT_KEY}).json()
    finally:
        for gate in gates[1:]:  # the held chunks go once the job is cancelled (or the test failed)
            gate.open()
    assert status["state"] == "cancelled" and status["pages_done"] < n
    assert page.locator(".single-view .page-button").count() >= 1  # what was read stays shown
    shot(page, "job-cancel")


def test_api_docs_render_offline(rapidocr_url, page):
    page.goto(f"{rapidocr_url}/docs")
    page.wait_for_selector(".swagger-ui .opblock-summary-path")
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert {"/v1/ocr", "/v1/compare", "/v1/jobs/{job_id}/pages", "/v1/jobs/{job_id}/events", "/v1/page-image"} <= {
        p.strip() for p in paths
    }
    page.locator(".opblock-summary-path", has_text="/v1/backends").first.click()  # an operation opens
    page.wait_for_selector(".opblock.is-open .try-out__btn")
    shot(page, "docs")
