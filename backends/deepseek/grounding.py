"""DeepSeek-OCR's grounding output -> schema blocks, clean markdown and page warnings. Pure: no torch, no model.

The model writes each layout block as a header and its content::

    <|ref|>title<|/ref|><|det|>[[95, 51, 560, 82]]<|/det|>
    # Annual report
    <|ref|>table<|/ref|><|det|>[[80, 300, 920, 610]]<|/det|>
    <table><tr><td>...</td></tr></table>

Boxes are on a 0-999 grid relative to the input page (pixel = v / 999 x width, or height). The official scripts
read the boxes with Python's eval builtin; here numbers are read with a regular expression, so model output can
never run
as code. Real outputs are messy - a page can stop mid-block at the token limit, loop on a phrase until the
limit, or emit a box with three numbers - so the parser keeps everything that parsed, drops what did not, and
says what it dropped in the page's warnings rather than failing the page.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from shared.boxes import make_block, scale_box
from shared.schema import Block

logger = logging.getLogger(__name__)

GRID_MAX = 999
"""Largest grid coordinate: pixel = v / GRID_MAX x page side."""

EOS_MARKERS: tuple[str, ...] = ("<｜end▁of▁sentence｜>",)
"""End-of-sequence tokens as they appear in text decoded with special tokens kept."""

LABEL_TYPES: dict[str, str] = {
    "text": "text",
    "title": "title",
    "sub_title": "title",
    "subtitle": "title",
    "image": "figure",
    "figure": "figure",
    "chart": "figure",
    "picture": "figure",
    "image_caption": "caption",
    "figure_caption": "caption",
    "chart_caption": "caption",
    "table_caption": "caption",
    "table_footnote": "caption",
    "figure_footnote": "caption",
    "table": "table",
    "equation": "formula",
    "formula": "formula",
    "isolate_formula": "formula",
    "interline_equation": "formula",
    "list": "list",
    "list_item": "list",
    "header": "header",
    "page_header": "header",
    "footer": "footer",
    "page_footer": "footer",
    "page_number": "footer",
    "footnote": "text",
    "page_footnote": "text",
    "reference": "text",
    "abstract": "text",
    "author": "text",
}
"""DeepSeek-OCR labels -> the schema's block types; anything else becomes ``other`` with its label kept."""

MARKDOWN_EXCLUDED_TYPES = frozenset({"header", "footer"})
"""Block types kept as blocks (with boxes) but left out of the markdown: running heads and page numbers are not
document content, and references used for accuracy runs leave them out too."""

_HEADER = re.compile(
    r"<\|ref\|>((?:(?!<\|/?ref\|>).)*?)<\|/ref\|>\s*<\|det\|>((?:(?!<\|/?det\|>|<\|ref\|>).)*?)<\|/det\|>",
    re.S,
)
_NUM = r"\s*(-?\d+(?:\.\d+)?)\s*"
_BOX = re.compile(r"\[" + ",".join([_NUM] * 4) + r"\]")
_BOX_LEFTOVER = re.compile(r"[\[\]\s,]")
_CONTROL = re.compile(r"<\|/?(?:ref|det|grounding)\|>|<\|[a-z_/]+\|>|<｜[^｜<>\n]{1,40}｜>")
_DANGLING = re.compile(r"<\|(?:/?ref|/?det)\|>")
_DISPLAY_MATH = re.compile(r"\\\[(.*?)\\\]", re.S)
_INLINE_MATH = re.compile(r"\\\((.*?)\\\)", re.S)
_CENTER = re.compile(r"</?center>", re.I)
_HEADING = re.compile(r"^\s*#{1,6}\s*")
_BLANKS = re.compile(r"\n{3,}")
_LATEX_FIXES: tuple[tuple[str, str], ...] = (("\\coloneqq", ":="), ("\\eqqcolon", "=:"))


@dataclass
class Repetition:
    """A repeated tail: the text from ``cut`` on repeats the ``period`` characters before it."""

    cut: int
    period: int
    repeats: int
    unit: str


@dataclass
class ParsedPage:
    """What one page's output turned into.

    Attributes:
        blocks: Schema blocks in reading order (pixel boxes, clamped to the page).
        markdown: Clean markdown of the page (no tags, figures as image references).
        warnings: What was dropped or suspicious, each starting with a keyword ("truncated:", "looping:",
            "malformed:", "ungrounded:").
        truncated: The page hit the token limit before its end-of-sequence token.
        looping: The page repeated itself (and the repeats were dropped).
        grounded: Whether any grounding header was found.
    """

    blocks: list[Block] = field(default_factory=list)
    markdown: str = ""
    warnings: list[str] = field(default_factory=list)
    truncated: bool = False
    looping: bool = False
    grounded: bool = False


def strip_eos(text: str) -> tuple[str, bool]:
    """``text`` without end-of-sequence markers (and anything after the first one), and whether one was there."""
    cut = min((i for i in (text.find(m) for m in EOS_MARKERS) if i >= 0), default=-1)
    if cut < 0:
        return text, False
    return text[:cut], True


def find_repetition(
    text: str, *, min_repeats: int = 3, min_span: int = 100, max_period: int = 4000
) -> Repetition | None:
    """The repeated tail of ``text``, if its end is one unit repeated at least ``min_repeats`` times.

    Looks for the shortest period p such that the last characters each equal the one p positions earlier, over a
    span of at least ``min_span`` characters and ``min_repeats`` periods. The tail may stop mid-unit (generation
    was cut there). Linear in the text for each period tried; periods stop at the first hit.

    Args:
        text: Model output (tags included; loops often repeat whole blocks).
        min_repeats: Fewest copies of the unit that count as a loop.
        min_span: Fewest characters the repeated tail must cover.
        max_period: Longest unit considered, in characters.

    Returns:
        Where to cut so that exactly one copy of the unit remains, or None.
    """
    n = len(text)
    for p in range(1, min(max_period, n // min_repeats) + 1):
        i = n - 1
        while i - p >= 0 and text[i] == text[i - p]:
            i -= 1
        run = n - 1 - i
        span = run + p
        if span >= min_span and span >= min_repeats * p:
            cut = n - run
            return Repetition(cut=cut, period=p, repeats=span // p, unit=text[cut - p : cut])
    return None


def grid_to_pixels(box: tuple[float, float, float, float], width: int, height: int) -> list[float]:
    """A 0-999 grid box as page pixels: x / 999 x width, y / 999 x height."""
    return scale_box(box, sx=width / GRID_MAX, sy=height / GRID_MAX)


def parse_boxes(det: str) -> tuple[list[tuple[float, float, float, float]], bool]:
    """Boxes in a ``<|det|>`` body and whether anything else was in it (a malformed or cut box).

    ``[[x0, y0, x1, y1], [...]]`` is read number by number; no ``eval``, no JSON (the model sometimes writes
    trailing commas or stops mid-list).
    """
    boxes = [tuple(float(v) for v in m.groups()) for m in _BOX.finditer(det)]
    leftover = _BOX_LEFTOVER.sub("", _BOX.sub("", det))
    return boxes, bool(leftover) or not boxes  # type: ignore[return-value]


def clean_text(text: str) -> str:
    """Model text as markdown: control tokens removed, LaTeX delimiters made markdown-friendly."""
    text = _CONTROL.sub("", text)
    for old, new in _LATEX_FIXES:
        text = text.replace(old, new)
    text = _DISPLAY_MATH.sub(lambda m: "$$\n" + m.group(1).strip() + "\n$$", text)
    text = _INLINE_MATH.sub(lambda m: "$" + m.group(1).strip() + "$", text)
    return text.strip()


def _formula_latex(content: str) -> str:
    body = _CONTROL.sub("", content).strip()
    for old, new in _LATEX_FIXES:
        body = body.replace(old, new)
    m = _DISPLAY_MATH.fullmatch(body) or re.fullmatch(r"\$\$(.*?)\$\$", body, re.S)
    return (m.group(1) if m else body).strip()


def _block_markdown(type_: str, label: str, text: str, figure_ref: str | None) -> str:
    if type_ == "figure":
        ref = f"![figure]({figure_ref})"
        return ref + (f"\n\n{text}" if text else "")
    if type_ == "title":
        level = "##" if label in {"sub_title", "subtitle"} else "#"
        return f"{level} {text}" if text else ""
    if type_ == "formula":
        return f"$$\n{text}\n$$" if text else ""
    return text


@dataclass
class _Header:
    label: str
    det: str
    start: int
    end: int


def parse_page(
    text: str,
    *,
    width: int,
    height: int,
    page_number: int = 1,
    finish_reason: str | None = None,
    output_tokens: int | None = None,
) -> ParsedPage:
    """Parse one page's model output into blocks, markdown and warnings.

    Args:
        text: The decoded output, special tokens kept (``skip_special_tokens=False``).
        width: Width in pixels of the page image the model saw (boxes are relative to it).
        height: Height in pixels of that image.
        page_number: 1-based page number, used in figure references (``page-N-figure-K``).
        finish_reason: ``stop`` (end token reached), ``length`` (token limit hit) or None when unknown; when
            None the end-of-sequence marker in ``text`` decides.
        output_tokens: Generated token count, quoted in the truncation warning.

    Returns:
        The parsed page; never raises on malformed output.
    """
    out = ParsedPage()
    body, saw_eos = strip_eos(text)
    out.truncated = finish_reason == "length" or (finish_reason is None and not saw_eos)
    if out.truncated:
        limit = f" ({output_tokens} tokens)" if output_tokens else ""
        out.warnings.append(
            f"truncated: the output hit the token limit{limit} before the end-of-sequence token; "
            "the page may be incomplete"
        )
        rep = find_repetition(body)
        if rep is not None:
            out.looping = True
            snippet = _CONTROL.sub("", _HEADER.sub(" ", rep.unit)).strip().replace("\n", " ")[:60] or rep.unit[:60]
            out.warnings.append(
                f"looping: the output repeats a {rep.period}-character unit {rep.repeats} times "
                f"('{snippet}'); the repeats were dropped"
            )
            body = body[: rep.cut]

    headers = [_Header(m.group(1).strip(), m.group(2), m.start(), m.end()) for m in _HEADER.finditer(body)]
    out.grounded = bool(headers)
    if not headers:
        leftover = body
        if _DANGLING.search(leftover):
            cut = _DANGLING.search(leftover).start()  # type: ignore[union-attr]
            out.warnings.append("malformed: an incomplete grounding tag was dropped")
            leftover = leftover[:cut]
        out.markdown = _BLANKS.sub("\n\n", clean_text(leftover))
        return out

    preamble = clean_text(body[: headers[0].start])
    parts: list[str] = [preamble] if preamble else []
    if preamble:
        out.warnings.append(f"ungrounded: {len(preamble)} characters before the first box kept in markdown only")

    clamped = malformed = 0
    figures = 0
    previous: tuple | None = None
    repeated = 0
    for n, header in enumerate(headers):
        content = body[header.end : headers[n + 1].start if n + 1 < len(headers) else len(body)]
        dangling = _DANGLING.search(content)
        if dangling:
            content = content[: dangling.start()]
            out.warnings.append(
                "malformed: an incomplete grounding tag after block "
                f"{n + 1} was dropped" + (" (cut by the token limit)" if out.truncated else "")
            )
        boxes, bad = parse_boxes(header.det)
        label = header.label
        type_ = LABEL_TYPES.get(label.lower(), "other")
        key = (label, tuple(boxes), content.strip())
        if key == previous:
            repeated += 1
            continue
        previous = key
        if bad:
            malformed += 1
        if type_ == "title":
            text_ = _HEADING.sub("", clean_text(content))
        elif type_ == "formula":
            text_ = _formula_latex(content)
        elif type_ == "caption":
            text_ = clean_text(_CENTER.sub("", content))
        else:
            text_ = clean_text(content)
        if type_ == "other" and not text_ and label.lower() not in LABEL_TYPES:
            text_ = label  # 'locate' answers: the label is the text that was found
        figure_ref = None
        if type_ == "figure":
            figures += 1
            figure_ref = f"page-{page_number}-figure-{figures}"
        if type_ not in MARKDOWN_EXCLUDED_TYPES:
            md = _block_markdown(type_, label.lower(), text_, figure_ref)
            if md:
                parts.append(md)
        if not boxes:
            continue
        for box in boxes:
            if any(v < 0 or v > GRID_MAX for v in box):
                clamped += 1
        pixel_boxes = [grid_to_pixels(b, width, height) for b in boxes]
        if text_ and len(pixel_boxes) > 1 and type_ != "other":
            xs0, ys0, xs1, ys1 = zip(*pixel_boxes, strict=False)
            pixel_boxes = [[min(xs0), min(ys0), max(xs1), max(ys1)]]
        for pb in pixel_boxes:
            out.blocks.append(
                make_block(
                    type_,
                    text_ if type_ != "figure" else (text_ or figure_ref or ""),
                    pb,
                    width=width,
                    height=height,
                    label=label,
                )
            )

    if malformed:
        out.warnings.append(f"malformed: {malformed} block(s) had unreadable or partial boxes (kept what parsed)")
    if clamped:
        out.warnings.append(f"malformed: {clamped} box(es) outside the 0-{GRID_MAX} grid were clamped to the page")
    if repeated:
        out.looping = True
        out.warnings.append(f"looping: {repeated} consecutive duplicate block(s) dropped")
    out.markdown = _BLANKS.sub("\n\n", "\n\n".join(p for p in parts if p)).strip()
    return out
