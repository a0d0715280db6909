"""Documents in, page images out: type detection, limits, PDF rasterisation and multi-frame images.

Two steps on purpose. :func:`open_document` is cheap (headers and page sizes only; structured formats are streamed
once through bounded inspectors, :mod:`shared.containers`) and runs in the router, so bad input is refused before it
reaches a GPU or a parser. :func:`rasterize_pages` decodes and rasterises, and runs in the backend
replica that needs the pixels. Both raise :class:`~shared.errors.OCRError` for anything a client did wrong.

The media type is detected from the bytes, never trusted from the client's ``Content-Type`` or file name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import logging
import math
import threading
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from PIL import Image, ImageOps, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field

from shared.containers import count_members, inspect_html, inspect_table_text, inspect_zip
from shared.errors import OCRError
from shared.pages import parse_page_range
from shared.schema import DocumentInfo

logger = logging.getLogger(__name__)

PDF = "application/pdf"
RASTER_TYPES: dict[str, str] = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "TIFF": "image/tiff",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
}
IMAGE_TYPES = frozenset(RASTER_TYPES.values())
PAGED_TYPES = IMAGE_TYPES | {PDF}
"""Media types that have pages we can rasterise (every backend takes these)."""

OFFICE_TYPES: dict[str, str] = {
    "word/document.xml": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "ppt/presentation.xml": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "xl/workbook.xml": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
EPUB = "application/epub+zip"
HTML = "text/html"
CSV = "text/csv"
STRUCTURED_TYPES = frozenset(OFFICE_TYPES.values()) | {EPUB, HTML, CSV}
"""Formats some engines (MinerU) parse natively, without page images."""

PDFIUM_LOCK = threading.Lock()
"""PDFium is not thread-safe: one call at a time per process. Engines that use PDFium through other libraries
(MinerU) hold this lock around that use too, so their calls and the runner's rendering never overlap."""


class DocumentLimits(BaseModel):
    """What one request may ask of the service. Exceeding any is a 4xx, not a slow death."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_bytes: int = Field(default=50 * 1024 * 1024, gt=0, description="Largest upload, in bytes.")
    max_pages: int = Field(default=200, gt=0, description="Most pages processed in one synchronous request.")
    max_job_pages: int = Field(default=2000, gt=0, description="Most pages processed in one asynchronous job.")
    max_pixels_per_page: int = Field(
        default=50_000_000, gt=0, description="Most pixels in one page image (guards against decompression bombs)."
    )
    max_side_px: int = Field(
        default=30_000, gt=0, description="Longest side of one page image (a 100000 x 1 strip is not a page)."
    )
    default_dpi: float = Field(default=144.0, gt=0, description="Rasterisation DPI for PDF pages when none is asked.")
    min_dpi: float = Field(default=36.0, gt=0, description="Lowest DPI a request may ask for.")
    max_dpi: float = Field(default=600.0, gt=0, description="Highest DPI a request may ask for.")
    # Structured formats (DOCX, PPTX, XLSX, EPUB, HTML, CSV): checked before any parser runs (shared.containers).
    max_unpacked_bytes: int = Field(
        default=256 * 1024 * 1024,
        gt=0,
        description="Largest total size of a ZIP package's members (DOCX, PPTX, XLSX, EPUB) once unpacked, nested "
        "archives included; counted while streaming, so a member that lies about its size is cut off here.",
    )
    max_archive_members: int = Field(
        default=10_000, gt=0, description="Most members in a ZIP package, nested archives' members included."
    )
    max_compression_ratio: float = Field(
        default=500.0,
        gt=1,
        description="Highest unpacked/packed size ratio of a ZIP member that unpacks to more than 1 MiB: a deflate "
        "bomb reaches ~1030; ordinary XML 5-30, machine-written repetitive XML (generated tables, identical "
        "paragraphs) 100-350.",
    )
    max_archive_nesting: int = Field(
        default=1,
        ge=0,
        description="How deep ZIP archives may nest inside a package (1: an embedded workbook in a DOCX, nothing "
        "inside that; 0: none).",
    )
    max_markup_depth: int = Field(
        default=256,
        gt=0,
        description="Deepest element nesting in HTML and in a package's XML/XHTML parts (libxml2's own default).",
    )
    max_markup_elements: int = Field(
        default=200_000,
        gt=0,
        description="Most elements in HTML, or in a package's XML/XHTML parts together (worksheets excepted: "
        "max_table_cells governs them). MinerU's flash tier needs ~0.15 ms per element on the project's 2 cores.",
    )
    max_html_bytes: int = Field(default=10 * 1024 * 1024, gt=0, description="Largest HTML upload, in bytes.")
    max_table_cells: int = Field(
        default=100_000,
        gt=0,
        description="Most cells (rows x columns of the used range) of a CSV, or of every worksheet of an XLSX "
        "together; a workbook's shared strings count against it too.",
    )
    max_cell_chars: int = Field(
        default=32_767,
        gt=0,
        le=131_072,
        description="Longest text of one CSV/XLSX cell, in characters (Excel's own limit is 32767).",
    )


@dataclass(frozen=True)
class Document:
    """A validated upload: its bytes, what it is, and which pages to process."""

    data: bytes = field(repr=False)
    name: str
    media_type: str
    sha256: str
    page_count: int
    page_indices: list[int]
    dpi: float

    @property
    def size_bytes(self) -> int:
        return len(self.data)

    def info(self) -> DocumentInfo:
        """The schema's view of this document."""
        return DocumentInfo(
            name=self.name,
            media_type=self.media_type,
            size_bytes=self.size_bytes,
            sha256=self.sha256,
            page_count=self.page_count,
            pages_processed=list(self.page_indices),
        )


@dataclass
class PageImage:
    """One page as pixels, ready for an engine; or only its size, for engines that read the document itself."""

    index: int
    image: Image.Image | None
    dpi: float | None
    size: tuple[int, int] = (0, 0)
    """(width, height) in pixels: the image's, or what rendering the page would give."""

    def __post_init__(self) -> None:
        if self.image is not None:
            self.size = self.image.size


def sniff_media_type(data: bytes, name: str = "") -> str | None:
    """The media type the bytes really are, or None when they are nothing we know."""
    head = data[:16]
    if b"%PDF-" in data[:1024]:  # PDF readers accept junk before the header
        return PDF
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "image/tiff"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:2] == b"BM":
        return "image/bmp"
    if head[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                names = set(zf.namelist())
                if "mimetype" in names:
                    with zf.open("mimetype") as f:  # a few bytes, whatever the member claims to unpack to
                        if f.read(64).strip() == EPUB.encode():
                            return EPUB
        except (zipfile.BadZipFile, KeyError, OSError, RuntimeError, EOFError, NotImplementedError, zlib.error):
            return None
        for marker, media_type in OFFICE_TYPES.items():
            if marker in names:
                return media_type
        return None
    text_head = data[:512].lstrip().lower()
    if text_head.startswith((b"<!doctype html", b"<html")):
        return HTML
    if name.lower().endswith(".csv") and _is_text(data):
        return CSV
    return None


def may_need_inspection(data: bytes) -> bool:
    """Whether :func:`open_document` may stream ``data`` through the container inspectors (a ZIP package, HTML,
    CSV): that can cost seconds of CPU however small the upload (a 300 kB ZIP may unpack to the full
    ``max_unpacked_bytes``), so such uploads belong off an event loop. PDFs and images (headers only) do not."""
    head = data[:16]
    paged = b"%PDF-" in data[:1024] or head.startswith(
        (b"\x89PNG", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+", b"BM")
    )
    return not (paged or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"))


def _is_text(data: bytes) -> bool:
    try:
        data[:65536].decode("utf-8")
    except UnicodeDecodeError:
        return False
    return b"\x00" not in data[:65536]


def open_document(
    data: bytes,
    *,
    name: str = "document",
    limits: DocumentLimits | None = None,
    page_range: str | None = None,
    dpi: float | None = None,
    accepted: frozenset[str] = PAGED_TYPES,
) -> Document:
    """Validate an upload cheaply (no page is decoded, no structured format parsed) and resolve the pages.

    Structured formats (DOCX, PPTX, XLSX, EPUB, HTML, CSV) are held to the container limits here
    (:func:`inspect_structure`): unpacked size, members, compression ratio, nesting, markup, cells, entities and
    local-file references.

    Args:
        data: The uploaded bytes.
        name: The client's file name; shown back, never used as a path.
        limits: Size, page and pixel limits.
        page_range: 1-based range expression (see :mod:`shared.pages`); None means every page.
        dpi: Rasterisation DPI for PDF pages; None means ``limits.default_dpi``.
        accepted: Media types the chosen backend takes.

    Raises:
        OCRError: for empty, oversized, unknown, unreadable, encrypted, unsafe or over-limit documents and bad
            ranges.
    """
    limits = limits or DocumentLimits()
    if not data:
        raise OCRError("empty_document", "the upload is empty (0 bytes)", accepted=sorted(accepted))
    if len(data) > limits.max_bytes:
        raise OCRError(
            "document_too_large",
            f"the upload is {len(data)} bytes; the limit is {limits.max_bytes}",
            accepted={"max_bytes": limits.max_bytes},
        )
    if dpi is None:
        dpi = limits.default_dpi
    if not (limits.min_dpi <= dpi <= limits.max_dpi):
        raise OCRError(
            "invalid_option",
            f"dpi {dpi} is outside the allowed range",
            accepted={"min_dpi": limits.min_dpi, "max_dpi": limits.max_dpi},
        )
    if data[:4] == b"PK\x03\x04":  # bound the central directory before zipfile reads it to sniff the type
        count_members(data, max_members=limits.max_archive_members)
    media_type = sniff_media_type(data, name)
    if media_type is None:
        raise OCRError(
            "unsupported_media_type",
            "the upload is not a document type this service knows (detected from its content, not its name)",
            accepted=sorted(accepted),
        )
    if media_type not in accepted:
        raise OCRError(
            "unsupported_media_type",
            f"{media_type} is not accepted by this backend",
            accepted=sorted(accepted),
        )
    if media_type == PDF:
        page_count, sizes = _pdf_page_sizes(data)
    elif media_type in IMAGE_TYPES:
        page_count, sizes = _image_frame_sizes(data)
    else:  # structured formats: one logical "page"; what a parser would be asked to do is checked instead
        inspect_structure(data, media_type, limits)
        page_count, sizes = 1, None
    try:
        indices = parse_page_range(page_range, page_count)
        if len(indices) > limits.max_pages:
            raise OCRError(
                "too_many_pages",
                f"{len(indices)} pages selected; at most {limits.max_pages} per request "
                "(use a page range or the job API)",
                accepted={"max_pages": limits.max_pages},
            )
        if sizes is not None:
            for i in indices:
                _check_pixels(i, sizes(i), dpi if media_type == PDF else None, limits)
    finally:
        getattr(sizes, "close", lambda: None)()
    return Document(
        data=data,
        name=name,
        media_type=media_type,
        sha256=hashlib.sha256(data).hexdigest(),
        page_count=page_count,
        page_indices=indices,
        dpi=dpi,
    )


def inspect_structure(data: bytes, media_type: str, limits: DocumentLimits) -> None:
    """The container limits of a structured format (see :mod:`shared.containers`), before any parser sees it.

    Raises:
        OCRError: ``document_too_large``, ``document_too_complex``, ``unsafe_document``, ``too_many_pixels``,
            ``encrypted_document`` or ``invalid_document``, each naming the limit or the reference at fault.
    """
    if media_type == HTML:
        inspect_html(data, limits)
    elif media_type == CSV:
        inspect_table_text(data, limits)
    elif media_type in STRUCTURED_TYPES:  # the ZIP packages: DOCX, PPTX, XLSX, EPUB
        inspect_zip(data, limits)


def _check_pixels(index: int, size: tuple[float, float], dpi: float | None, limits: DocumentLimits) -> None:
    """Refuse a page whose image would be too big; ``size`` is in points when ``dpi`` is given, else pixels."""
    w, h = size
    if dpi is not None:
        w, h = w * dpi / 72.0, h * dpi / 72.0
    if w * h > limits.max_pixels_per_page or max(w, h) > limits.max_side_px or w < 1 or h < 1:
        raise OCRError(
            "too_many_pixels",
            f"page {index + 1} would be {int(w)}x{int(h)} pixels; the limits are {limits.max_pixels_per_page} "
            f"pixels and {limits.max_side_px} on the longest side" + (" (lower the dpi)" if dpi is not None else ""),
            accepted={"max_pixels_per_page": limits.max_pixels_per_page, "max_side_px": limits.max_side_px},
        )


def _pdf_page_sizes(data: bytes):
    """Page count, and a function giving a page's size in points (the PDF stays open only while asked)."""
    with PDFIUM_LOCK:
        pdf = _open_pdf(data)
        try:
            n = len(pdf)
        except Exception:
            pdf.close()
            raise
    if n < 1:
        with PDFIUM_LOCK:
            pdf.close()
        raise OCRError("invalid_document", "the PDF has no pages", accepted=[PDF])

    def size(i: int) -> tuple[float, float]:
        with PDFIUM_LOCK:
            try:
                return pdf.get_page_size(i)
            except Exception as e:  # a damaged page tree
                raise OCRError("invalid_document", f"page {i + 1} of the PDF cannot be read ({e})") from None

    def close() -> None:
        with PDFIUM_LOCK:
            pdf.close()

    size.close = close  # type: ignore[attr-defined]
    return n, size


def _open_pdf(data: bytes):
    import pypdfium2 as pdfium

    try:
        return pdfium.PdfDocument(data)
    except pdfium.PdfiumError as e:
        text = str(e).lower()
        if "password" in text:
            raise OCRError(
                "encrypted_document", "the PDF is encrypted; send it without a password", accepted=["unencrypted PDF"]
            ) from None
        raise OCRError("invalid_document", f"the PDF cannot be read ({e})", accepted=[PDF]) from None


def _open_image(data: bytes) -> Image.Image:
    """Open lazily: only the header is read, so a decompression bomb is caught by its declared size."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise OCRError("too_many_pixels", f"the image declares too many pixels ({e})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, TypeError) as e:
        raise OCRError("invalid_document", f"the image cannot be read ({e})", accepted=sorted(IMAGE_TYPES)) from None


def _image_frame_sizes(data: bytes):
    im = _open_image(data)
    n = getattr(im, "n_frames", 1) or 1
    first = im.size

    def size(i: int) -> tuple[int, int]:
        if i == 0:
            return first
        try:
            im.seek(i)
        except (EOFError, OSError, ValueError) as e:
            raise OCRError("invalid_document", f"frame {i + 1} of the image cannot be read ({e})") from None
        return im.size

    return n, size


def page_sizes(doc: Document) -> list[PageImage]:
    """The selected pages' pixel sizes (at ``doc.dpi`` for PDFs) without decoding any, as image-less PageImages."""
    if doc.media_type == PDF:
        _, size = _pdf_page_sizes(doc.data)
        try:
            points = [(i, size(i)) for i in doc.page_indices]
        finally:
            size.close()  # type: ignore[attr-defined]
        scale = doc.dpi / 72.0
        return [  # the size pypdfium2's render() gives at this scale: ceil(points x scale)
            PageImage(index=i, image=None, dpi=doc.dpi, size=(math.ceil(w * scale), math.ceil(h * scale)))
            for i, (w, h) in points
        ]
    if doc.media_type in IMAGE_TYPES:
        _, size = _image_frame_sizes(doc.data)
        turned = doc.media_type == "image/jpeg" and _exif_turns_sideways(doc.data)
        return [
            PageImage(index=i, image=None, dpi=None, size=tuple(size(i)[::-1] if turned else size(i)))
            for i in doc.page_indices
        ]
    return []


EXIF_ORIENTATION = 0x0112
SIDEWAYS_ORIENTATIONS = frozenset({5, 6, 7, 8})
"""EXIF orientations that turn the stored picture by 90 degrees: the upright page is as wide as it is stored tall."""


def _exif_turns_sideways(data: bytes) -> bool:
    """Whether a JPEG's EXIF orientation swaps its width and height (read from the header, nothing decoded), so
    that the sizes here agree with :func:`rasterize_pages`, which applies the orientation."""
    try:
        return _open_image(data).getexif().get(EXIF_ORIENTATION) in SIDEWAYS_ORIENTATIONS
    except Exception:  # unreadable EXIF: rendering ignores it the same way
        return False


def rasterize_page(doc: Document, index: int) -> PageImage:
    """One page of ``doc`` as pixels (for drawing boxes after an engine that did not need them)."""
    return next(rasterize_pages(dataclasses.replace(doc, page_indices=[index])))


def rasterize_pages(doc: Document) -> Iterator[PageImage]:
    """Decode the selected pages as RGB images, in order.

    Raises:
        OCRError: ``invalid_document`` when a page turns out to be corrupt while decoding.
    """
    if doc.media_type == PDF:
        yield from _render_pdf(doc)
    elif doc.media_type in IMAGE_TYPES:
        yield from _render_image(doc)
    else:
        raise OCRError("unsupported_media_type", f"{doc.media_type} has no page images", accepted=sorted(PAGED_TYPES))


def _render_pdf(doc: Document) -> Iterator[PageImage]:
    scale = doc.dpi / 72.0
    with PDFIUM_LOCK:
        pdf = _open_pdf(doc.data)
    try:
        for i in doc.page_indices:
            with PDFIUM_LOCK:  # one PDFium call at a time in this process
                try:
                    image = pdf[i].render(scale=scale, may_draw_forms=True).to_pil().convert("RGB")
                except Exception as e:  # PDFium reports damage as generic errors
                    raise OCRError("invalid_document", f"page {i + 1} of the PDF cannot be rendered ({e})") from None
            yield PageImage(index=i, image=image, dpi=doc.dpi)
    finally:
        with PDFIUM_LOCK:
            pdf.close()


def _render_image(doc: Document) -> Iterator[PageImage]:
    im = _open_image(doc.data)
    for i in doc.page_indices:
        try:
            if i:
                im.seek(i)
            frame = ImageOps.exif_transpose(im) if doc.media_type == "image/jpeg" else im
            rgb = to_rgb(frame)
        except OCRError:
            raise
        except (OSError, SyntaxError, ValueError, EOFError) as e:
            raise OCRError(
                "invalid_document", f"page {i + 1} of the image cannot be decoded ({e})", accepted=sorted(IMAGE_TYPES)
            ) from None
        dpi = im.info.get("dpi")
        yield PageImage(index=i, image=rgb, dpi=float(dpi[0]) if dpi and dpi[0] else None)


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB copy of any Pillow image; transparency is flattened onto white, as paper is."""
    image.load()
    if image.mode == "RGB":
        return image.copy()
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, "white")
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")
