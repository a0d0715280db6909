"""Markup looked at before any parser sees it: XML without entities, HTML by count, references that read files.

The structured formats (DOCX, PPTX, XLSX, EPUB, HTML) are markup, and markup can ask a parser for work or for
files: entity declarations expand ("billion laughs") or name files and URLs (XXE), a nesting thousands deep
exhausts a recursive walker, a million elements take minutes, and a reference such as ``<img
src="file:///etc/passwd">`` or an SVG ``<image href="/home/...">`` (MinerU rasterises SVG with resvg, which reads
absolute paths) asks for a file of the server. Each inspector here streams the markup once, with bounded state,
and refuses what is over a limit or unsafe *before* a parser that does expand, recurse or read gets it:

- :class:`XmlInspector` — expat, defused the way ``defusedxml`` does it: any entity declaration, external entity
  or non-HTTP DTD reference is refused (nothing is expanded or loaded to find out); counts elements and depth.
- :class:`HtmlInspector` — the standard library's tokenizer (it never fetches, expands or executes anything);
  counts elements and estimates nesting the way HTML nests (void elements, implied end tags).
- both check every attribute that makes a browser or parser *load* something (``src``, ``srcset``, ``data``,
  ``poster``, CSS ``url()``...) for local-file references; links (``<a href>``) are text and stay allowed.
  Remote references are allowed: nothing in the service fetches them (MinerU keeps remote images as references),
  which the end-to-end tests prove with a recording HTTP server.

Pure: no project imports but :mod:`shared.errors`, no network, no file access.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import pyexpat
import re
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import unquote

from shared.errors import OCRError
from shared.schema import ErrorCode

RESOURCE_ATTRIBUTES = frozenset(
    {
        "src",
        "href",
        "data",
        "poster",
        "background",
        "codebase",
        "archive",
        "longdesc",
        "lowsrc",
        "dynsrc",
        "manifest",
        "action",
        "formaction",
        "icon",
    }
)
"""Attributes whose value a browser or parser loads (``srcset`` and ``style`` are parsed apart)."""

LINK_ELEMENTS = frozenset({"a", "area"})
"""Elements whose ``href`` is a link to follow by hand, not a resource: any scheme is just text there."""

VOID_ELEMENTS = frozenset(
    {
        "area",
        "base",
        "basefont",
        "br",
        "col",
        "command",
        "embed",
        "frame",
        "hr",
        "img",
        "input",
        "isindex",
        "keygen",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
    }
)
IMPLIED_END = frozenset(
    {
        "p",
        "li",
        "dt",
        "dd",
        "tr",
        "td",
        "th",
        "option",
        "optgroup",
        "thead",
        "tbody",
        "tfoot",
        "colgroup",
        "caption",
        "rb",
        "rt",
        "rp",
        "rtc",
        "head",
        "body",
        "html",
    }
)
"""Elements whose end tag HTML lets a document leave out: a second ``<li>`` closes the first, it does not nest."""
SCOPES = frozenset({"table", "ul", "ol", "dl", "select", "div", "section", "article", "blockquote", "svg", "math"})
"""An implied end never reaches past these (a ``<td>`` inside a nested table does not close the outer cell)."""
BLOCKS = frozenset(
    {
        "address",
        "article",
        "aside",
        "blockquote",
        "details",
        "div",
        "dl",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hgroup",
        "hr",
        "main",
        "menu",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "table",
        "ul",
    }
)
"""Block elements: their start tag closes an open ``<p>``."""

MAX_EMBEDDED_SVG_LEVELS = 4
"""``data:image/svg+xml`` inside SVG inside HTML...: deeper than this is refused rather than followed."""

_CSS_ESCAPE = re.compile(r"\\([0-9a-fA-F]{1,6})\s?")
_CSS_URLS = re.compile(r"""url\(\s*['"]?\s*([^'")\s]*)|@import\s+['"]\s*([^'"]*)""", re.IGNORECASE)
_REFRESH_URL = re.compile(r"url\s*=\s*['\"]?\s*([^'\";]+)", re.IGNORECASE)
_WINDOWS_PATH = re.compile(r"^[a-z]:[\\/]")
_ENTITY_MARKERS = (b"<!entity", "<!ENTITY".encode("utf-16-le"), "<!ENTITY".encode("utf-16-be"))


def unsafe(message: str, **accepted: object) -> OCRError:
    """The refusal of a document that asks the service to read a file or expand entities (422)."""
    return OCRError(ErrorCode.UNSAFE_DOCUMENT, message, accepted=accepted or None)


def too_complex(message: str, **accepted: object) -> OCRError:
    """The refusal of a document over a structural limit (413), naming the limit in ``accepted``."""
    return OCRError(ErrorCode.DOCUMENT_TOO_COMPLEX, message, accepted=accepted or None)


def is_local_file_reference(url: str, *, absolute_paths: bool = False) -> bool:
    """Whether ``url`` names a file of the machine reading it: ``file:``, a UNC path, a Windows drive path.

    Whitespace and control characters are dropped first, as browsers do (``fi\\tle:`` is ``file:``).

    Args:
        url: The reference as written (character references already decoded by the tokenizer).
        absolute_paths: Count ``/etc/passwd`` as a file too (true for package relationships, where a target is a
            path; false for HTML, where ``/img.png`` is a path on the page's own web server).
    """
    compact = "".join(ch for ch in url if ch > " ").lower()
    if compact.startswith(("file:", "\\\\", "\\/", "/\\")) or _WINDOWS_PATH.match(compact):
        return True
    return absolute_paths and compact.startswith("/")


@dataclass
class MarkupTally:
    """Elements and nesting across every markup part of one document, against the limits."""

    max_depth: int
    max_elements: int
    elements: int = 0
    deepest: int = 0

    def element(self, depth: int, where: str, *, count: bool = True) -> None:
        """One element at ``depth``; refuse past either limit.

        Args:
            depth: 1 for the root element.
            where: The part, for messages.
            count: Count it against ``max_markup_elements`` (parts governed by other limits only check depth).

        Raises:
            OCRError: ``document_too_complex`` naming ``max_markup_depth`` or ``max_markup_elements``.
        """
        if depth > self.deepest:
            self.deepest = depth
            if depth > self.max_depth:
                raise too_complex(
                    f"{where} nests elements {depth} deep; the limit is max_markup_depth={self.max_depth}",
                    max_markup_depth=self.max_depth,
                )
        if not count:
            return
        self.elements += 1
        if self.elements > self.max_elements:
            raise too_complex(
                f"the document has more than {self.max_elements} markup elements ({where}); the limit is "
                f"max_markup_elements={self.max_elements}",
                max_markup_elements=self.max_elements,
            )


class EntityScan:
    """A byte-level watch for ``<!ENTITY`` (UTF-8/ASCII and UTF-16), whatever a tokenizer made of the bytes.

    The parsers are the first line; this is the backstop for markup they stopped reading (a syntax error) while a
    recovering parser downstream would read on, and for HTML, whose tokenizer treats declarations as text.
    """

    def __init__(self, where: str) -> None:
        self.where = where
        self._tail = b""

    def feed(self, chunk: bytes) -> None:
        """Look at the next bytes (the tail of the previous chunk is kept, so a marker split in two is seen).

        Raises:
            OCRError: ``unsafe_document`` when an entity declaration appears.
        """
        window = self._tail + chunk
        if _ENTITY_MARKERS[0] in window.lower() or any(marker in window for marker in _ENTITY_MARKERS[1:]):
            raise unsafe(
                f"{self.where} declares XML entities; entity expansion and external entities are refused",
                refused=["<!ENTITY> declarations", "external entities", "DTDs other than a public http(s) one"],
            )
        self._tail = window[-32:]


class ReferenceRules:
    """Reference rules shared by the inspectors: local files never, SVG references to data: and #ids only.

    Args:
        where: The document or part, for messages.
        tally: Counters that SVG images embedded as data: URIs are counted against.
        svg_level: How many data: URIs deep the markup being checked is embedded.
    """

    def __init__(self, where: str, tally: MarkupTally, svg_level: int = 0) -> None:
        self.where = where
        self.tally = tally
        self.svg_level = svg_level

    def check(self, element: str, attributes: list[tuple[str, str | None]], *, in_svg: bool) -> None:
        for raw_name, value in attributes:
            if value is None:
                continue
            name = raw_name.rsplit(":", 1)[-1].lower()
            if name == "style":
                self.css(value)
            elif name == "srcset":
                for candidate in value.split(","):
                    self.resource(element, candidate.strip().split(" ")[0], attribute=raw_name)
            elif name == "content" and element == "meta":
                for url in _REFRESH_URL.findall(value):
                    self.resource(element, url, attribute="content")
            elif name in RESOURCE_ATTRIBUTES and element not in LINK_ELEMENTS:
                self.resource(element, value, attribute=raw_name)
            if in_svg and name == "href" and element != "a":
                self.svg_reference(element, value)
            if name in ("src", "href", "data") and _is_svg_data_uri(value):
                self.embedded_svg(value)

    def resource(self, element: str, url: str, *, attribute: str) -> None:
        if is_local_file_reference(url):
            what = f"CSS url({url[:80]})" if attribute == "url()" else f'<{element} {attribute}="{url[:80]}">'
            raise unsafe(
                f"{self.where}: {what} refers to a local file; documents may not refer to files of the server "
                "(remote references are allowed and never fetched)",
                refused=["file: URLs", "UNC and drive paths"],
            )

    def svg_reference(self, element: str, url: str) -> None:
        target = url.strip()
        if target.startswith("#") or target.lower().startswith("data:"):
            return
        raise unsafe(
            f'{self.where}: SVG <{element} href="{target[:80]}"> refers outside the document; SVG images may '
            "refer only to data: URIs and #ids (SVG is rasterised by a library that reads paths from disk)",
            refused=["SVG references other than data: and #id"],
        )

    def css(self, text: str) -> None:
        unescaped = _CSS_ESCAPE.sub(lambda m: _codepoint(m.group(1)), text)
        for url, imported in _CSS_URLS.findall(unescaped):
            self.resource("style", url or imported, attribute="url()")

    def embedded_svg(self, uri: str) -> None:
        if self.svg_level >= MAX_EMBEDDED_SVG_LEVELS:
            raise too_complex(
                f"{self.where}: SVG images nest more than {MAX_EMBEDDED_SVG_LEVELS} levels of data: URIs",
                max_embedded_svg_levels=MAX_EMBEDDED_SVG_LEVELS,
            )
        payload = _data_uri_payload(uri)
        if payload is None:
            return
        inner = XmlInspector(f"{self.where} (embedded SVG)", self.tally, svg_level=self.svg_level + 1)
        inner.feed(payload)
        inner.close()


class XmlInspector:
    """One XML part through expat, fed in chunks: entities refused, elements counted, references checked.

    A syntax error is not a refusal here (a tolerant parser downstream may still read the part); the rest of the
    part is then read by :class:`HtmlInspector`, so it is counted and checked all the same.

    Args:
        where: The part's name, for messages.
        tally: Element and depth counters shared by the document's parts.
        count: Count this part's elements against ``tally`` (worksheets are governed by cell limits instead).
        on_start: Called with (local name, attributes) for every element, for format-specific limits.
        on_end: Called with the local name at every end tag.
        on_text: Called with every run of character data (only set when someone needs text lengths).
        svg_level: How many data: URIs deep this part is embedded (0 for a part of the document itself).
    """

    def __init__(
        self,
        where: str,
        tally: MarkupTally,
        *,
        count: bool = True,
        on_start: Callable[[str, dict[str, str]], None] | None = None,
        on_end: Callable[[str], None] | None = None,
        on_text: Callable[[str], None] | None = None,
        svg_level: int = 0,
    ) -> None:
        self.where = where
        self.tally = tally
        self.count = count
        self.on_start = on_start
        self.on_end = on_end
        self.depth = 0
        self.svg_depth = 0  # depth at which the outermost open <svg> started (0: not inside one)
        self.fallback: HtmlInspector | None = None
        self.references = ReferenceRules(where, tally, svg_level)
        self.entities = EntityScan(where)
        self.parser = pyexpat.ParserCreate()
        self.parser.SetParamEntityParsing(pyexpat.XML_PARAM_ENTITY_PARSING_NEVER)
        self.parser.buffer_text = True
        self.parser.StartDoctypeDeclHandler = self._doctype
        self.parser.EntityDeclHandler = self._entity
        self.parser.UnparsedEntityDeclHandler = self._entity
        self.parser.ExternalEntityRefHandler = self._external
        self.parser.StartElementHandler = self._start
        self.parser.EndElementHandler = self._end
        if on_text is not None:
            self.parser.CharacterDataHandler = on_text

    def feed(self, chunk: bytes) -> None:
        """The next bytes of the part.

        Raises:
            OCRError: ``unsafe_document``, ``document_too_complex``, or ``invalid_document`` for an encoding no
                parser here can read.
        """
        self.entities.feed(chunk)
        if self.fallback is not None:
            self.fallback.feed_bytes(chunk)
            return
        try:
            self.parser.Parse(chunk, False)
        except pyexpat.ExpatError as e:
            self._broken(e, chunk)

    def close(self) -> None:
        """End of the part (checks what only the end can tell)."""
        if self.fallback is not None:
            self.fallback.close()
            return
        try:
            self.parser.Parse(b"", True)
        except pyexpat.ExpatError as e:
            self._broken(e, b"")

    def _broken(self, error: pyexpat.ExpatError, chunk: bytes) -> None:
        if error.code == pyexpat.errors.codes[pyexpat.errors.XML_ERROR_UNKNOWN_ENCODING]:
            raise OCRError(ErrorCode.INVALID_DOCUMENT, f"{self.where} is in an encoding XML parsers here cannot read")
        self.fallback = HtmlInspector(self.where, self.tally, count=self.count, svg_level=self.references.svg_level)
        self.fallback.feed_bytes(chunk)

    def _doctype(self, name: str, system_id: str | None, public_id: str | None, internal_subset: int) -> None:
        if system_id and not system_id.strip().lower().startswith(("http://", "https://")):
            raise unsafe(
                f"{self.where} names a DTD at {system_id[:80]!r}; only public http(s) DTDs are allowed (never loaded)",
                refused=["DTDs other than a public http(s) one"],
            )

    def _entity(self, name: str, *args: object) -> None:
        raise unsafe(
            f"{self.where} declares the XML entity {name!r}; entity expansion and external entities are refused",
            refused=["<!ENTITY> declarations", "external entities"],
        )

    def _external(self, context: str | None, base: str | None, system_id: str | None, public_id: str | None) -> int:
        raise unsafe(f"{self.where} refers to an external entity {system_id!r}", refused=["external entities"])

    def _start(self, name: str, attributes: dict[str, str]) -> None:
        self.depth += 1
        local = name.rsplit(":", 1)[-1]
        if local == "svg" and not self.svg_depth:
            self.svg_depth = self.depth
        self.tally.element(self.depth, self.where, count=self.count)
        self.references.check(local, list(attributes.items()), in_svg=bool(self.svg_depth))
        if local == "Relationship":
            _check_relationship(self.where, attributes)
        if self.on_start is not None:
            self.on_start(local, attributes)

    def _end(self, name: str) -> None:
        if self.depth == self.svg_depth:
            self.svg_depth = 0
        self.depth -= 1
        if self.on_end is not None:
            self.on_end(name.rsplit(":", 1)[-1])


class HtmlInspector(HTMLParser):
    """HTML (or XHTML, or XML a strict parser gave up on) through the standard library's tokenizer.

    Counts elements and estimates their nesting as an HTML parser would build it, checks references, and reads
    ``<style>`` text for CSS ``url()``. The tokenizer never loads, expands or executes anything.

    Args:
        where: The document or part, for messages.
        tally: Element and depth counters shared by the document's parts.
        count: Count elements against ``tally``.
        svg_level: How many data: URIs deep this markup is embedded.
    """

    def __init__(self, where: str, tally: MarkupTally, *, count: bool = True, svg_level: int = 0) -> None:
        super().__init__(convert_charrefs=True)
        self.where = where
        self.tally = tally
        self.count = count
        self.stack: list[str] = []
        self.references = ReferenceRules(where, tally, svg_level)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._in_style = False

    def feed_bytes(self, chunk: bytes) -> None:
        """The next bytes (UTF-8; undecodable bytes are replaced, which cannot hide an ASCII reference)."""
        self.feed(self._decoder.decode(chunk))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        tag = tag.rsplit(":", 1)[-1]
        self._in_style = tag == "style"
        if tag in VOID_ELEMENTS:
            self._element(tag, attrs, depth=len(self.stack) + 1)
            return
        self._implied_ends(tag)
        self.stack.append(tag)
        self._element(tag, attrs, depth=len(self.stack))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._element(tag.rsplit(":", 1)[-1], attrs, depth=len(self.stack) + 1)

    def handle_endtag(self, tag: str) -> None:
        tag = tag.rsplit(":", 1)[-1]
        self._in_style = False
        if tag in self.stack:
            del self.stack[len(self.stack) - 1 - self.stack[::-1].index(tag) :]

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.references.css(data)

    def _element(self, tag: str, attrs: list[tuple[str, str | None]], *, depth: int) -> None:
        self.tally.element(depth, self.where, count=self.count)
        self.references.check(tag, attrs, in_svg="svg" in self.stack or tag == "svg")

    def _implied_ends(self, tag: str) -> None:
        """Close what HTML closes implicitly before ``tag`` opens, so sloppy markup is not counted as deep."""
        if tag in BLOCKS and self.stack and self.stack[-1] == "p":
            self.stack.pop()
        if tag in IMPLIED_END:
            for i in range(len(self.stack) - 1, -1, -1):
                if self.stack[i] == tag:
                    del self.stack[i:]
                    return
                if self.stack[i] in SCOPES:
                    return


def _check_relationship(where: str, attributes: dict[str, str]) -> None:
    """An OOXML package relationship: an external target that is not a hyperlink must not be a local file.

    Word fetches linked images, templates and OLE links from such targets; nothing here does, but a document
    that points a part at a file of the machine reading it is hostile by construction and is refused.
    """
    target = attributes.get("Target", "")
    kind = attributes.get("Type", "")
    if kind.endswith("/hyperlink"):
        return
    if is_local_file_reference(target, absolute_paths=attributes.get("TargetMode", "") == "External"):
        raise unsafe(
            f"{where}: a relationship of type {kind.rsplit('/', 1)[-1] or '?'} points at the local file "
            f"{target[:80]!r}; documents may not refer to files of the server",
            refused=["file: URLs", "UNC and drive paths", "absolute paths in external relationships"],
        )


def _is_svg_data_uri(value: str) -> bool:
    return value.lstrip()[:18].lower() == "data:image/svg+xml"


def _data_uri_payload(uri: str) -> bytes | None:
    """The bytes of a data: URI (base64 or percent-encoded), or None when it has none."""
    header, _, body = uri.strip().partition(",")
    if not _:
        return None
    if ";base64" in header.lower():
        try:
            return base64.b64decode("".join(body.split()), validate=False)
        except (binascii.Error, ValueError):
            return None
    return unquote(body).encode("utf-8", errors="replace")


def _codepoint(hex_digits: str) -> str:
    try:
        return chr(int(hex_digits, 16))
    except (ValueError, OverflowError):
        return "\ufffd"
