"""Container formats inspected before parsing: ZIP packages (DOCX, PPTX, XLSX, EPUB), HTML and CSV.

A 1.5 MB DOCX can hold a 1.5 GB ``document.xml``; a ZIP can list a million members, hold another ZIP, or carry a
30000 x 30000 image. Parsers find out by doing the work. This module finds out first, in the router, with its own
work bounded by the limits it checks:

- the ZIP's member count is read from the central directory by walking it (stopping past the limit) before
  :mod:`zipfile` builds an object per member;
- declared sizes and compression ratios are checked before anything is inflated; then every member is *streamed*
  (64 KiB at a time, never held whole) with the actual unpacked bytes counted against the same limits, so a member
  that lies about its size is cut off at the budget, not inflated to find out;
- XML and XHTML members go through :mod:`shared.markup` (no entities, element and depth counts, no local-file
  references), worksheets and shared strings through :mod:`shared.tabular`, images through Pillow's header reader
  (the pixel limits of page images apply to embedded ones), and a ZIP inside the ZIP is inspected the same way up
  to ``max_archive_nesting`` levels, its members counted against the same totals.

Every refusal is an :class:`~shared.errors.OCRError` whose ``accepted`` names the limit (``router.limits.*``).
Pure: no Ray, no parser library; standard library and Pillow's header reader only.
"""

from __future__ import annotations

import io
import re
import struct
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from PIL import Image

from shared.errors import OCRError
from shared.markup import EntityScan, HtmlInspector, MarkupTally, ReferenceRules, XmlInspector, too_complex
from shared.schema import ErrorCode
from shared.tabular import CellTally, SharedStringsCounter, SheetCounter, inspect_csv

if TYPE_CHECKING:
    from shared.documents import DocumentLimits

CHUNK = 64 * 1024
RATIO_FLOOR = 1024 * 1024
"""The compression ratio is judged only for members that unpack to more than this (a 10 kB file of spaces may
compress 500x; that is no bomb)."""
IMAGE_HEAD = 1024 * 1024
"""Bytes of an embedded image kept to read its declared size (headers are at the start; JPEG's after EXIF)."""
_EOCD = b"PK\x05\x06"
_CENTRAL = b"PK\x01\x02"
_XML_NAMES = (".xml", ".rels", ".opf", ".ncx", ".svg", ".vml", ".smil", ".xsl")
_HTML_NAMES = (".xhtml", ".html", ".htm")
_SHEET = re.compile(r"^xl/(worksheets|chartsheets|dialogsheets)/[^/]+\.xml$", re.IGNORECASE)
_SHARED_STRINGS = re.compile(r"^xl/sharedstrings\.xml$", re.IGNORECASE)
_IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"II*\x00", b"MM\x00*", b"RIFF")


def too_large(message: str, **accepted: object) -> OCRError:
    return OCRError(ErrorCode.DOCUMENT_TOO_LARGE, message, accepted=accepted or None)


def invalid(message: str) -> OCRError:
    return OCRError(ErrorCode.INVALID_DOCUMENT, message)


@dataclass
class _Budget:
    """What the whole document (nested archives included) has used of its limits so far."""

    limits: DocumentLimits
    markup: MarkupTally
    cells: CellTally
    members: int = 0
    unpacked: int = 0

    @classmethod
    def of(cls, limits: DocumentLimits) -> _Budget:
        return cls(
            limits=limits,
            markup=MarkupTally(max_depth=limits.max_markup_depth, max_elements=limits.max_markup_elements),
            cells=CellTally(max_cells=limits.max_table_cells, max_cell_chars=limits.max_cell_chars),
        )

    def add_members(self, count: int, where: str) -> None:
        self.members += count
        if self.members > self.limits.max_archive_members:
            raise too_complex(
                f"{where} has more than {self.limits.max_archive_members} members; the limit is "
                f"max_archive_members={self.limits.max_archive_members}",
                max_archive_members=self.limits.max_archive_members,
            )

    def add_bytes(self, count: int, where: str) -> None:
        self.unpacked += count
        if self.unpacked > self.limits.max_unpacked_bytes:
            raise too_large(
                f"the document unpacks to more than {self.limits.max_unpacked_bytes} bytes ({where}); the limit is "
                f"max_unpacked_bytes={self.limits.max_unpacked_bytes}",
                max_unpacked_bytes=self.limits.max_unpacked_bytes,
            )


class _Consumer(Protocol):
    def feed(self, chunk: bytes) -> None: ...

    def close(self) -> None: ...


def inspect_zip(data: bytes, limits: DocumentLimits) -> None:
    """Every limit a ZIP package (DOCX, PPTX, XLSX, EPUB) is held to, checked by streaming its members.

    Args:
        data: The upload (already within ``max_bytes``).
        limits: The router's limits.

    Raises:
        OCRError: ``document_too_large`` (unpacked size), ``document_too_complex`` (members, ratio, nesting,
            markup, cells), ``unsafe_document`` (entities, local-file references), ``too_many_pixels`` (an
            embedded image), ``encrypted_document``, ``invalid_document`` (a damaged archive).
    """
    _inspect_archive(data, _Budget.of(limits), depth=0, where="the document")


def count_members(data: bytes, *, max_members: int, where: str = "the document") -> int:
    """Members listed in a ZIP's central directory, counted by walking it and stopping past ``max_members``.

    :mod:`zipfile` builds one object per entry of the central directory before anyone can count them; this walk
    keeps nothing, so a directory of a million entries costs a refusal, not a million objects.

    Raises:
        OCRError: ``document_too_complex`` past ``max_members``; ``invalid_document`` without a central directory.
    """
    end = data.rfind(_EOCD, max(0, len(data) - 65_557))
    if end < 0 or len(data) - end < 22:
        raise invalid(f"{where} is not a readable ZIP archive (no end of central directory)")
    _, _, _, _, _, cd_size, cd_offset, _ = struct.unpack("<4s4H2LH", data[end : end + 22])
    locator = end - 20
    if (cd_size == 0xFFFFFFFF or cd_offset == 0xFFFFFFFF) and data[locator : locator + 4] == b"PK\x06\x07":
        record = locator - 56  # the ZIP64 end record sits just before its locator, as zipfile reads it
        if record >= 0 and data[record : record + 4] == b"PK\x06\x06":
            cd_size = struct.unpack("<Q", data[record + 40 : record + 48])[0]
            end = record
    position = end - cd_size
    if position < 0:
        raise invalid(f"{where} is not a readable ZIP archive (central directory out of bounds)")
    count = 0
    while position + 46 <= end and data[position : position + 4] == _CENTRAL:
        name_len, extra_len, comment_len = struct.unpack("<3H", data[position + 28 : position + 34])
        position += 46 + name_len + extra_len + comment_len
        count += 1
        if count > max_members:
            raise too_complex(
                f"{where} lists more than {max_members} members; the limit is max_archive_members={max_members}",
                max_archive_members=max_members,
            )
    return count


def inspect_html(data: bytes, limits: DocumentLimits) -> None:
    """An HTML upload: its size, then its elements, nesting and references.

    Raises:
        OCRError: ``document_too_large`` past ``max_html_bytes``, ``document_too_complex``, ``unsafe_document``.
    """
    if len(data) > limits.max_html_bytes:
        raise too_large(
            f"the HTML is {len(data)} bytes; the limit is max_html_bytes={limits.max_html_bytes}",
            max_html_bytes=limits.max_html_bytes,
        )
    budget = _Budget.of(limits)
    inspector = HtmlInspector("the HTML", budget.markup)
    entities = EntityScan("the HTML")
    for start in range(0, len(data), CHUNK * 4):
        chunk = data[start : start + CHUNK * 4]
        entities.feed(chunk)
        _tokenize(inspector, chunk, "the HTML")
    _tokenize(inspector, None, "the HTML")


def inspect_table_text(data: bytes, limits: DocumentLimits) -> None:
    """A CSV upload: rows x columns and cell lengths (see :func:`shared.tabular.inspect_csv`)."""
    inspect_csv(data, _Budget.of(limits).cells)


def _inspect_archive(data: bytes, budget: _Budget, *, depth: int, where: str) -> None:
    count = count_members(data, max_members=budget.limits.max_archive_members - budget.members, where=where)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as e:
        raise invalid(f"{where} is not a readable ZIP archive ({e})") from None
    with archive:
        members = archive.infolist()
        budget.add_members(max(count, len(members)), where)
        _check_declared(members, budget, where)
        for info in members:
            if info.is_dir():
                continue
            if info.flag_bits & 0x1:
                raise OCRError(
                    ErrorCode.ENCRYPTED_DOCUMENT,
                    f"{where}: member {info.filename!r} is encrypted; send the document without a password",
                    accepted=["unencrypted documents"],
                )
            _stream_member(archive, info, budget, depth=depth, where=where)


def _check_declared(members: list[zipfile.ZipInfo], budget: _Budget, where: str) -> None:
    """Sizes and ratios as the central directory declares them: refused before anything is inflated."""
    limits = budget.limits
    declared = budget.unpacked + sum(info.file_size for info in members)
    if declared > limits.max_unpacked_bytes:
        raise too_large(
            f"{where} declares {declared} bytes once unpacked; the limit is "
            f"max_unpacked_bytes={limits.max_unpacked_bytes}",
            max_unpacked_bytes=limits.max_unpacked_bytes,
        )
    for info in members:
        if info.file_size > RATIO_FLOOR and info.file_size > limits.max_compression_ratio * max(info.compress_size, 1):
            raise _ratio_error(info, info.file_size, limits.max_compression_ratio, where)


def _ratio_error(info: zipfile.ZipInfo, unpacked: int, ratio: float, where: str) -> OCRError:
    return too_complex(
        f"{where}: member {info.filename!r} unpacks {unpacked / max(info.compress_size, 1):.0f} times its packed size "
        f"({info.compress_size} -> {unpacked} bytes or more); the limit is max_compression_ratio={ratio:g}",
        max_compression_ratio=ratio,
    )


def _stream_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: _Budget, *, depth: int, where: str) -> None:
    """Inflate one member 64 KiB at a time into the consumer its name and first bytes call for."""
    limits = budget.limits
    label = f"{info.filename} in {where}" if depth else info.filename
    produced = 0
    consumer: _Consumer | None = None
    try:
        with archive.open(info) as stream:
            while chunk := stream.read(CHUNK):
                produced += len(chunk)
                budget.add_bytes(len(chunk), label)
                if produced > RATIO_FLOOR and produced > limits.max_compression_ratio * max(info.compress_size, 1):
                    raise _ratio_error(info, produced, limits.max_compression_ratio, where)
                if consumer is None:
                    consumer = _consumer_for(info.filename, chunk, budget, depth=depth, label=label)
                consumer.feed(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, NotImplementedError) as e:
        raise invalid(f"{where}: member {info.filename!r} cannot be unpacked ({e})") from None
    if consumer is not None:
        consumer.close()


def _consumer_for(name: str, head: bytes, budget: _Budget, *, depth: int, label: str) -> _Consumer:
    lower = name.lower()
    if head.startswith(b"PK\x03\x04"):
        return _NestedArchive(budget, depth=depth + 1, label=label)
    if head.startswith(_IMAGE_MAGIC):
        return _ImageHeader(budget.limits, label)
    if _SHEET.match(name):
        sheet = SheetCounter(label, budget.cells)
        return _Hooked(
            XmlInspector(label, budget.markup, count=False, on_start=sheet.start, on_end=sheet.end, on_text=sheet.text),
            sheet,
        )
    if _SHARED_STRINGS.match(name):
        strings = SharedStringsCounter(label, budget.cells)
        return _Hooked(
            XmlInspector(
                label, budget.markup, count=False, on_start=strings.start, on_end=strings.end, on_text=strings.text
            ),
            strings,
        )
    if lower.endswith(_HTML_NAMES):
        return _Html(label, budget.markup)
    stripped = head.lstrip(b"\xef\xbb\xbf\xff\xfe\x00 \t\r\n")
    if lower.endswith(_XML_NAMES) or stripped.startswith(b"<"):
        return XmlInspector(label, budget.markup)
    if lower.endswith(".css"):
        return _Css(label, budget.markup)
    return _Discard()


class _Hooked:
    """An XML inspector plus the counter its hooks feed, closed together."""

    def __init__(self, inspector: XmlInspector, counter: SheetCounter | SharedStringsCounter) -> None:
        self.inspector = inspector
        self.counter = counter

    def feed(self, chunk: bytes) -> None:
        self.inspector.feed(chunk)

    def close(self) -> None:
        self.inspector.close()
        self.counter.close()


class _Html:
    """An XHTML/HTML member (EPUB chapters): the tolerant tokenizer, plus the entity backstop."""

    def __init__(self, label: str, tally: MarkupTally) -> None:
        self.label = label
        self.inspector = HtmlInspector(label, tally)
        self.entities = EntityScan(label)

    def feed(self, chunk: bytes) -> None:
        self.entities.feed(chunk)
        _tokenize(self.inspector, chunk, self.label)

    def close(self) -> None:
        _tokenize(self.inspector, None, self.label)


class _Css:
    """A stylesheet member: CSS ``url()`` and ``@import`` checked for local files, in overlapping windows."""

    def __init__(self, label: str, tally: MarkupTally) -> None:
        self.references = ReferenceRules(label, tally)
        self.tail = ""

    def feed(self, chunk: bytes) -> None:
        text = self.tail + chunk.decode("utf-8", errors="replace")
        self.references.css(text)
        self.tail = text[-512:]

    def close(self) -> None:
        pass


class _ImageHeader:
    """An embedded image: the first bytes kept, its declared size checked against the page-image pixel limits."""

    def __init__(self, limits: DocumentLimits, label: str) -> None:
        self.limits = limits
        self.label = label
        self.head = bytearray()

    def feed(self, chunk: bytes) -> None:
        if len(self.head) < IMAGE_HEAD:
            self.head += chunk[: IMAGE_HEAD - len(self.head)]

    def close(self) -> None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with Image.open(io.BytesIO(bytes(self.head))) as image:
                    width, height = image.size
        except Image.DecompressionBombError as e:  # past Pillow's own bomb limit: its message has the size
            raise self._refusal(str(e)) from None
        except Exception:  # a header Pillow cannot read here: the parser judges the image itself
            return
        limits = self.limits
        if width * height > limits.max_pixels_per_page or max(width, height) > limits.max_side_px:
            raise self._refusal(f"{width}x{height} pixels")

    def _refusal(self, size: str) -> OCRError:
        limits = self.limits
        return OCRError(
            ErrorCode.TOO_MANY_PIXELS,
            f"the embedded image {self.label} declares {size}; the limits are "
            f"max_pixels_per_page={limits.max_pixels_per_page} and max_side_px={limits.max_side_px}",
            accepted={"max_pixels_per_page": limits.max_pixels_per_page, "max_side_px": limits.max_side_px},
        )


class _NestedArchive:
    """A ZIP inside the ZIP (an embedded workbook, an OLE package): inspected the same way, within the nesting
    limit, its bytes kept only up to ``max_bytes`` (the largest upload) since a ZIP is read from its end."""

    def __init__(self, budget: _Budget, *, depth: int, label: str) -> None:
        self.budget = budget
        self.depth = depth
        self.label = label
        limits = budget.limits
        if depth > limits.max_archive_nesting:
            raise too_complex(
                f"{label} is an archive nested {depth} levels deep; the limit is "
                f"max_archive_nesting={limits.max_archive_nesting}",
                max_archive_nesting=limits.max_archive_nesting,
            )
        self.data = bytearray()

    def feed(self, chunk: bytes) -> None:
        self.data += chunk
        if len(self.data) > self.budget.limits.max_bytes:
            raise too_large(
                f"the embedded archive {self.label} is larger than max_bytes={self.budget.limits.max_bytes}",
                max_bytes=self.budget.limits.max_bytes,
            )

    def close(self) -> None:
        data, self.data = bytes(self.data), bytearray()
        _inspect_archive(data, self.budget, depth=self.depth, where=self.label)


class _Discard:
    """Any other member: streamed only so its real unpacked size is counted."""

    def feed(self, chunk: bytes) -> None:
        pass

    def close(self) -> None:
        pass


def _tokenize(inspector: HtmlInspector, chunk: bytes | None, where: str) -> None:
    """Feed (or close, for None) the HTML tokenizer; its rare internal errors on broken markup are a 422."""
    try:
        if chunk is None:
            inspector.close()
        else:
            inspector.feed_bytes(chunk)
    except OCRError:
        raise
    except Exception as e:  # html.parser raises AssertionError/ValueError on a few malformed declarations
        raise invalid(f"{where} cannot be tokenised as HTML ({type(e).__name__}: {e})") from None
