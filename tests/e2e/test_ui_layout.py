"""The web page shows why RapidOCR read a region as text after all: its label and the page's warning, in a real
headless Chromium against the service over HTTP (``tests/support/browser.py``).

A real slide from the reading corpus: the layout model takes the whole slide for one figure, the engine reads its
lines as text (blocks labelled ``figure→text``, a page warning saying why). A person hovering such a block must
see the label and the reason; the legend and the page's warnings say it too.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.schema import OCRResponse
from tests.e2e.test_ui import choose, open_ui, shot, upload

pytestmark = pytest.mark.cluster

SLIDE = Path(__file__).resolve().parents[1] / "data" / "corpus" / "pages" / "bfh-slide-title.pdf"


def test_a_region_read_as_text_shows_its_label_and_why(rapidocr_url, page, tmp_path):
    open_ui(page, rapidocr_url)
    choose(page, ["rapidocr"])
    upload(page, tmp_path, "slide.pdf", SLIDE.read_bytes())
    page.set_checked("#use-job", False)  # one page: a plain request, the answer read below
    with page.expect_response(lambda r: r.url.endswith("/v1/ocr"), timeout=180_000) as answer:
        page.click("#run")
    result = OCRResponse.model_validate(answer.value.json())
    (api_page,) = result.pages
    overruled = [i for i, b in enumerate(api_page.blocks) if b.label == "figure→text"]
    assert overruled and any(w.startswith("figure→text: figure region") for w in api_page.warnings)
    page.wait_for_selector(".single-view .overlay .block.read-as-text")
    page.wait_for_function("() => document.querySelector('.single-view .page-image').naturalWidth > 0")

    # the overruled blocks are drawn apart, and exactly those
    marked = page.locator(".single-view .overlay .block.read-as-text").evaluate_all(
        "els => els.map(e => +e.dataset.index)"
    )
    assert marked == overruled
    legend = page.locator(".single-view .legend .read-as-text-item")
    assert legend.is_visible() and f"figure→text {len(overruled)}" in legend.inner_text()

    # hovering one shows the label and the reason: the page's warning about that region
    page.locator(".single-view .overlay .block").nth(overruled[0]).hover()
    tip = page.locator(".single-view .block-tip")
    assert tip.is_visible() and "label figure→text" in tip.inner_text()
    why = page.locator(".single-view .block-tip .tip-why")
    assert why.is_visible() and "read as text" in why.inner_text() and "lines" in why.inner_text()
    # ...and the page's warnings list says it for the whole page
    warnings = page.locator(".single-view .page-info .warnings")
    assert warnings.is_visible() and "figure→text" in warnings.inner_text()
    # the words of the slide are in the rendered markdown, not a figure reference
    assert "![figure]" not in api_page.markdown and page.locator(".markdown-pane").inner_text().strip()
    page.locator(".single-view .overlay .block").nth(overruled[-1]).hover()
    shot(page, "read-as-text")
