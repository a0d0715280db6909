"""Page-range expressions as people type them: ``"1-3,7"``, ``"5-"``, ``"-2"``, ``"all"``.

1-based and inclusive on the way in (as every PDF viewer shows pages), 0-based indices on the way out.
"""

from __future__ import annotations

import re

from shared.errors import OCRError

_PART = re.compile(r"^\s*(\d*)\s*(-)?\s*(\d*)\s*$")
ACCEPTED = "1-based pages and ranges separated by commas, e.g. '1-3,7', '5-' (to the end), '-2' (first two), or 'all'"


def parse_page_range(expr: str | None, page_count: int) -> list[int]:
    """0-based page indices selected by ``expr`` in a document of ``page_count`` pages, in document order.

    Raises:
        OCRError: ``invalid_page_range`` when the expression is malformed or names no page of the document.
    """
    if expr is None or expr.strip().lower() in ("", "all", "*"):
        return list(range(page_count))
    chosen: set[int] = set()
    for part in expr.split(","):
        m = _PART.match(part)
        if not m or (not m.group(1) and not m.group(3)):
            raise OCRError(
                "invalid_page_range", f"cannot read page range {expr!r} (at {part.strip()!r})", accepted=ACCEPTED
            )
        first_s, dash, last_s = m.groups()
        if not dash and last_s:  # "7" is matched as first "" + last "7"? no: regex puts digits in group 1
            first_s = last_s
        first = int(first_s) if first_s else 1
        last = int(last_s) if last_s else (page_count if dash else first)
        if first < 1 or last < first:
            raise OCRError(
                "invalid_page_range", f"page range {part.strip()!r} is empty or starts below 1", accepted=ACCEPTED
            )
        if first > page_count:
            raise OCRError(
                "invalid_page_range",
                f"page range {part.strip()!r} is beyond the document's {page_count} page(s)",
                accepted=f"pages 1-{page_count}",
            )
        chosen.update(range(first - 1, min(last, page_count)))
    return sorted(chosen)
