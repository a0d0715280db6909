"""Document intake: type sniffing from bytes, limits, page selection, rasterisation, hostile files."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from orchestrator.ops import samples
from shared.documents import DocumentLimits, open_document, page_sizes, rasterize_pages, sniff_media_type
from shared.errors import OCRError
from shared.pages import parse_page_range
from tests.support.photos import exif_jpeg


def code_of(fn, *a, **kw) -> str:
    with pytest.raises(OCRError) as e:
        fn(*a, **kw)
    return e.value.code


@pytest.mark.parametrize(
    "fmt,media_type",
    [
        ("PNG", "image/png"),
        ("JPEG", "image/jpeg"),
        ("TIFF", "image/tiff"),
        ("WEBP", "image/webp"),
        ("BMP", "image/bmp"),
    ],
)
def test_every_image_type_is_sniffed_and_rendered(fmt, media_type):
    image = Image.new("RGB", (120, 80), "white")
    data = samples.encode(image, fmt)
    doc = open_document(data, name="whatever.bin")  # the name lies; the bytes decide
    assert doc.media_type == media_type and doc.page_count == 1
    (page,) = list(rasterize_pages(doc))
    assert page.image.size == (120, 80) and page.image.mode == "RGB"


QUADRANTS = {(0, 0): (220, 30, 30), (1, 0): (30, 200, 30), (0, 1): (30, 30, 220), (1, 1): (240, 240, 240)}
"""An upright test picture's four quadrants (column, row) -> colour: any turn or mirror moves at least two."""


@pytest.mark.parametrize("orientation", range(1, 9))
def test_jpeg_exif_orientation_is_applied_so_the_page_comes_out_upright(orientation):
    upright = Image.new("RGB", (160, 100))
    for (col, row), colour in QUADRANTS.items():
        upright.paste(colour, (col * 80, row * 50, col * 80 + 80, row * 50 + 50))
    doc = open_document(exif_jpeg(upright, orientation), name="photo.jpg")
    [page] = list(rasterize_pages(doc))
    assert page.image.size == (160, 100)
    for (col, row), colour in QUADRANTS.items():
        seen = page.image.getpixel((col * 80 + 40, row * 50 + 25))
        assert all(abs(a - b) <= 12 for a, b in zip(seen, colour)), (orientation, (col, row), seen, colour)
    # the sizes engines that read no pixels get (MinerU's boxes are placed with them) agree with the pixels
    assert [p.size for p in page_sizes(doc)] == [(160, 100)]


def test_pdf_pages_render_at_the_requested_dpi_in_range_order():
    images, _ = samples.numbered_pages(4)
    data = samples.multi_page_pdf(images, dpi=150)
    doc = open_document(data, page_range="2-3", dpi=72)
    assert doc.media_type == "application/pdf" and doc.page_count == 4 and doc.page_indices == [1, 2]
    pages = list(rasterize_pages(doc))
    assert [p.index for p in pages] == [1, 2]
    w_pt = images[0].width * 72 / 150  # page size in points
    assert abs(pages[0].image.width - w_pt) <= 1  # 72 dpi: one pixel per point
    assert pages[0].dpi == 72


def test_multi_frame_tiff_frames_are_pages():
    images, _ = samples.numbered_pages(3)
    doc = open_document(samples.multi_frame_tiff(images))
    assert doc.page_count == 3
    assert [p.index for p in rasterize_pages(doc)] == [0, 1, 2]


def test_transparent_png_is_flattened_on_white():
    image = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    (page,) = list(rasterize_pages(open_document(samples.encode(image))))
    assert page.image.getpixel((5, 5)) == (255, 255, 255)


def test_limits_bytes_pages_pixels_dpi():
    images, _ = samples.numbered_pages(3)
    pdf = samples.multi_page_pdf(images)
    assert code_of(open_document, pdf, limits=DocumentLimits(max_bytes=100)) == "document_too_large"
    assert code_of(open_document, pdf, limits=DocumentLimits(max_pages=2)) == "too_many_pages"
    assert open_document(pdf, limits=DocumentLimits(max_pages=2), page_range="1-2").page_indices == [0, 1]
    assert (
        code_of(open_document, pdf, dpi=600, limits=DocumentLimits(max_pixels_per_page=1_000_000)) == "too_many_pixels"
    )
    assert code_of(open_document, pdf, dpi=-1) == "invalid_option"
    assert code_of(open_document, pdf, dpi=10_000) == "invalid_option"


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_decompression_bomb_is_refused_from_its_header():
    assert (
        code_of(open_document, _png_header_only(20_000, 20_000)) == "too_many_pixels"
    )  # 400 MP < PIL's own bomb limit
    assert code_of(open_document, _png_header_only(100_000, 100_000)) == "too_many_pixels"  # PIL's bomb error


def test_hostile_and_broken_inputs():
    assert code_of(open_document, b"") == "empty_document"
    assert code_of(open_document, b"%PDF-1.4\n%broken") == "invalid_document"
    assert code_of(open_document, b"just some text, not a document") == "unsupported_media_type"
    jpeg = samples.encode(Image.new("RGB", (64, 64), "white"), "JPEG")
    for broken in (jpeg[: len(jpeg) // 2], jpeg[:200] + b"\x00garbage" * 50):  # cut short / garbage after header
        assert code_of(lambda b=broken: list(rasterize_pages(open_document(b)))) == "invalid_document"
    png = samples.encode(Image.new("RGB", (64, 64), "white"))
    assert code_of(open_document, png, accepted=frozenset({"application/pdf"})) == "unsupported_media_type"


def test_encrypted_pdf_is_named_as_such():
    import pypdf  # the test extra

    writer = pypdf.PdfWriter()
    writer.add_blank_page(width=200, height=200)
    writer.encrypt(user_password="secret", owner_password="owner")
    buf = io.BytesIO()
    writer.write(buf)
    assert code_of(open_document, buf.getvalue()) == "encrypted_document"


def test_structured_formats_are_sniffed():
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("word/document.xml", "<w:document/>")
    assert sniff_media_type(buf.getvalue()).endswith("wordprocessingml.document")
    assert sniff_media_type(b"<!DOCTYPE html><html><body>hi</body></html>") == "text/html"
    assert sniff_media_type(b"a,b\n1,2\n", "table.csv") == "text/csv"
    assert sniff_media_type(b"PK\x03\x04garbage") is None


@pytest.mark.parametrize(
    "expr,count,expected",
    [
        (None, 3, [0, 1, 2]),
        ("all", 2, [0, 1]),
        ("1-3,7", 10, [0, 1, 2, 6]),
        ("5-", 6, [4, 5]),
        ("-2", 6, [0, 1]),
        ("2, 2 ,1", 3, [0, 1]),
        ("3-9", 4, [2, 3]),
    ],
)
def test_page_ranges(expr, count, expected):
    assert parse_page_range(expr, count) == expected


@pytest.mark.parametrize("expr", ["0", "3-1", "a", "1-2-3", ",", "9", "-"])
def test_bad_page_ranges(expr):
    with pytest.raises(OCRError) as e:
        parse_page_range(expr, 5)
    assert e.value.code == "invalid_page_range" and e.value.accepted


@pytest.mark.parametrize("dpi", [36, 72, 100, 144, 150, 333])
def test_page_sizes_match_rendered_pages_without_rendering(dpi):
    from shared.documents import page_sizes

    images, _ = samples.numbered_pages(2)
    for data in (samples.multi_page_pdf(images, dpi=150), samples.multi_frame_tiff(images)):
        doc = open_document(data, dpi=dpi)
        sized = page_sizes(doc)
        assert all(p.image is None for p in sized)
        assert [(p.index, p.size) for p in sized] == [(p.index, p.image.size) for p in rasterize_pages(doc)]


def test_pages_without_text_layer_are_the_scanned_ones():
    from backends.textpdf import article_pages
    from shared.textlayer import pages_without_text

    digital = article_pages([["Born digital text."], ["Second page text."]], titles=["One", "Two"])
    assert pages_without_text(digital, "application/pdf", [0, 1]) == []
    scan = samples.multi_page_pdf(samples.numbered_pages(2)[0])  # pages that are pictures of text
    assert pages_without_text(scan, "application/pdf", [0, 1]) == [0, 1]
    assert pages_without_text(b"", "image/png", [0]) == [0]
    assert pages_without_text(b"", "text/html", [0]) == []


# -- structured formats: container limits before any parser (shared.containers, shared.markup, shared.tabular) --

STRUCTURED = frozenset(
    {
        "text/html",
        "text/csv",
        "application/epub+zip",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    }
)


def _open(data: bytes, name: str, **limits):
    return open_document(data, name=name, accepted=STRUCTURED, limits=DocumentLimits(**limits))


def _refusal(data: bytes, name: str, **limits) -> OCRError:
    with pytest.raises(OCRError) as e:
        _open(data, name, **limits)
    return e.value


@pytest.fixture(scope="module")
def hostile():
    from benchmarks.support import hostile_documents  # python-docx and python-pptx build it (the test extra)

    return hostile_documents


def test_every_hostile_structured_document_is_refused_with_its_code(hostile):
    cases = hostile.corpus(canary_path="/nonexistent/canary.txt", canary_url="http://127.0.0.1:9")
    assert len(cases) >= 20
    for case in cases:
        err = _refusal(case.data, case.filename)
        assert (err.status, err.code) == (case.status, case.code), (case.id, err)
        assert err.message and (err.accepted or err.code in ("invalid_document",)), case.id


def test_good_structured_documents_pass(hostile):
    for name, data, _ in hostile.good_documents():
        doc = _open(data, name)
        assert doc.page_count == 1 and doc.page_indices == [0]


def test_each_refusal_names_the_limit_it_hit_and_the_limit_is_configurable(hostile):
    # python-docx's template alone has ~18,600 elements (styles, numbering, theme); 400 paragraphs add ~1,200
    paragraphs = hostile.docx([f"Paragraph {i} of an ordinary report." for i in range(400)])
    assert _refusal(paragraphs, "r.docx", max_markup_elements=19_000).accepted == {"max_markup_elements": 19_000}
    _open(paragraphs, "r.docx", max_markup_elements=25_000)
    assert _refusal(paragraphs, "r.docx", max_archive_members=5).accepted == {"max_archive_members": 5}
    assert _refusal(paragraphs, "r.docx", max_unpacked_bytes=10_000).accepted == {"max_unpacked_bytes": 10_000}
    assert _refusal(paragraphs, "r.docx", max_markup_depth=5).accepted == {"max_markup_depth": 5}
    sheet = hostile.table_xlsx([[f"r{r}c{c}" for c in range(10)] for r in range(30)])
    assert _refusal(sheet, "s.xlsx", max_table_cells=200).accepted == {"max_table_cells": 200}
    assert _refusal(sheet, "s.xlsx", max_cell_chars=4).accepted == {"max_cell_chars": 4}
    _open(sheet, "s.xlsx", max_table_cells=300)
    page = hostile.html("<p>x</p>" * 100)
    assert _refusal(page, "p.html", max_html_bytes=500).accepted == {"max_html_bytes": 500}
    assert _refusal(page, "p.html", max_markup_elements=50).code == "document_too_complex"
    nested = hostile.rewrite(paragraphs, add={"word/embeddings/book.xlsx": sheet})
    _open(nested, "n.docx")  # one level of embedding is normal (a chart's workbook)
    assert _refusal(nested, "n.docx", max_archive_nesting=0).accepted == {"max_archive_nesting": 0}


def test_inspection_is_bounded_a_300mb_member_never_inflates_beyond_the_budget(hostile):
    import tracemalloc

    base = hostile.docx(["x"])
    bomb = hostile.streamed_member(base, "word/document.xml", b" " * (1 << 20), 300)
    liar = hostile.lying_sizes(bomb, "word/document.xml", declared=4096)
    tracemalloc.start()
    try:
        assert _refusal(bomb, "b.docx").code == "document_too_large"  # declared size: nothing inflated
        assert _refusal(liar, "l.docx").code == "invalid_document"  # cut off at the declared 4 kB, CRC fails
        # limits raised so that all 300 MB really stream through the inspectors (whitespace: nothing to refuse)
        _open(bomb, "b.docx", max_unpacked_bytes=400 << 20, max_compression_ratio=5000)
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < 16 << 20, peak  # 300 MB streamed 64 KiB at a time, never held whole


def test_actual_unpacked_bytes_are_counted_while_streaming(hostile):
    base = hostile.docx(["x"])
    blob = hostile.rewrite(base, add={"word/media/blob.bin": bytes(range(256)) * 40_000})  # ~10 MB, ratio ~200
    assert _refusal(blob, "b.docx", max_unpacked_bytes=5 << 20).code == "document_too_large"
    _open(blob, "b.docx")


def test_member_count_is_read_from_the_central_directory_without_zipfile(hostile):
    from shared.containers import count_members

    many = hostile.many_members(hostile.docx(["x"]), 3000)
    assert count_members(many, max_members=10_000) == len(__import__("zipfile").ZipFile(io.BytesIO(many)).namelist())
    with pytest.raises(OCRError) as e:
        count_members(many, max_members=100)
    assert e.value.code == "document_too_complex"
    with pytest.raises(OCRError) as e:
        count_members(b"PK\x03\x04 no central directory", max_members=10)
    assert e.value.code == "invalid_document"


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("file:///etc/passwd", True),
        ("FILE://host/share/x", True),
        (" fi\tle:/etc/x", True),
        ("\\\\server\\share\\x.png", True),
        ("C:\\Users\\x.png", True),
        ("c:/x.png", True),
        ("http://127.0.0.1/x.png", False),
        ("//cdn.example.com/x.png", False),
        ("/static/logo.png", False),
        ("images/logo.png", False),
        ("data:image/png;base64,AAAA", False),
    ],
)
def test_local_file_references(url, local):
    from shared.markup import is_local_file_reference

    assert is_local_file_reference(url) is local
    assert is_local_file_reference("/etc/passwd", absolute_paths=True)


def test_html_references_links_stay_allowed_resources_never_local(hostile):
    allowed = [
        '<a href="file:///etc/passwd">a link is text</a>',
        '<img src="http://127.0.0.1:1/x.png"><iframe src="https://example.com/"></iframe>',
        '<script src="http://example.com/x.js"></script><script>fetch("file:///etc/passwd")</script>',
        '<img src="images/x.png" srcset="a.png 1x, https://e.com/b.png 2x">',
        '<svg><use href="#shape"/><image href="data:image/png;base64,AAAA"/></svg>',
    ]
    for body in allowed:
        _open(hostile.html(body), "ok.html")
    refused = [
        '<img src="file:///etc/passwd">',
        '<img srcset="a.png 1x, file:///etc/x 2x">',
        '<object data="FILE:///etc/x"></object>',
        '<video poster="\\\\server\\share\\x.png"></video>',
        '<div style="background: url(&quot;file:///etc/x&quot;)">x</div>',
        '<div style="background: url(\\66 ile:///etc/x)">x</div>',
        '<svg><image href="relative.png"/></svg>',
        '<svg><image xlink:href="http://127.0.0.1:1/x.png"/></svg>',
    ]
    for body in refused:
        assert _refusal(hostile.html(body), "bad.html").code == "unsafe_document", body
    assert _refusal(hostile.html("x", head='<base href="file:///etc/">'), "b.html").code == "unsafe_document"
    refresh = '<meta http-equiv="refresh" content="0; url=file:///etc/passwd">'
    assert _refusal(hostile.html("x", head=refresh), "m.html").code == "unsafe_document"


def test_html_nesting_is_estimated_as_html_builds_it():
    sloppy = b"<!doctype html><html><body>" + b"<p>para" * 2000 + b"<ul>" + b"<li>item" * 2000 + b"</ul>"
    sloppy += b"<table>" + b"<tr><td>cell" * 2000 + b"</table><p>x<br><img src=a.png><hr></body></html>"
    _open(sloppy, "sloppy.html")  # unclosed p/li/td are siblings, not 6000 levels
    assert _refusal(b"<!doctype html><html><body>" + b"<div>" * 300, "d.html").code == "document_too_complex"
    assert _refusal(b"<!doctype html><html><body>" + b"<b>" * 300, "b.html").code == "document_too_complex"


def test_xml_entities_are_refused_in_any_encoding_and_across_chunk_boundaries():
    from shared.markup import EntityScan, MarkupTally, XmlInspector

    declaration = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE r [<!ENTITY e "x">]><r>&e;</r>'
    for data in (declaration.encode("utf-16"), declaration.replace("UTF-16", "UTF-8").encode()):
        inspector = XmlInspector("part.xml", MarkupTally(max_depth=10, max_elements=10))
        with pytest.raises(OCRError) as e:
            for i in range(0, len(data), 7):  # 7-byte chunks: every marker is split somewhere
                inspector.feed(data[i : i + 7])
            inspector.close()
        assert e.value.code == "unsafe_document"
    scan = EntityScan("x")
    scan.feed(b"garbage <!EN")
    with pytest.raises(OCRError):
        scan.feed(b"TITY y 'z'>")  # a recovering parser would read past the garbage; the scan does too


def test_xml_that_a_strict_parser_rejects_is_still_counted_and_checked():
    from shared.markup import MarkupTally, XmlInspector

    tally = MarkupTally(max_depth=300, max_elements=1000)
    inspector = XmlInspector("part.xml", tally)
    inspector.feed(b"<root><a>&undefined;</a>" + b"<b/>" * 500)
    inspector.close()  # syntax error after <a>: the rest read by the tolerant tokenizer
    assert tally.elements >= 500
    tally = MarkupTally(max_depth=300, max_elements=1000)
    inspector = XmlInspector("part.xml", tally)
    with pytest.raises(OCRError) as e:
        inspector.feed(b"<root>&broken;<img src='file:///etc/passwd'/></root>")
        inspector.close()
    assert e.value.code == "unsafe_document"


def test_worksheet_cells_follow_cell_references_and_shared_strings_count(hostile):
    sparse = hostile.xlsx('<row r="1"><c r="A1"><v>1</v></c></row><row r="400"><c r="Z400"><v>2</v></c></row>')
    err = _refusal(sparse, "s.xlsx", max_table_cells=10_000)  # 400 rows x 26 columns, two cells present
    assert "400 rows x 26 columns" in err.message
    _open(sparse, "s.xlsx", max_table_cells=10_400)
    strings = hostile.xlsx('<row r="1"><c r="A1" t="s"><v>0</v></c></row>', shared_strings="<si><t>s</t></si>" * 50)
    assert _refusal(strings, "s.xlsx", max_table_cells=20).accepted == {"max_table_cells": 20}


def test_csv_is_measured_with_the_delimiter_mineru_would_choose():
    semicolons = b"a;b;c\n" + b"1;2;3\n" * 99  # 100 rows x 3 columns
    _open(semicolons, "t.csv", max_table_cells=300)
    assert "100 rows x 3 columns" in _refusal(semicolons, "t.csv", max_table_cells=299).message
    directive = b"sep=|\na|b\n1|2\n"
    _open(directive, "t.csv", max_table_cells=4)
    assert _refusal(b'a,b\n"unterminated,1\n', "t.csv").code == "invalid_document"
