"""Structured documents, good and hostile, made on the spot: small on disk, hostile when parsed.

Zip bombs by size, by ratio and by member count, nested archives, entity expansion and external entities, deep
nesting, giant grids and cells, local-file references in HTML/EPUB/OOXML, SVG that points at a file of the server,
a 30000 x 30000 image inside a DOCX, damaged members... Each hostile maker returns a :class:`Case` with the answer
the service owes it (status and error code). Bombs are written through :mod:`zipfile`'s streaming writer, so a
300 MB member costs ~0.3 s and ~300 kB, never 300 MB of memory. Used by the unit tests (``open_document``), the
end-to-end corpus over HTTP and ``benchmarks/load.py --mixed``.
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import io
import struct
import threading
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
R_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
SHEET_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
MiB = 1024 * 1024


@dataclass(frozen=True)
class Case:
    """One document and the answer the service owes it."""

    id: str
    data: bytes = field(repr=False)
    filename: str
    status: int
    code: str
    fields: dict[str, str] = field(default_factory=dict)


# -- packages --------------------------------------------------------------------------------------------------


def docx(paragraphs: list[str], *, title: str | None = None) -> bytes:
    """A real DOCX (python-docx) with a heading and paragraphs."""
    import docx as python_docx

    document = python_docx.Document()
    if title:
        document.add_heading(title, level=1)
    for text in paragraphs:
        document.add_paragraph(text)
    buf = io.BytesIO()
    document.save(buf)
    return buf.getvalue()


def pptx(lines: list[str]) -> bytes:
    """A real PPTX (python-pptx, installed with MinerU) with one text slide."""
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[5])
    slide.shapes.title.text = lines[0]
    box = slide.shapes.add_textbox(Inches(1), Inches(2), Inches(8), Inches(3))
    box.text_frame.text = "\n".join(lines[1:])
    buf = io.BytesIO()
    deck.save(buf)
    return buf.getvalue()


def rewrite(
    data: bytes, replace: dict[str, bytes | str] | None = None, add: dict[str, bytes | str] | None = None
) -> bytes:
    """A copy of ZIP ``data`` with members replaced and added (deflated)."""
    replace, add = replace or {}, add or {}
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            body = replace.get(info.filename)
            target.writestr(info.filename, body if body is not None else source.read(info.filename))
        for name, body in add.items():
            target.writestr(name, body)
    return out.getvalue()


def xlsx(
    sheet_rows: str, *, shared_strings: str | None = None, stream: tuple[bytes, bytes, bytes, int] | None = None
) -> bytes:
    """A minimal XLSX package around one worksheet's ``<sheetData>`` content.

    Args:
        sheet_rows: The rows (``<row>...</row>``...) of sheet 1.
        shared_strings: The ``<si>`` elements of ``xl/sharedStrings.xml``, when there is one.
        stream: (head, repeated chunk, tail, times): write sheet 1 as ``head + chunk * times + tail`` without
            building it in memory (for sheets of millions of cells).
    """
    out = io.BytesIO()
    main = "application/vnd.openxmlformats-officedocument.spreadsheetml"
    overrides = [("/xl/workbook.xml", f"{main}.sheet.main+xml"), ("/xl/worksheets/sheet1.xml", f"{main}.worksheet+xml")]
    rels = [("worksheet", "worksheets/sheet1.xml")]
    if shared_strings is not None:
        overrides.append(("/xl/sharedStrings.xml", f"{main}.sharedStrings+xml"))
        rels.append(("sharedStrings", "sharedStrings.xml"))
    content_types = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        + "".join(f'<Override PartName="{part}" ContentType="{kind}"/>' for part, kind in overrides)
        + "</Types>"
    )
    workbook_rels = (
        f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{PKG_RELS}">'
        + "".join(
            f'<Relationship Id="rId{i + 1}" Type="{R_NS}/{kind}" Target="{target}"/>'
            for i, (kind, target) in enumerate(rels)
        )
        + "</Relationships>"
    )
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", content_types)
        z.writestr(
            "_rels/.rels",
            f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{PKG_RELS}"><Relationship Id="rId1" '
            'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
            'Target="xl/workbook.xml"/></Relationships>',
        )
        z.writestr(
            "xl/workbook.xml",
            f'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="{SHEET_NS}" xmlns:r="{R_NS}"><sheets>'
            '<sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>',
        )
        z.writestr("xl/_rels/workbook.xml.rels", workbook_rels)
        if stream is None:
            z.writestr(
                "xl/worksheets/sheet1.xml",
                f'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="{SHEET_NS}"><sheetData>{sheet_rows}'
                "</sheetData></worksheet>",
            )
        else:
            head, chunk, tail, times = stream
            with z.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as f:
                f.write(head)
                for _ in range(times):
                    f.write(chunk)
                f.write(tail)
        if shared_strings is not None:
            z.writestr(
                "xl/sharedStrings.xml",
                f'<?xml version="1.0" encoding="UTF-8"?><sst xmlns="{SHEET_NS}">{shared_strings}</sst>',
            )
    return out.getvalue()


def table_xlsx(rows: list[list[str]]) -> bytes:
    """A good XLSX: ``rows`` as inline-string cells of sheet 1."""
    body = "".join(
        f'<row r="{r + 1}">'
        + "".join(
            f'<c r="{_column(c + 1)}{r + 1}" t="inlineStr"><is><t>{text}</t></is></c>' for c, text in enumerate(row)
        )
        + "</row>"
        for r, row in enumerate(rows)
    )
    return xlsx(body)


def epub(chapters: dict[str, str], *, manifest_extra: str = "", title: str = "Test book") -> bytes:
    """An EPUB 3 with XHTML ``chapters`` (name -> body markup) in reading order."""
    items = "".join(
        f'<item id="c{i}" href="{name}" media-type="application/xhtml+xml"/>' for i, name in enumerate(chapters)
    )
    spine = "".join(f'<itemref idref="c{i}"/>' for i in range(len(chapters)))
    nav = "".join(f'<li><a href="{name}">{name}</a></li>' for name in chapters)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(zipfile.ZipInfo("mimetype"), "application/epub+zip")  # stored, first, as EPUB wants
        z.writestr(
            "META-INF/container.xml",
            '<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
            '<rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
            "</rootfiles></container>",
        )
        z.writestr(
            "OEBPS/content.opf",
            '<?xml version="1.0" encoding="UTF-8"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0" '
            'unique-identifier="id"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/">'
            f'<dc:identifier id="id">urn:uuid:0000</dc:identifier><dc:title>{title}</dc:title><dc:language>en'
            "</dc:language></metadata><manifest>"
            '<item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>'
            f"{items}{manifest_extra}</manifest><spine>{spine}</spine></package>",
        )
        z.writestr(
            "OEBPS/nav.xhtml",
            '<?xml version="1.0" encoding="UTF-8"?><html xmlns="http://www.w3.org/1999/xhtml" '
            'xmlns:epub="http://www.idpf.org/2007/ops"><head><title>nav</title></head><body>'
            f'<nav epub:type="toc"><ol>{nav}</ol></nav></body></html>',
        )
        for name, body in chapters.items():
            z.writestr(
                f"OEBPS/{name}",
                '<?xml version="1.0" encoding="UTF-8"?><html xmlns="http://www.w3.org/1999/xhtml">'
                f"<head><title>{name}</title></head><body>{body}</body></html>",
            )
    return out.getvalue()


def html(body: str, *, head: str = "") -> bytes:
    return f"<!DOCTYPE html><html><head><title>t</title>{head}</head><body>{body}</body></html>".encode()


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` (the pixels are not there: only the claim matters)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


# -- hostile makers ------------------------------------------------------------------------------------------


def streamed_member(
    base: bytes, name: str, chunk: bytes, times: int, *, prefix: bytes = b"", suffix: bytes = b""
) -> bytes:
    """``base`` with member ``name`` replaced by ``prefix + chunk * times + suffix``, written as a stream."""
    source = zipfile.ZipFile(io.BytesIO(base))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as target:
        for info in source.infolist():
            if info.filename != name:
                target.writestr(info.filename, source.read(info.filename))
        with target.open(name, "w", force_zip64=True) as f:
            f.write(prefix)
            for _ in range(times):
                f.write(chunk)
            f.write(suffix)
    return out.getvalue()


def lying_sizes(data: bytes, name: str, *, declared: int) -> bytes:
    """``data`` with member ``name`` declaring ``declared`` unpacked bytes in both its headers (it holds more)."""
    source = zipfile.ZipFile(io.BytesIO(data))
    info = source.getinfo(name)
    out = bytearray(data)
    struct.pack_into("<L", out, info.header_offset + 22, declared)
    position = 0
    while True:
        position = data.find(b"PK\x01\x02", position)
        if position < 0:
            break
        name_len = struct.unpack("<H", data[position + 28 : position + 30])[0]
        if data[position + 46 : position + 46 + name_len] == name.encode():
            struct.pack_into("<L", out, position + 24, declared)
            break
        position += 4
    return bytes(out)


def flag_encrypted(data: bytes, name: str) -> bytes:
    """``data`` with member ``name`` flagged as encrypted (ZipCrypto) in both headers."""
    out = bytearray(data)
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo(name)
    flags = struct.unpack("<H", data[info.header_offset + 6 : info.header_offset + 8])[0]
    struct.pack_into("<H", out, info.header_offset + 6, flags | 1)
    position = 0
    while (position := data.find(b"PK\x01\x02", position)) >= 0:
        name_len = struct.unpack("<H", data[position + 28 : position + 30])[0]
        if data[position + 46 : position + 46 + name_len] == name.encode():
            struct.pack_into("<H", out, position + 8, flags | 1)
            break
        position += 4
    return bytes(out)


def many_members(base: bytes, count: int, *, directory: str = "word/media") -> bytes:
    """``base`` plus ``count`` tiny stored members."""
    source = zipfile.ZipFile(io.BytesIO(base))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as target:
        for info in source.infolist():
            target.writestr(info, source.read(info.filename))
        for i in range(count):
            target.writestr(f"{directory}/m{i}.bin", b"x")
    return out.getvalue()


def zip_of(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, body in members.items():
            z.writestr(name, body)
    return out.getvalue()


def word_document(body: str, *, doctype: str = "") -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>{doctype}<w:document xmlns:w="{W_NS}" '
        f'xmlns:r="{R_NS}"><w:body>{body}</w:body></w:document>'
    )


def svg_pointing_at(path: str) -> bytes:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="64" height="64">'
        f'<rect width="64" height="64" fill="blue"/><image xlink:href="{path}" width="64" height="64"/></svg>'
    ).encode()


def corpus(*, canary_path: str, canary_url: str) -> list[Case]:
    """The hostile structured documents, each with the 4xx the service owes it.

    Args:
        canary_path: A file of the test machine no answer may reveal (named by file: and path references).
        canary_url: A URL on a local recording server no component may fetch.
    """
    base = docx(["A perfectly ordinary paragraph."], title="Ordinary")
    xml_doc = "word/document.xml"
    laughs = (
        '<!DOCTYPE w:document [<!ENTITY a "aaaaaaaaaa">'
        + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(9))
        + "]>"
    )
    inner_bomb = streamed_member(zip_of({"a.txt": b"a"}), "payload.xml", b" " * MiB, 300)
    nested_twice = zip_of({"inner.zip": zip_of({"innermost.zip": zip_of({"x.txt": b"deep"})})})
    svg_b64 = base64.b64encode(svg_pointing_at(canary_path)).decode()
    cases = [
        # ZIP bombs and archive shapes
        Case(
            "docx-bomb-300mb", streamed_member(base, xml_doc, b" " * MiB, 300), "bomb.docx", 413, "document_too_large"
        ),
        Case(
            "docx-bomb-lying-sizes",
            lying_sizes(streamed_member(base, xml_doc, b" " * MiB, 300), xml_doc, declared=4096),
            "liar.docx",
            422,
            "invalid_document",
        ),
        Case(
            "xlsx-ratio-bomb-50mb",
            streamed_member(table_xlsx([["a"]]), "xl/media/blob.bin", b"\0" * MiB, 50),
            "ratio.xlsx",
            413,
            "document_too_complex",
        ),
        Case("docx-20000-members", many_members(base, 20_000), "members.docx", 413, "document_too_complex"),
        Case(
            "epub-20000-members",
            many_members(epub({"c1.xhtml": "<p>x</p>"}), 20_000, directory="OEBPS/x"),
            "m.epub",
            413,
            "document_too_complex",
        ),
        Case(
            "docx-nested-zip-twice",
            rewrite(base, add={"word/embeddings/pkg.zip": nested_twice}),
            "nest.docx",
            413,
            "document_too_complex",
        ),
        Case(
            "docx-nested-zip-bomb",
            rewrite(base, add={"word/embeddings/bomb.zip": inner_bomb}),
            "nb.docx",
            413,
            "document_too_large",
        ),
        Case("docx-encrypted-member", flag_encrypted(base, xml_doc), "enc.docx", 422, "encrypted_document"),
        Case(
            "docx-corrupt-deflate",
            _corrupt_member(base, xml_doc),
            "corrupt.docx",
            422,
            "invalid_document",
        ),
        # XML: entities and nesting
        Case(
            "docx-billion-laughs",
            rewrite(base, {xml_doc: word_document("<w:p><w:r><w:t>&j;</w:t></w:r></w:p>", doctype=laughs)}),
            "laughs.docx",
            422,
            "unsafe_document",
        ),
        Case(
            "docx-xxe-file",
            rewrite(
                base,
                {
                    xml_doc: word_document(
                        "<w:p><w:r><w:t>&x;</w:t></w:r></w:p>",
                        doctype=f'<!DOCTYPE w:document [<!ENTITY x SYSTEM "file://{canary_path}">]>',
                    )
                },
            ),
            "xxe.docx",
            422,
            "unsafe_document",
        ),
        Case(
            "docx-xxe-http",
            rewrite(
                base,
                {
                    xml_doc: word_document(
                        "<w:p><w:r><w:t>&x;</w:t></w:r></w:p>",
                        doctype=f'<!DOCTYPE w:document [<!ENTITY x SYSTEM "{canary_url}/xxe">]>',
                    )
                },
            ),
            "xxe-http.docx",
            422,
            "unsafe_document",
        ),
        Case(
            "docx-external-dtd",
            rewrite(
                base, {xml_doc: word_document("<w:p/>", doctype=f'<!DOCTYPE w:document SYSTEM "file://{canary_path}">')}
            ),
            "dtd.docx",
            422,
            "unsafe_document",
        ),
        Case(
            "pptx-parameter-entity",
            _pptx_with_entity(canary_url),
            "param.pptx",
            422,
            "unsafe_document",
        ),
        Case(
            "xlsx-entity-in-shared-strings",
            _xlsx_entity(),
            "ent.xlsx",
            422,
            "unsafe_document",
        ),
        Case(
            "docx-3000-deep-tables",
            rewrite(
                base,
                {xml_doc: word_document("<w:tbl><w:tr><w:tc>" * 3000 + "<w:p/>" + "</w:tc></w:tr></w:tbl>" * 3000)},
            ),
            "deep.docx",
            413,
            "document_too_complex",
        ),
        Case(
            "docx-300k-paragraphs",
            streamed_member(
                base,
                xml_doc,
                b"<w:p><w:r><w:t>x</w:t></w:r></w:p>" * 1000,
                300,
                prefix=word_document("").split("<w:body>")[0].encode() + b"<w:body>",
                suffix=b"</w:body></w:document>",
            ),
            "paras.docx",
            413,
            "document_too_complex",
        ),
        # spreadsheets and CSV
        Case(
            "xlsx-cell-at-xfd1048576",
            xlsx('<row r="1048576"><c r="XFD1048576"><v>1</v></c></row>'),
            "far.xlsx",
            413,
            "document_too_complex",
        ),
        Case(
            "xlsx-million-inline-cells",
            xlsx(
                "",
                stream=(
                    f'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="{SHEET_NS}"><sheetData>'.encode(),
                    b"<row>" + b'<c t="inlineStr"><is><t>x</t></is></c>' * 100 + b"</row>",
                    b"</sheetData></worksheet>",
                    10_000,
                ),
            ),
            "million.xlsx",
            413,
            "document_too_complex",
        ),
        Case(
            "xlsx-100k-char-cell",
            xlsx(f'<row r="1"><c r="A1" t="inlineStr"><is><t>{"y" * 100_000}</t></is></c></row>'),
            "cell.xlsx",
            413,
            "document_too_complex",
        ),
        Case("csv-3-million-rows", b"a\n" * 3_000_000, "rows.csv", 413, "document_too_complex"),
        Case("csv-200k-columns", b",".join([b"c"] * 200_000) + b"\n", "wide.csv", 413, "document_too_complex"),
        Case("csv-200k-char-field", b'h1,h2\n"' + b"z" * 200_000 + b'",2\n', "field.csv", 413, "document_too_complex"),
        Case("csv-unterminated-quote", b'h1,h2\n1,"never closed\n2,3\n', "quote.csv", 422, "invalid_document"),
        # HTML
        Case(
            "html-file-refs-and-scripts",
            html(
                f'<p>hello</p><img src="file://{canary_path}"><iframe src="{canary_url}/frame"></iframe>'
                f'<script src="{canary_url}/s.js"></script><script>fetch("{canary_url}/js")</script>'
            ),
            "refs.html",
            422,
            "unsafe_document",
        ),
        Case(
            "html-css-import-file",
            html("<p>x</p>", head=f'<style>@import "file://{canary_path}";</style>'),
            "css.html",
            422,
            "unsafe_document",
        ),
        Case(
            "html-svg-reads-local-png",
            html(f'<img src="data:image/svg+xml;base64,{svg_b64}">'),
            "svg.html",
            422,
            "unsafe_document",
        ),
        Case(
            "html-inline-svg-local-image",
            html(f'<svg><image href="{canary_path}"/></svg>'),
            "isvg.html",
            422,
            "unsafe_document",
        ),
        Case(
            "html-100k-deep-divs",
            html("<div>" * 100_000 + "x" + "</div>" * 100_000),
            "deep.html",
            413,
            "document_too_complex",
        ),
        Case("html-300k-elements", html("<span>x</span>" * 300_000), "many.html", 413, "document_too_complex"),
        Case("html-12mb", html("<p>" + "w" * (12 * MiB) + "</p>"), "big.html", 413, "document_too_large"),
        # EPUB
        Case(
            "epub-remote-and-local-resources",
            epub(
                {"c1.xhtml": f'<p>chapter</p><img src="{canary_url}/cover.png"/><img src="file://{canary_path}"/>'},
                manifest_extra=f'<item id="r" href="{canary_url}/remote.css" media-type="text/css"/>',
            ),
            "remote.epub",
            422,
            "unsafe_document",
        ),
        Case(
            "epub-manifest-file-url",
            epub(
                {"c1.xhtml": "<p>x</p>"},
                manifest_extra=f'<item id="f" href="file://{canary_path}" media-type="text/css"/>',
            ),
            "manifest.epub",
            422,
            "unsafe_document",
        ),
        Case(
            "epub-chapter-entities",
            _epub_with_raw_chapter(
                '<?xml version="1.0"?><!DOCTYPE html [<!ENTITY b "bbbbbbbbbbbbbbbb">]>'
                '<html xmlns="http://www.w3.org/1999/xhtml"><body><p>&b;&b;</p></body></html>'
            ),
            "ent.epub",
            422,
            "unsafe_document",
        ),
        # OOXML references and embedded media
        Case(
            "docx-template-from-local-file",
            _with_part(
                base, "word/_rels/settings.xml.rels", _rels(("rId9", "attachedTemplate", f"file://{canary_path}"))
            ),
            "template.docx",
            422,
            "unsafe_document",
        ),
        Case(
            "docx-30000x30000-image",
            rewrite(base, add={"word/media/huge.png": png_header(30_000, 30_000)}),
            "huge.docx",
            413,
            "too_many_pixels",
        ),
        Case(
            "pptx-svg-reads-local-file",
            rewrite(pptx(["Slide", "body"]), add={"ppt/media/image9.svg": svg_pointing_at(canary_path)}),
            "svg.pptx",
            422,
            "unsafe_document",
        ),
    ]
    return cases


def parser_failures() -> list[Case]:
    """Documents every router check lets through that MinerU itself cannot read: its failure must be typed."""
    base = docx(["fine"])
    return [
        Case(
            "docx-document-xml-not-xml",
            rewrite(base, {"word/document.xml": b"<w:document xmlns:w='" + W_NS.encode() + b"'><w:body><w:p>"}),
            "broken.docx",
            422,
            "invalid_document",
        ),
        Case(
            "xlsx-without-workbook-part",
            zip_of({"[Content_Types].xml": b"<Types/>", "xl/workbook.xml": b"<workbook/>"}),
            "empty.xlsx",
            422,
            "invalid_document",
        ),
    ]


def good_documents() -> list[tuple[str, bytes, str]]:
    """Ordinary structured documents with a sentence each returns: (filename, bytes, text that must come back)."""
    return [
        ("note.docx", docx(["Quarterly revenue grew by twelve percent."], title="Release note"), "twelve percent"),
        ("page.html", html("<h1>Harbour log</h1><p>Ships arrived at noon.</p>"), "Ships arrived at noon"),
        ("table.csv", b"city,population\nOslo,709000\nBergen,291000\n", "Bergen"),
        ("sheet.xlsx", table_xlsx([["city", "population"], ["Oslo", "709000"], ["Bergen", "291000"]]), "Bergen"),
        (
            "book.epub",
            epub({"c1.xhtml": "<h1>Chapter one</h1><p>The lighthouse keeper lit the lamp.</p>"}),
            "lighthouse keeper",
        ),
    ]


def remote_reference_documents(url: str) -> list[tuple[str, bytes, str]]:
    """Documents full of references to ``url`` (images, frames, scripts, styles, a linked DOCX picture), each
    with text that must come back: (name, bytes, text)."""
    page = html(
        f'<h1>Remote page</h1><p>Body text stays.</p><img src="{url}/img.png" srcset="{url}/a.png 1x">'
        f'<iframe src="{url}/frame"></iframe><script src="{url}/s.js"></script><object data="{url}/o"></object>'
        f'<video poster="{url}/poster.png"></video><div style="background:url({url}/bg.png)">styled</div>',
        head=f'<link rel="stylesheet" href="{url}/style.css"><style>@import "{url}/imp.css";</style>'
        f'<base href="{url}/base/"><meta http-equiv="refresh" content="0; url={url}/refresh">',
    )
    book = epub(
        {
            "c1.xhtml": f'<h1>Remote book</h1><p>Chapter text stays.</p><img src="{url}/cover.png"/>'
            f'<link rel="stylesheet" href="{url}/book.css"/>'
        },
        manifest_extra=f'<item id="r" href="{url}/remote.png" media-type="image/png"/>',
    )
    word = with_external_picture(docx(["Linked picture document."]), f"{url}/linked.png")
    deck = with_linked_slide_picture(pptx(["Linked slide", "Slide text stays."]), f"{url}/slide.png")
    return [
        ("remote.html", page, "Body text stays."),
        ("remote.epub", book, "Chapter text stays."),
        ("linked.docx", word, "Linked picture document."),
        ("linked.pptx", deck, "Slide text stays."),
    ]


def with_linked_slide_picture(data: bytes, target: str) -> bytes:
    """``data`` (a PPTX) with a picture on slide 1 *linked* from ``target`` and a text hyperlink to it."""
    source = zipfile.ZipFile(io.BytesIO(data))
    rels = (
        source.read("ppt/slides/_rels/slide1.xml.rels")
        .decode()
        .replace(
            "</Relationships>",
            f'<Relationship Id="rIdRemote" Type="{R_NS}/image" Target="{target}" TargetMode="External"/>'
            f'<Relationship Id="rIdLink" Type="{R_NS}/hyperlink" Target="{target}" TargetMode="External"/>'
            "</Relationships>",
        )
    )
    picture = (
        '<p:pic><p:nvPicPr><p:cNvPr id="9" name="remote"><a:hlinkClick r:id="rIdLink"/></p:cNvPr><p:cNvPicPr/>'
        '<p:nvPr/></p:nvPicPr><p:blipFill><a:blip r:link="rIdRemote"/><a:stretch><a:fillRect/></a:stretch>'
        '</p:blipFill><p:spPr><a:xfrm><a:off x="0" y="0"/><a:ext cx="914400" cy="914400"/></a:xfrm>'
        '<a:prstGeom prst="rect"><a:avLst/></a:prstGeom></p:spPr></p:pic>'
    )
    slide = source.read("ppt/slides/slide1.xml").decode().replace("</p:spTree>", picture + "</p:spTree>", 1)
    return rewrite(data, {"ppt/slides/_rels/slide1.xml.rels": rels, "ppt/slides/slide1.xml": slide})


def with_external_picture(data: bytes, target: str) -> bytes:
    """``data`` (a DOCX) with a picture *linked* (not embedded) from ``target`` and a hyperlink to it."""
    source = zipfile.ZipFile(io.BytesIO(data))
    rels = source.read("word/_rels/document.xml.rels").decode()
    rels = rels.replace(
        "</Relationships>",
        f'<Relationship Id="rIdRemote" Type="{R_NS}/image" Target="{target}" TargetMode="External"/>'
        f'<Relationship Id="rIdLink" Type="{R_NS}/hyperlink" Target="{target}" TargetMode="External"/>'
        "</Relationships>",
    )
    document = source.read("word/document.xml").decode()
    picture = (
        '<w:p><w:r><w:drawing><wp:inline xmlns:wp="http://schemas.openxmlformats.org/drawingml/2006/'
        'wordprocessingDrawing"><wp:extent cx="914400" cy="914400"/><wp:docPr id="9" name="remote"/>'
        '<a:graphic xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main"><a:graphicData '
        'uri="http://schemas.openxmlformats.org/drawingml/2006/picture"><pic:pic xmlns:pic="http://schemas.'
        'openxmlformats.org/drawingml/2006/picture"><pic:nvPicPr><pic:cNvPr id="9" name="remote"/><pic:cNvPicPr/>'
        '</pic:nvPicPr><pic:blipFill><a:blip r:link="rIdRemote"/></pic:blipFill><pic:spPr/></pic:pic>'
        "</a:graphicData></a:graphic></wp:inline></w:drawing></w:r></w:p>"
        '<w:p><w:hyperlink r:id="rIdLink"><w:r><w:t>a link</w:t></w:r></w:hyperlink></w:p>'
    )
    document = document.replace("<w:sectPr", picture + "<w:sectPr", 1)
    return rewrite(data, {"word/_rels/document.xml.rels": rels, "word/document.xml": document})


def _column(index: int) -> str:
    letters = ""
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _rels(*relationships: tuple[str, str, str]) -> str:
    body = "".join(
        f'<Relationship Id="{rid}" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/{kind}" '
        f'Target="{target}" TargetMode="External"/>'
        for rid, kind, target in relationships
    )
    return f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{PKG_RELS}">{body}</Relationships>'


def _with_part(data: bytes, name: str, body: str) -> bytes:
    """``data`` with part ``name`` set to ``body``, replaced when it exists, added when not."""
    if name in zipfile.ZipFile(io.BytesIO(data)).namelist():
        return rewrite(data, replace={name: body})
    return rewrite(data, add={name: body})


def _corrupt_member(data: bytes, name: str) -> bytes:
    """``data`` with the compressed bytes of ``name`` overwritten by garbage (headers intact)."""
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo(name)
    out = bytearray(data)
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len
    for i in range(start, start + min(info.compress_size, 64)):
        out[i] = 0xFF
    return bytes(out)


def _pptx_with_entity(url: str) -> bytes:
    deck = pptx(["Title", "text"])
    names = zipfile.ZipFile(io.BytesIO(deck)).namelist()
    slide = next(n for n in names if n.startswith("ppt/slides/slide") and n.endswith(".xml"))
    original = zipfile.ZipFile(io.BytesIO(deck)).read(slide).decode()
    prolog_end = original.index("?>") + 2 if original.startswith("<?xml") else 0
    hostile = (
        original[:prolog_end]
        + f'<!DOCTYPE p:sld [<!ENTITY % remote SYSTEM "{url}/param.dtd"> %remote;]>'
        + original[prolog_end:]
    )
    return rewrite(deck, {slide: hostile})


def _xlsx_entity() -> bytes:
    body = xlsx('<row r="1"><c r="A1" t="s"><v>0</v></c></row>', shared_strings="<si><t>&e;</t></si>")
    source = zipfile.ZipFile(io.BytesIO(body))
    strings = source.read("xl/sharedStrings.xml").decode()
    strings = strings.replace("?>", '?><!DOCTYPE sst [<!ENTITY e "eeeeeeeeeeeeeeeeeeee">]>', 1)
    return rewrite(body, {"xl/sharedStrings.xml": strings})


def _epub_with_raw_chapter(markup: str) -> bytes:
    book = epub({"c1.xhtml": "<p>placeholder</p>"})
    return rewrite(book, {"OEBPS/c1.xhtml": markup})


@contextlib.contextmanager
def recording_server() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server standing in for the URLs hostile documents name: yields its base URL and the list of
    paths asked of it (GET or POST), which must stay empty when nothing in the service fetches them. It answers
    a tiny PNG, so a component that did fetch would get something it could use."""
    hits: list[str] = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            hits.append(self.path)
            self.send_response(200)
            self.send_header("content-type", "image/png")
            self.end_headers()
            self.wfile.write(png_header(4, 4))

        do_POST = do_GET  # noqa: N815

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()
