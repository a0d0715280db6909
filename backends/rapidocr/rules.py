"""Text rules the layout model needs help with: page numbers (CDLA has no class for them) and captions.

Both are narrow on purpose — a rule that fires on body text costs text accuracy — and both are applied only
where the page's geometry agrees (page numbers in the top or bottom band; captions next to a table or figure).
"""

from __future__ import annotations

import re

_PAGE_NUMBER = re.compile(
    r"^\s*(?:(?:page|p\.|seite|pág\.?|página)\s*)?[-–—(\[]?\s*"
    r"(?:\d{1,4}|[ivxlcdm]{1,7})"
    r"(?:\s*(?:/|of|von|de)\s*\d{1,4})?\s*[-–—)\]]?\s*$",
    re.IGNORECASE,
)
_CAPTION = re.compile(r"^\s*(?:table|tab\.|figure|fig\.|chart|exhibit|tabelle|abbildung|abb\.)\s*[\dIVX]+", re.I)
_SUBCAPTION = re.compile(r"^\s*\((?:[a-h]|i{1,3}|iv|v|vi)\)\s+\w", re.I)


def is_page_number(text: str) -> bool:
    """Whether ``text`` alone on a line reads as a page number: ``7``, ``- 7 -``, ``Page 7 of 9``, ``xii``."""
    return bool(_PAGE_NUMBER.match(text or ""))


def is_caption(text: str) -> bool:
    """Whether ``text`` starts like a table or figure caption: ``Table 1.``, ``Figure 7-26.``, ``Fig. 3``."""
    return bool(_CAPTION.match(text or ""))


def is_any_caption(text: str) -> bool:
    """A caption or a sub-figure's caption (``(a) South American coati``): text under a picture, not in it."""
    return is_caption(text) or bool(_SUBCAPTION.match(text or ""))
