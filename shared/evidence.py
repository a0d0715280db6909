"""Evidence for extracted fields: for each leaf value of an answer, where on the OCR'd pages it was read.

Pure (rapidfuzz, the schema): given an extraction's JSON and the pages' OCR (blocks with their lines or table
cells and boxes), every string or number leaf is looked for in the page text, best match first:

1. **exact** - the value as printed, on word boundaries;
2. **normalised** - the same after folding case, whitespace and punctuation; numbers compared as numbers
   whatever their format (``1,234.50``, ``1.234,50``, ``1 234.5``, a currency symbol or code beside them all equal
   ``1234.5``); dates compared as dates (``2026-03-14`` = ``14/03/2026`` = ``03/14/2026`` = ``14 March 2026`` =
   ``Mar 14, 2026``); a currency code against its symbol (``EUR`` = ``€``);
3. **fuzzy** - rapidfuzz's partial ratio of the normalised texts at or above a threshold, for text values only (a
   number that is "nearly" another number is a different number);
4. **not_found** - flagged, never dropped: the answer keeps the value, the evidence says nothing on the pages
   supports it.

Places are OCR lines and table cells where the engine reports them (RapidOCR), else blocks (DeepSeek, MinerU); a
whole block is also a place, for values printed over several lines. Among equally good places the tightest wins;
when the same value is printed several times, a leaf prefers a place on the page its sibling fields were found on,
then a place no earlier field took, then the place nearest its siblings (the same row of a line item), then
reading order.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from shared.schema import BlockRef, EvidenceMatch, FieldEvidence, PageResult, SourceBox

FUZZY_THRESHOLD = 85.0
"""Lowest rapidfuzz partial ratio (0-100) that counts as a fuzzy match."""

MIN_FUZZY_CHARS = 4
"""Shorter text values are matched exactly or normalised only (a fuzzy two-letter match means nothing)."""

CURRENCY_SYMBOLS: dict[str, tuple[str, ...]] = {
    "EUR": ("€",),
    "USD": ("$", "US$"),
    "GBP": ("£",),
    "JPY": ("¥", "円"),
    "CNY": ("¥", "元"),
    "INR": ("₹",),
    "KRW": ("₩",),
    "CHF": ("Fr.",),
}
"""Symbols printed for an ISO 4217 code (a code is also found as itself)."""

MONTHS = {
    name: i + 1
    for i, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ]
    )
    for name in names
}

_MONTH = "|".join(sorted(MONTHS, key=len, reverse=True))
_DATE_PATTERNS = (
    (re.compile(r"(?<!\d)(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?!\d)"), "ymd"),
    (re.compile(r"(?<!\d)(\d{1,2})[-/.](\d{1,2})[-/.](\d{4}|\d{2})(?!\d)"), "dmy|mdy"),
    (re.compile(rf"(?<!\d)(\d{{1,2}})(?:st|nd|rd|th)?\.?\s+({_MONTH})\.?,?\s+(\d{{4}})(?!\d)", re.I), "d_month_y"),
    (re.compile(rf"\b({_MONTH})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})(?!\d)", re.I), "month_d_y"),
)
_NUMBER = re.compile(r"(?<![\d.,])[-−]?\d[\d.,'’\u00a0\u202f]*\d(?!\d)|(?<![\d.,])[-−]?\d(?!\d)")
"""A number as printed (OCR may glue it to its label: 'Subtotal4,750.00'), thin or no-break spaces inside."""
_SPACED_NUMBER = re.compile(r"(?<![\d.,])[-−]?\d{1,3}(?: \d{3})+(?:[.,]\d{1,4})?(?!\d)")
"""A number with plain spaces between its thousands (1 234.50), read besides its parts."""
_CODES = "|".join((*CURRENCY_SYMBOLS, "CAD", "AUD", "SEK", "NOK", "DKK", "PLN", "CZK", "BRL", "MXN"))
_CURRENCY_AFFIX = re.compile(rf"^(?:[€$£¥₹₩]|US\$|(?:{_CODES})\b)\s*|\s*(?:[€$£¥₹₩]|\b(?:{_CODES}))$")
_SPACES = re.compile(r"\s+")
_EDGE_PUNCT = re.compile(r"^[\W_]+|[\W_]+$")
_TAG = re.compile(r"<[^>]+>")
_PUNCT = re.compile(r"[^\w\s]")


@dataclass(frozen=True)
class Place:
    """A piece of page text where a value may have been read.

    Attributes:
        page: 0-based page index.
        block: Index of the block in the page.
        text: Its text.
        bbox: Its box in page pixels.
        tight: A line or a table cell (True) rather than a whole block.
        order: Reading-order position over all places, for ties.
    """

    page: int
    block: int
    text: str
    bbox: tuple[float, float, float, float]
    tight: bool
    order: int


@dataclass(frozen=True)
class Hit:
    place: Place
    match: EvidenceMatch
    score: float

    def rank(self) -> tuple[int, float, int, int]:
        kind = {"exact": 0, "normalised": 1, "fuzzy": 2}[self.match]
        return kind, -round(self.score, 4), 0 if self.place.tight else 1, len(self.place.text)


def leaves(data: Any, pointer: str = "") -> Iterator[tuple[str, Any]]:
    """Every string or number leaf of a JSON value with its JSON pointer (nulls, booleans and empty strings have
    nothing to find on a page and are left out)."""
    if isinstance(data, dict):
        for key, value in data.items():
            escaped = str(key).replace("~", "~0").replace("/", "~1")
            yield from leaves(value, f"{pointer}/{escaped}")
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from leaves(value, f"{pointer}/{i}")
    elif isinstance(data, bool) or data is None:
        return
    elif isinstance(data, int | float) or (isinstance(data, str) and data.strip()):
        yield pointer, data


def places(pages: Sequence[PageResult]) -> list[Place]:
    """Lines and table cells of every block (where the engine reports them), and every block, in reading order."""
    out: list[Place] = []
    for page in pages:
        for j, block in enumerate(page.blocks):
            text = _TAG.sub(" ", block.text) if block.type == "table" else block.text
            for cell in block.cells or []:
                if cell.text.strip():
                    out.append(Place(page.index, j, cell.text, _box(cell.bbox), True, len(out)))
            for line in block.lines or []:
                if line.text.strip():
                    out.append(Place(page.index, j, line.text, _box(line.bbox), True, len(out)))
            if text.strip():
                out.append(Place(page.index, j, text, _box(block.bbox), False, len(out)))
    return out


def _box(b: Sequence[float]) -> tuple[float, float, float, float]:
    return float(b[0]), float(b[1]), float(b[2]), float(b[3])


def normalise(text: str) -> str:
    """Case folded, whitespace collapsed, punctuation trimmed from the ends."""
    return _EDGE_PUNCT.sub("", _SPACES.sub(" ", text.casefold()).strip())


def _loose(text: str) -> str:
    """Punctuation dropped too (an address printed over two lines without the answer's comma)."""
    return _SPACES.sub(" ", _PUNCT.sub(" ", text)).strip()


def _contains(haystack: str, needle: str) -> bool:
    if not needle:
        return False
    return re.search(rf"(?<!\w){re.escape(needle)}(?!\w)", haystack) is not None


def numbers(text: str) -> set[Decimal]:
    """Every number ``text`` may print, under each reading of its separators (``1,234`` is 1234 or 1.234)."""
    found: set[Decimal] = set()
    for pattern in (_NUMBER, _SPACED_NUMBER):
        for m in pattern.finditer(text):
            found |= _readings(m.group(0))
    return found


def _readings(token: str) -> set[Decimal]:
    sign = "-" if token[0] in "-−" else ""
    body = re.sub(r"['’\s]", "", token.lstrip("-−"))
    commas, dots = body.count(","), body.count(".")
    candidates: list[str] = []
    if commas and dots:
        decimal = "," if body.rfind(",") > body.rfind(".") else "."
        thousands = "." if decimal == "," else ","
        candidates.append(body.replace(thousands, "").replace(decimal, "."))
    elif commas or dots:
        sep = "," if commas else "."
        head, _, tail = body.rpartition(sep)
        if body.count(sep) > 1:
            candidates.append(body.replace(sep, ""))  # only thousands separators
        else:
            candidates.append(f"{head}.{tail}")  # a decimal point or comma
            if len(tail) == 3:
                candidates.append(head + tail)  # or a thousands separator
    else:
        candidates.append(body)
    out = set()
    for c in candidates:
        try:
            out.add(Decimal(sign + c))
        except InvalidOperation:
            continue
    return out


def number_value(value: Any) -> Decimal | None:
    """The number an extracted value states: a JSON number, or a string that is one number (currency allowed)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return Decimal(str(value))
    stripped = _CURRENCY_AFFIX.sub("", str(value).strip()).strip()
    if not stripped or not (_NUMBER.fullmatch(stripped) or _SPACED_NUMBER.fullmatch(stripped)):
        return None
    readings = _readings(stripped)
    plain = stripped.replace(",", "")  # what an extraction schema writes: a plain decimal
    try:
        return Decimal(plain) if Decimal(plain) in readings else min(readings)
    except (InvalidOperation, ValueError):
        return None


def dates(text: str) -> set[dt.date]:
    """Every date ``text`` may print (day-month and month-day readings of ambiguous numeric dates)."""
    found: set[dt.date] = set()
    for pattern, kind in _DATE_PATTERNS:
        for m in pattern.finditer(text):
            a, b, c = m.groups()
            if kind == "ymd":
                options = [(int(a), int(b), int(c))]
            elif kind == "dmy|mdy":
                year = int(c) + (2000 if len(c) == 2 else 0)
                options = [(year, int(b), int(a)), (year, int(a), int(b))]
            elif kind == "d_month_y":
                options = [(int(c), MONTHS[b.lower()], int(a))]
            else:
                options = [(int(c), MONTHS[a.lower()], int(b))]
            for y, mo, d in options:
                try:
                    found.add(dt.date(y, mo, d))
                except ValueError:
                    continue
    return found


def _match(value: Any, place: Place, *, threshold: float) -> Hit | None:
    text = place.text
    raw = str(value)
    if _contains(text, raw.strip()):
        return Hit(place, "exact", 1.0)
    number = number_value(value)
    value_dates = dates(raw) if isinstance(value, str) else set()
    if value_dates:
        return Hit(place, "normalised", 1.0) if value_dates & dates(text) else None
    if number is not None:
        return Hit(place, "normalised", 1.0) if number in numbers(text) else None
    norm_value, norm_text = normalise(raw), normalise(text)
    loose_value, loose_text = _loose(norm_value), _loose(norm_text)
    if _contains(norm_text, norm_value) or (loose_value and _contains(loose_text, loose_value)):
        return Hit(place, "normalised", 1.0)
    code = raw.strip().upper()
    if code in CURRENCY_SYMBOLS and any(symbol in text for symbol in CURRENCY_SYMBOLS[code]):
        return Hit(place, "normalised", 1.0)
    if len(norm_value) >= MIN_FUZZY_CHARS:
        from rapidfuzz import fuzz

        score = fuzz.partial_ratio(norm_value, norm_text)
        if score >= threshold:
            return Hit(place, "fuzzy", round(score / 100.0, 4))
    return None


def _centre_y(place: Place) -> float:
    return (place.bbox[1] + place.bbox[3]) / 2


def find_evidence(data: Any, pages: Sequence[PageResult], *, threshold: float = FUZZY_THRESHOLD) -> list[FieldEvidence]:
    """Evidence for every string or number leaf of ``data`` on ``pages``, in the answer's order.

    Args:
        data: An extraction's answer (JSON: objects, arrays, scalars).
        pages: The OCR'd pages the answer was read from (blocks with lines or cells where the engine has them).
        threshold: Lowest rapidfuzz partial ratio (0-100) for a fuzzy match.

    Returns:
        One entry per leaf; a value found nowhere has ``match: not_found`` (flagged, never left out).
    """
    by_index = {p.index: p for p in pages}
    candidates = places(pages)
    found: list[tuple[str, Any, list[Hit]]] = []
    for pointer, value in leaves(data):
        hits = [h for h in (_match(value, p, threshold=threshold) for p in candidates) if h is not None]
        best = min((h.rank() for h in hits), default=None)
        found.append((pointer, value, [h for h in hits if h.rank() == best]))
    chosen: dict[str, Hit] = {pointer: hits[0] for pointer, _, hits in found if len(hits) == 1}
    taken = {(h.place.page, h.place.order) for h in chosen.values()}
    for pointer, _, hits in found:  # ties: the siblings' page, a place no one took, nearest them, reading order
        if len(hits) <= 1:
            continue
        parent = pointer.rsplit("/", 1)[0]
        near = [h for p, h in chosen.items() if p.rsplit("/", 1)[0] == parent and p != pointer]

        def key(h: Hit, near: list[Hit] = near) -> tuple[int, bool, float, int]:
            same_page = [n for n in near if n.place.page == h.place.page]
            distance = min((abs(_centre_y(n.place) - _centre_y(h.place)) for n in same_page), default=0.0)
            return (0 if same_page or not near else 1, (h.place.page, h.place.order) in taken, distance, h.place.order)

        pick = min(hits, key=key)
        chosen[pointer] = pick
        taken.add((pick.place.page, pick.place.order))
    out = []
    for pointer, value, hits in found:
        hit = chosen.get(pointer)
        if hit is None:
            out.append(FieldEvidence(path=pointer, value=value, match="not_found", score=0.0))
            continue
        page = by_index[hit.place.page]
        box = _evidence_box(hit, page, value, threshold=threshold)
        out.append(
            FieldEvidence(
                path=pointer,
                value=value,
                match=hit.match,
                score=hit.score,
                page=page.index,
                block_refs=[BlockRef(page=page.index, block=hit.place.block)],
                boxes=[_source_box(page, box)],
                text=hit.place.text,
                candidates=len(hits),
            )
        )
    return out


def _evidence_box(hit: Hit, page: PageResult, value: Any, *, threshold: float) -> tuple[float, float, float, float]:
    """The place's box; for a whole block with lines, the union of the lines that hold part of the value."""
    if hit.place.tight:
        return hit.place.bbox
    block = page.blocks[hit.place.block]
    norm_value = normalise(str(value))
    parts = [
        _box(line.bbox)
        for line in block.lines or []
        if normalise(line.text) and (normalise(line.text) in norm_value or norm_value in normalise(line.text))
    ]
    if not parts:
        return hit.place.bbox
    return min(b[0] for b in parts), min(b[1] for b in parts), max(b[2] for b in parts), max(b[3] for b in parts)


def _source_box(page: PageResult, box: tuple[float, float, float, float]) -> SourceBox:
    w, h = page.width or 1, page.height or 1
    norm = [box[0] / w, box[1] / h, box[2] / w, box[3] / h] if page.width and page.height else [0.0] * 4
    return SourceBox(
        page=page.index,
        bbox=[round(v, 2) for v in box],
        bbox_norm=[round(min(max(v, 0.0), 1.0), 6) for v in norm],
    )
