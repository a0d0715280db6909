"""Document intake: type sniffing from bytes, limits, page selection, rasterisation, hostile files."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from shared import samples
from shared.documents import DocumentLimits, open_document, render_pages, sniff_media_type
from shared.errors import OCRError
from shared.pages import parse_page_range


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
    (page,) = list(render_pages(doc))
    assert page.image.size == (120, 80) and page.image.mode == "RGB"


def test_pdf_pages_render_at_the_requested_dpi_in_range_order():
    images, _ = samples.numbered_pages(4)
    data = samples.multi_page_pdf(images, dpi=150)
    doc = open_document(data, page_range="2-3", dpi=72)
    assert doc.media_type == "application/pdf" and doc.page_count == 4 and doc.page_indices == [1, 2]
    pages = list(render_pages(doc))
    assert [p.index for p in pages] == [1, 2]
    w_pt = images[0].width * 72 / 150  # page size in points
    assert abs(pages[0].image.width - w_pt) <= 1  # 72 dpi: one pixel per point
    assert pages[0].dpi == 72


def test_multi_frame_tiff_frames_are_pages():
    images, _ = samples.numbered_pages(3)
    doc = open_document(samples.multi_frame_tiff(images))
    assert doc.page_count == 3
    assert [p.index for p in render_pages(doc)] == [0, 1, 2]


def test_transparent_png_is_flattened_on_white():
    image = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    (page,) = list(render_pages(open_document(samples.encode(image))))
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
        assert code_of(lambda b=broken: list(render_pages(open_document(b)))) == "invalid_document"
    png = samples.encode(Image.new("RGB", (64, 64), "white"))
    assert code_of(open_document, png, accepted=frozenset({"application/pdf"})) == "unsupported_media_type"


def test_encrypted_pdf_is_named_as_such():
    pypdf = pytest.importorskip("pypdf")
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
        assert [(p.index, p.size) for p in sized] == [(p.index, p.image.size) for p in render_pages(doc)]


def test_pages_without_text_layer_are_the_scanned_ones():
    from shared.textlayer import pages_without_text
    from shared.textpdf import article_pages

    digital = article_pages([["Born digital text."], ["Second page text."]], titles=["One", "Two"])
    assert pages_without_text(digital, "application/pdf", [0, 1]) == []
    scan = samples.multi_page_pdf(samples.numbered_pages(2)[0])  # pages that are pictures of text
    assert pages_without_text(scan, "application/pdf", [0, 1]) == [0, 1]
    assert pages_without_text(b"", "image/png", [0]) == [0]
    assert pages_without_text(b"", "text/html", [0]) == []
