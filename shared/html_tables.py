"""Tables in documents as trees: found in markdown (HTML or pipe tables) and parsed without extra dependencies.

What TEDS (:mod:`shared.metrics`) compares. Engines answer tables as HTML inside their markdown (DeepSeek-OCR,
MinerU, RapidOCR with its table model); references often hold GitHub pipe tables (the dev set's docling
references). Both become the same ``<table><tr><td>`` tree here. The standard library's HTML parser is used,
so the client-side metrics need no lxml.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

_HTML_TABLE = re.compile(r"<table\b.*?</table\s*>", re.IGNORECASE | re.DOTALL)
_PIPE_ROW = re.compile(r"^\s*\|.*\|\s*$")
_PIPE_SEPARATOR = re.compile(r"^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$")
_VOID = frozenset({"br", "img", "hr", "input", "meta", "link", "col", "wbr"})
IGNORED_TAGS = frozenset({"thead", "tbody", "tfoot", "html", "body"})
"""Wrappers TEDS ignores, as PubTabNet's reference implementation does (it strips thead and tbody)."""


@dataclass
class Node:
    """An element of a parsed table: tag, spans (cells only), cell content tokens, children."""

    tag: str
    colspan: int = 1
    rowspan: int = 1
    tokens: list[str] = field(default_factory=list)
    children: list[Node] = field(default_factory=list)

    def count(self) -> int:
        """Nodes below this one (the root excluded), the denominator PubTabNet's TEDS uses."""
        return sum(1 + c.count() for c in self.children)


class _TableBuilder(HTMLParser):
    """Builds :class:`Node` trees from HTML; inside a cell, text becomes characters and nested tags tokens."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("root")
        self.stack: list[Node] = [self.root]
        self.cell: Node | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in IGNORED_TAGS:
            return
        if self.cell is not None and tag not in ("td", "th", "tr", "table"):
            self.cell.tokens.append(f"<{tag}>")
            return
        if tag in _VOID:
            return
        values = dict(attrs)
        node = Node("td" if tag == "th" else tag)
        if node.tag == "td":
            node.colspan = _span(values.get("colspan"))
            node.rowspan = _span(values.get("rowspan"))
            self.cell = node
        self.stack[-1].children.append(node)
        self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        if tag in IGNORED_TAGS:
            return
        tag = "td" if tag == "th" else tag
        if self.cell is not None and tag not in ("td", "tr", "table"):
            if tag not in _VOID:
                self.cell.tokens.append(f"</{tag}>")
            return
        for depth in range(len(self.stack) - 1, 0, -1):  # close up to the matching open tag, if any
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                break
        if tag in ("td", "tr", "table"):
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.tokens.extend(" ".join(data.split()) if data.strip() else "")


def _span(value: str | None) -> int:
    try:
        return max(1, int(str(value).strip().strip('"')))
    except (TypeError, ValueError):
        return 1


def parse_table(table_html: str) -> Node | None:
    """The first ``<table>`` of ``table_html`` as a tree (cells with content tokens), or None when there is none."""
    builder = _TableBuilder()
    builder.feed(table_html)
    builder.close()
    for node in builder.root.children:
        if node.tag == "table":
            _strip_cell_whitespace(node)
            return node
    return None


def _strip_cell_whitespace(node: Node) -> None:
    if node.tag == "td":
        while node.tokens and node.tokens[0] == " ":
            node.tokens.pop(0)
        while node.tokens and node.tokens[-1] == " ":
            node.tokens.pop()
    for child in node.children:
        _strip_cell_whitespace(child)


def pipe_table_to_html(rows: list[str]) -> str:
    """A GitHub pipe table (its lines, the separator included) as ``<table>`` HTML, every cell a ``<td>``."""
    out = ["<table>"]
    for row in rows:
        if _PIPE_SEPARATOR.match(row):
            continue
        body = row.strip()
        body = body[1:] if body.startswith("|") else body
        body = body[:-1] if body.endswith("|") and not body.endswith("\\|") else body
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", body)]
        out.append("<tr>" + "".join(f"<td>{html.escape(c, quote=False)}</td>" for c in cells) + "</tr>")
    out.append("</table>")
    return "".join(out)


def tables_in_markdown(markdown: str) -> list[str]:
    """Every table of a markdown document, as HTML, in document order: HTML tables and pipe tables alike.

    A pipe table is a run of ``| ... |`` lines containing a separator row (``| --- | :-: |``).
    """
    found: list[tuple[int, str]] = [(m.start(), m.group(0)) for m in _HTML_TABLE.finditer(markdown or "")]
    text = _HTML_TABLE.sub(lambda m: "\n" * m.group(0).count("\n"), markdown or "")
    lines = text.split("\n")
    offsets = []
    position = 0
    for line in lines:
        offsets.append(position)
        position += len(line) + 1
    i = 0
    while i < len(lines):
        if _PIPE_ROW.match(lines[i]):
            j = i
            while j < len(lines) and _PIPE_ROW.match(lines[j]):
                j += 1
            block = lines[i:j]
            if len(block) >= 2 and any(_PIPE_SEPARATOR.match(r) for r in block[1:3]):
                found.append((offsets[i], pipe_table_to_html(block)))
            i = j
        else:
            i += 1
    return [t for _, t in sorted(found, key=lambda f: f[0])]
