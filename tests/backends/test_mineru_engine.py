"""The MinerU engine end to end on CPU, through ``backends.pipeline.run_document`` as a replica would run it.

No model can be downloaded here, so the engine runs with an empty models directory: the flash tier parses
born-digital PDFs and office/HTML/CSV files for real, and everything that needs models must fail fast with
``models_missing``. Documents are generated in the tests (a hand-written PDF with a real text layer, Pillow
"scans", a minimal DOCX) so the suite means something without the shared development data.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("mineru", reason="the mineru extra is not installed")

from backends.mineru import MinerUEngine  # noqa: E402
from backends.pipeline import run_document  # noqa: E402
from backends.registry import create_engine  # noqa: E402
from backends.textpdf import TextLine, article_pages, text_pdf  # noqa: E402
from shared.documents import open_document  # noqa: E402
from shared.errors import OCRError  # noqa: E402
from shared.metrics import ned  # noqa: E402
from tests.conftest import dev_file  # noqa: E402
from tests.support.runs import run_request

PARAGRAPHS = [
    [
        "Alpha paragraph on the first page talks about the quick brown fox that jumps over a lazy dog.",
        "A second paragraph mentions zebras, giraffes and okapis grazing near the water hole at dusk.",
    ],
    [
        "Bravo paragraph opens the second page with harbour cranes unloading containers before dawn.",
        "The closing paragraph of page two describes the tugboats returning to their moorings.",
    ],
    [
        "Charlie paragraph on the third page covers lighthouses, fog signals and coastal navigation.",
        "Its last paragraph lists the keepers who tended the lamps through the long winter nights.",
    ],
]
TITLES = ["First Chapter", "Second Chapter", "Third Chapter"]


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    """An empty models directory: every tier that needs models is guaranteed to miss them, on any machine."""
    return tmp_path_factory.mktemp("mineru-models")


@pytest.fixture(scope="module")
def engine(models_dir):
    saved = dict(os.environ)
    eng = create_engine("mineru", {"models_dir": str(models_dir)})
    assert isinstance(eng, MinerUEngine)
    eng.start()
    yield eng
    os.environ.clear()
    os.environ.update(saved)


def _run(engine, data: bytes, name: str, *, page_range: str | None = None, options: dict | None = None, **kw):
    doc = open_document(data, name=name, accepted=engine.media_types, page_range=page_range)
    kw["options"] = options or {}
    return run_document(
        engine,
        doc,
        run_request("test", **kw),
        backend="mineru",
    )


def _assert_boxes_inside(response) -> None:
    for page in response.pages:
        assert page.width > 0 and page.height > 0
        for block in page.blocks:
            x0, y0, x1, y1 = block.bbox
            assert 0 <= x0 <= x1 <= page.width and 0 <= y0 <= y1 <= page.height, (page.index, block)


def _scan_pdf(lines: list[str]) -> bytes:
    """A page that is only pixels (Pillow's PDF writer embeds an image): what a scanner produces."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (850, 1100), "white")
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((80, 100 + 40 * i), line, fill="black")
    buf = io.BytesIO()
    image.save(buf, format="PDF", resolution=100.0)
    return buf.getvalue()


def _merge_pdfs(*parts: bytes) -> bytes:
    import pypdfium2 as pdfium

    out = pdfium.PdfDocument.new()
    for part in parts:
        src = pdfium.PdfDocument(part)
        out.import_pages(src)
        src.close()
    buf = io.BytesIO()
    out.save(buf)
    out.close()
    return buf.getvalue()


# -- born-digital PDFs (flash, no models) --------------------------------------------------------------------


def test_dev_multi_page_pdf_matches_its_reference(engine):
    """multi_page.pdf (5 pages) with the flash tier: pages in order, boxes inside pages, markdown ~ reference.

    Measured NED against ``multi_page.md``: 0.000 (mineru 4.0.12; the reference's 7,680 normalised characters all
    match). Threshold 0.005 (~38 characters): dropping any body paragraph (the shortest is 75 characters) or any
    heading longer than 38 characters fails, while small renderer drift (dashes, bullets, ligatures: removed by
    the OmniDocBench normalisation anyway) does not.
    """
    pdf, reference = dev_file("pdfs/multi_page.pdf"), dev_file("pdfs/multi_page.md")
    response = _run(engine, pdf.read_bytes(), "multi_page.pdf", include_raw=True)
    assert [p.index for p in response.pages] == [0, 1, 2, 3, 4]
    assert all(p.blocks for p in response.pages)
    _assert_boxes_inside(response)
    score = ned(response.markdown, reference.read_text(encoding="utf-8"))
    assert score < 0.005, score
    assert response.model.id == "mineru-4 flash" and response.model.engine == "mineru"
    assert response.pages[0].blocks[0].type == "title"
    assert all(p.boxes_image for p in response.pages)  # the runner drew MinerU's boxes on the page images


def test_generated_pdf_text_comes_back_on_its_page(engine):
    data = article_pages(PARAGRAPHS, titles=TITLES)
    response = _run(engine, data, "generated.pdf", include_raw=True)
    assert [p.index for p in response.pages] == [0, 1, 2]
    _assert_boxes_inside(response)
    for page, title, paragraphs in zip(response.pages, TITLES, PARAGRAPHS, strict=True):
        assert page.markdown.startswith(f"## {title}")
        for paragraph in paragraphs:
            assert paragraph in page.markdown
        assert [b.type for b in page.blocks] == ["title", "text", "text"]
        # The title was written at x=72pt, y=72pt (top-left) on a 612x792pt page rendered at 144 dpi.
        title_box = page.blocks[0].bbox
        assert abs(title_box[0] - 144) < 12 and abs(title_box[1] - 144) < 24
    expected = "\n\n".join(t + "\n\n" + "\n\n".join(p) for t, p in zip(TITLES, PARAGRAPHS, strict=True))
    assert ned(response.markdown, expected) == 0
    # The raw result is MinerU's middle JSON, JSON-serialisable, and MinerU's own markdown rides along.
    raw = json.loads(json.dumps(response.raw_result))
    assert raw["schema"] == "docvortex.middle" and raw["extensions"]["mineru"] == {"tier": "flash", "parse_mode": "txt"}
    assert response.source_markdown and PARAGRAPHS[2][1] in response.source_markdown


def test_page_range_parses_only_the_selected_pages(engine):
    data = article_pages(PARAGRAPHS, titles=TITLES)
    response = _run(engine, data, "generated.pdf", page_range="2-3")
    assert [p.index for p in response.pages] == [1, 2]
    assert PARAGRAPHS[1][0] in response.pages[0].markdown
    assert PARAGRAPHS[0][0] not in response.markdown
    response = _run(engine, data, "generated.pdf", page_range="3")
    assert [p.index for p in response.pages] == [2] and response.markdown.startswith("## Third Chapter")


def test_running_headers_stay_out_but_mislabelled_body_text_stays_in(engine):
    """Flash labels a running header *and* each page's heading and first line as ``header`` (seen with 4.0.12).

    The engine keeps real furniture (top 10 % of the page) out of the markdown and demotes the rest to text.
    """
    pages = []
    for n in range(1, 4):
        lines = [TextLine("ACME Corporation Annual Report 2024", 72, 30, size=9)]
        lines.append(TextLine(f"Section {n} Overview", 72, 72, size=18, bold=True))
        lines += [
            TextLine(f"Body line {j} of section {n} with enough ordinary words to fill a line.", 72, 110 + 15 * j)
            for j in range(6)
        ]
        lines.append(TextLine(f"Page {n}", 290, 750, size=9))
        pages.append(lines)
    response = _run(engine, text_pdf(pages), "report.pdf")
    for n, page in enumerate(response.pages, start=1):
        assert "ACME Corporation" not in page.markdown
        assert f"Section {n} Overview" in page.markdown
        assert f"Body line 0 of section {n}" in page.markdown
        assert not page.markdown.rstrip().endswith(f"Page {n}")
        types = {b.text: b.type for b in page.blocks}
        assert types["ACME Corporation Annual Report 2024"] == "header"
        assert types[f"Page {n}"] == "footer"
    everything = _run(engine, text_pdf(pages), "report.pdf", options={"include_page_furniture": True})
    assert everything.pages[0].markdown.startswith("ACME Corporation Annual Report 2024")


def test_mixed_pdf_warns_about_pages_without_text(engine):
    """Two text pages and a scan: MinerU classifies the PDF as text, flash returns nothing for the scan — say so."""
    data = _merge_pdfs(article_pages(PARAGRAPHS[:2], titles=TITLES[:2]), _scan_pdf(["a scanned page"]))
    response = _run(engine, data, "mixed.pdf")
    assert [p.index for p in response.pages] == [0, 1, 2]
    assert PARAGRAPHS[1][1] in response.markdown
    assert any("without a text layer: 3" in w for w in response.warnings), response.warnings


# -- structured formats ------------------------------------------------------------------------------------


def _docx(paragraphs: list[str], table: list[list[str]]) -> bytes:
    """A minimal DOCX written with zipfile (no python-docx needed): content types, relationship, document."""
    w = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"

    def para(text: str, style: str | None = None) -> str:
        props = f'<w:pPr><w:pStyle w:val="{style}"/></w:pPr>' if style else ""
        return f'<w:p>{props}<w:r><w:t xml:space="preserve">{text}</w:t></w:r></w:p>'

    rows = "".join(
        "<w:tr>" + "".join(f"<w:tc><w:p><w:r><w:t>{cell}</w:t></w:r></w:p></w:tc>" for cell in row) + "</w:tr>"
        for row in table
    )
    body = para(paragraphs[0], "Heading1") + "".join(para(p) for p in paragraphs[1:]) + f"<w:tbl>{rows}</w:tbl>"
    document = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        f'<w:document xmlns:w="{w}"><w:body>{body}</w:body></w:document>'
    )
    content_types = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/word/document.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'
    )
    rels = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Target="word/document.xml" '
        'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"/></Relationships>'
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", content_types)
        zf.writestr("_rels/.rels", rels)
        zf.writestr("word/document.xml", document)
    return buf.getvalue()


def test_docx_is_parsed_without_models(engine):
    data = _docx(
        ["Quarterly Report", "Revenue grew by twelve percent in the third quarter.", "Margins held steady."],
        [["Region", "Sales"], ["North", "42"]],
    )
    response = _run(engine, data, "report.docx", include_raw=True, options={"tier": "standard"})
    assert response.document.media_type.endswith("wordprocessingml.document")
    assert len(response.pages) == 1 and response.pages[0].index == 0
    md = response.markdown
    for text in ("Quarterly Report", "Revenue grew by twelve percent in the third quarter.", "Margins held steady."):
        assert text in md
    assert "| Region | Sales |" in md and "| North | 42 |" in md
    table = [b for b in response.pages[0].blocks if b.type == "table"]
    assert table and "<td>" in table[0].text and "North" in table[0].text
    assert response.pages[0].boxes_image is None  # no page image for a DOCX
    assert any("parsed natively (flash)" in w for w in response.warnings)  # tier standard does not apply
    assert json.dumps(response.raw_result)


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        (
            "page.html",
            b"<!DOCTYPE html><html><body><h1>Harbour Log</h1><p>Ships arrived at noon.</p></body></html>",
            ["# Harbour Log", "Ships arrived at noon."],
        ),
        (
            "table.csv",
            b"city,population\nOslo,709000\nBergen,291000\n",
            ["| city | population |", "| Bergen | 291000 |"],
        ),
    ],
)
def test_html_and_csv_are_parsed_without_models(engine, name, data, expected):
    response = _run(engine, data, name)
    for text in expected:
        assert text in response.markdown


# -- what needs models fails fast -----------------------------------------------------------------------------


def _refused_before_parsing(engine, run) -> OCRError:
    """Run ``run`` (which must fail) and check the refusal came from the engine's own model check - the one that
    names what to download - and not from MinerU trying (it retries a model hub for ~25 s when left alone): the
    parse process answered, was neither killed for its deadline nor replaced, and never parsed with a model tier.
    """
    before = engine.health().info["parse_process"]
    warm = set(engine._process.facts.warm_tiers)
    with pytest.raises(OCRError) as e:
        run()
    after = engine.health().info["parse_process"]
    assert (after["pid"], after["started"], after["killed"]) == (before["pid"], before["started"], before["killed"])
    assert engine._process.facts.warm_tiers == warm
    assert "the engine never downloads" in e.value.message, e.value.message
    return e.value


def test_scanned_pdf_needs_models_and_fails_fast(engine, models_dir):
    data = _scan_pdf(["Invoice number 12345", "Total due: 99 EUR"])
    err = _refused_before_parsing(engine, lambda: _run(engine, data, "scan.pdf"))
    assert err.code == "models_missing" and err.status == 503
    assert "'flash'" in err.message and "page(s) 1 have no text layer" in err.message
    assert "mineru-kit models download --tier basic" in err.message and str(models_dir) in err.message
    assert "OCR/paddleocr/ch_PP-OCRv6_tiny_det_infer.onnx" in err.accepted["missing"]["MinerU-4_models_onnx"]


def test_image_needs_models_and_fails_fast(engine):
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (400, 200), "white").save(buf, format="PNG")
    err = _refused_before_parsing(engine, lambda: _run(engine, buf.getvalue(), "photo.png"))
    assert err.code == "models_missing" and "an image needs OCR" in err.message


@pytest.mark.parametrize("tier", ["basic", "standard", "advanced"])
def test_model_tiers_fail_fast_even_on_born_digital_pdfs(engine, tier):
    err = _refused_before_parsing(
        engine, lambda: _run(engine, article_pages(PARAGRAPHS[:1]), "text.pdf", options={"tier": tier})
    )
    assert err.code == "models_missing" and f"tier {tier!r}" in err.message
    expected_tier = "basic" if tier == "basic" else "standard"
    assert f"mineru-kit models download --tier {expected_tier}" in err.accepted["download_command"]


def test_forced_ocr_on_a_text_pdf_needs_models(engine):
    with pytest.raises(OCRError) as e:
        _run(engine, article_pages(PARAGRAPHS[:1]), "text.pdf", options={"ocr_mode": "ocr"})
    assert e.value.code == "models_missing"


# -- health and configuration -------------------------------------------------------------------------------


def test_health_reports_model_version_device_and_tiers(engine, models_dir):
    import mineru.version

    health = engine.health()
    assert health.ready and health.detail is None
    assert health.model.id == "mineru-4 flash"
    assert health.model.version == mineru.version.__version__
    assert health.model.engine == "mineru" and health.model.device == "cpu"
    tiers = health.info["tiers"]
    assert set(tiers) == {"flash", "basic", "standard", "advanced"}
    assert tiers["flash"]["models_present"] is True
    assert tiers["flash"]["scans"]["models_present"] is False
    assert tiers["basic"]["models_present"] is False
    assert "--tier standard" in tiers["standard"]["download_command"]
    assert health.info["models_dir"] == str(models_dir)


def test_tier_not_offered_by_the_deployment_is_refused(models_dir):
    saved = dict(os.environ)
    try:
        eng = create_engine("mineru", {"models_dir": str(models_dir), "tiers": ["flash"], "warmup": False})
        eng.start()
        with pytest.raises(OCRError) as e:
            _run(eng, article_pages(PARAGRAPHS[:1]), "text.pdf", options={"tier": "standard"})
        assert e.value.code == "invalid_option" and e.value.accepted == {"tier": ["flash"]}
        assert set(eng.health().info["tiers"]) == {"flash"}
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_default_tier_without_models_fails_start_or_degrades(models_dir):
    saved = dict(os.environ)
    try:
        strict = create_engine("mineru", {"models_dir": str(models_dir), "default_tier": "standard", "warmup": False})
        with pytest.raises(OCRError) as e:
            strict.start()
        assert e.value.code == "models_missing" and "the default tier" in e.value.message
        health = strict.health()
        assert not health.ready and "standard" in health.detail and health.model.id == "mineru-4 standard"

        lenient = create_engine(
            "mineru",
            {
                "models_dir": str(models_dir),
                "default_tier": "standard",
                "require_default_tier_models": False,
                "warmup": False,
            },
        )
        lenient.start()
        assert lenient.health().ready
        response = _run(lenient, article_pages(PARAGRAPHS[:1]), "text.pdf", options={"tier": "flash"})
        assert PARAGRAPHS[0][0] in response.markdown
        with pytest.raises(OCRError):
            _run(lenient, article_pages(PARAGRAPHS[:1]), "text.pdf")  # default tier standard: models missing
    finally:
        os.environ.clear()
        os.environ.update(saved)
