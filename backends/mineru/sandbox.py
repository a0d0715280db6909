"""What the MinerU parse process may not do: open network connections, or read files a document points at.

Read from MinerU 4.0 / DocVortex 0.6 (the installed source), the places where parsing a client's document could
reach outside it, and what closes each:

- **HTML** (``docvortex.analyzers.native.html.resources``): images as ``data:`` URIs, *remote* images kept as
  references (never downloaded), and *relative* images and stylesheets read from disk under
  ``HtmlSourceContext.local_resource_root`` — which ``mineru.parser.parse`` sets to the document's own directory.
  :func:`html_source_context` gives MinerU a context with no local root and no source URI, so no relative reference
  resolves to a file (the document sits alone in a private temporary directory besides).
- **SVG** anywhere (HTML ``data:`` images, DOCX/PPTX/XLSX ``svgBlip`` parts, EPUB images) is rasterised by
  ``resvg_py.svg_to_bytes``, and resvg loads ``<image href="/any/absolute/path.png">`` from disk (verified: a red
  PNG at an absolute path came back in the raster). :func:`seal` wraps that function so every ``href`` that is not
  a ``data:`` URI or an ``#id`` is removed before resvg sees the markup. The router refuses such SVG already
  (:mod:`shared.markup`); this is the second lock.
- **XML** parsers: DocVortex and python-docx/pptx use lxml with ``resolve_entities=False`` (DocVortex also
  ``no_network=True``, ``load_dtd=False``); mammoth's path uses ``xml.dom.minidom`` (expat, which expands internal
  entities within its amplification limit and never loads external ones). The router refuses every entity
  declaration before parsing; nothing here relies on the parsers' settings alone.
- **Office relationships** with ``TargetMode="External"`` (linked images, templates, OLE links) are skipped by
  DocVortex's DOCX/PPTX readers (``is_external``); **EPUB** manifest items with a scheme or host are ignored.
- **Network**: no code path above opens a socket; :func:`seal` makes sure of it with an audit hook that refuses
  every ``socket.connect``/``getaddrinfo``/``urllib.Request`` to an IP address family in this process (Unix
  sockets and pipes, which multiprocessing uses, stay allowed). Audit hooks cannot be removed once added.
"""

from __future__ import annotations

import logging
import re
import socket
import sys
from typing import Any

logger = logging.getLogger(__name__)

NETWORK_EVENTS = frozenset(
    {
        "socket.connect",
        "socket.sendto",
        "socket.getaddrinfo",
        "socket.gethostbyname",
        "socket.gethostbyaddr",
        "urllib.Request",
        "http.client.connect",
    }
)
_HREF = re.compile(r"""\s(?:xlink:)?href\s*=\s*("[^"]*"|'[^']*')""", re.IGNORECASE)
_blocked: list[str] = []


def html_source_context() -> Any:
    """An ``HtmlSourceContext`` under which no reference of an HTML document resolves to a local file."""
    from docvortex.document.contracts import HtmlSourceContext

    return HtmlSourceContext(source_uri=None, local_resource_root=None)


def seal() -> None:
    """Lock this process down for parsing (call once, before the first document): no IP network, no SVG paths."""
    sys.addaudithook(_refuse_network)
    _wrap_resvg()
    logger.info("MinerU parse process sealed: no IP networking, SVG references limited to data: and #ids")


def blocked_attempts() -> list[str]:
    """The network attempts refused so far (for logs and tests)."""
    return list(_blocked)


def _refuse_network(event: str, args: tuple[Any, ...]) -> None:
    if event not in NETWORK_EVENTS:
        return
    if event in ("socket.connect", "socket.sendto"):
        sock = args[0]
        if getattr(sock, "family", None) not in (socket.AF_INET, socket.AF_INET6):
            return  # Unix sockets and socket pairs (multiprocessing) are local plumbing
    _blocked.append(f"{event} {args[1:2]!r}"[:200])
    raise PermissionError(f"network access is disabled while parsing documents ({event})")


def strip_svg_references(markup: str) -> str:
    """``markup`` with every ``href``/``xlink:href`` that is not ``data:`` or ``#id`` removed."""

    def keep_or_drop(match: re.Match[str]) -> str:
        value = match.group(1)[1:-1].strip().lower()
        return match.group(0) if value.startswith(("#", "data:")) else ""

    return _HREF.sub(keep_or_drop, markup)


def _wrap_resvg() -> None:
    try:
        import resvg_py
    except ImportError:  # no SVG rasteriser installed: nothing to wrap
        return
    original = resvg_py.svg_to_bytes
    if getattr(original, "_ocrserve_sealed", False):
        return

    def svg_to_bytes(*args: Any, svg_string: str | None = None, svg_path: str | None = None, **kwargs: Any) -> Any:
        if svg_path is not None or args:
            raise PermissionError("SVG is rasterised from markup only while parsing documents")
        kwargs.pop("resources_dir", None)
        return original(svg_string=strip_svg_references(svg_string or ""), **kwargs)

    svg_to_bytes._ocrserve_sealed = True  # type: ignore[attr-defined]
    resvg_py.svg_to_bytes = svg_to_bytes
