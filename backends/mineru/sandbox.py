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
  The one exception is what the *operator* configured: ``vlm_server_url`` (MinerU's VLM behind an
  OpenAI-compatible server). Its host and port are allowed (:class:`Endpoint`), its addresses resolved once when
  the process is sealed; every other host - any a document names - stays refused.
"""

from __future__ import annotations

import logging
import re
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

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


@dataclass(frozen=True)
class Endpoint:
    """A host and port the sealed process may reach (the operator's VLM server), with the addresses it resolved to.

    Attributes:
        host: The host name or address as configured (lower-cased).
        port: The TCP port.
        addresses: Every IP address ``host`` resolved to when the process was sealed.
    """

    host: str
    port: int
    addresses: frozenset[str]

    @classmethod
    def from_url(cls, url: str) -> Endpoint:
        """The endpoint of an ``http(s)://host[:port]/...`` URL, its host resolved now (before :func:`seal`)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
            addresses = frozenset(str(info[4][0]) for info in infos)
        except OSError as e:  # not resolvable now: the address itself may still be an IP literal
            logger.warning("VLM server host %s does not resolve yet (%s)", parts.hostname, e)
            addresses = frozenset({parts.hostname})
        return cls(host=parts.hostname.lower(), port=port, addresses=addresses)

    def names(self, host: Any) -> bool:
        """Whether ``host`` (a name or an address, as an audit event carries it) is this endpoint's."""
        if isinstance(host, bytes):
            host = host.decode(errors="replace")
        return isinstance(host, str) and (host.lower() == self.host or host in self.addresses)

    def admits(self, host: Any, port: Any) -> bool:
        """Whether a connection to ``(host, port)`` goes to this endpoint."""
        return self.names(host) and _port(port) == self.port


_allowed: tuple[Endpoint, ...] = ()


def _port(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def html_source_context() -> Any:
    """An ``HtmlSourceContext`` under which no reference of an HTML document resolves to a local file."""
    from docvortex.document.contracts import HtmlSourceContext

    return HtmlSourceContext(source_uri=None, local_resource_root=None)


def seal(allowed_urls: Sequence[str] = ()) -> None:
    """Lock this process down for parsing (call once, before the first document): no IP network but the
    operator's endpoints, no SVG paths.

    Args:
        allowed_urls: URLs whose host and port stay reachable (the configured VLM server); resolved now.
    """
    global _allowed
    _allowed = tuple(Endpoint.from_url(url) for url in allowed_urls if url)
    sys.addaudithook(_refuse_network)
    _wrap_resvg()
    allowed = ", ".join(f"{e.host}:{e.port}" for e in _allowed) or "none"
    logger.info(
        "MinerU parse process sealed: no IP networking (endpoints allowed: %s), SVG references limited to data: "
        "and #ids",
        allowed,
    )


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
    if _allowed and _to_allowed(event, args):
        return
    _blocked.append(f"{event} {args[1:2]!r}"[:200])
    raise PermissionError(f"network access is disabled while parsing documents ({event})")


def _to_allowed(event: str, args: tuple[Any, ...]) -> bool:
    """Whether a network event goes to an allowed endpoint (the argument layouts are those of the audit events
    table in Python's documentation)."""
    if event in ("socket.connect", "socket.sendto"):
        address = args[1] if event == "socket.connect" else args[-1]
        if not isinstance(address, tuple) or len(address) < 2:
            return False
        host, port = address[0], address[1]
        return any(e.admits(host, port) for e in _allowed)
    if event in ("socket.getaddrinfo", "socket.gethostbyname"):
        return any(e.names(args[0]) for e in _allowed)
    if event == "http.client.connect":  # (self, host, port)
        return any(e.admits(args[1], args[2] or 80) for e in _allowed)
    if event == "urllib.Request":  # (url, data, headers, method)
        parts = urlsplit(str(args[0]))
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return parts.scheme in ("http", "https") and any(e.admits(parts.hostname, port) for e in _allowed)
    return False  # gethostbyaddr: nothing configured needs a reverse lookup


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
