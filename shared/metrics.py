"""Text accuracy metrics, computed the way OmniDocBench computes its text edit distance.

Normalisation (OmniDocBench ``clean_string`` plus its markdown clean-up): markdown images, HTML tags and code
fences are stripped, then every character that is not a word character (``\\w``, Unicode-aware) or CJK is
removed — whitespace and punctuation included. The normalised edit distance (NED) of a page is the Levenshtein
distance over the longer length; a dataset's NED is the sum of distances over the sum of those lengths, as
OmniDocBench averages. Edit distances come from ``rapidfuzz``; CER and WER from ``jiwer``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import jiwer
from rapidfuzz.distance import Levenshtein

_MD_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_HTML_TAG = re.compile(r"<[^>]{1,200}>")
_FENCE = re.compile(r"^\s*```[^\n]*$", re.MULTILINE)
_NOT_WORD_OR_CJK = re.compile(r"[^\w\u4e00-\u9fff]")


def strip_markup(text: str) -> str:
    """Markdown/HTML clean-up before comparison: images, tags and fences go; their text content stays."""
    text = _MD_IMAGE.sub("", text)
    text = _HTML_TAG.sub(" ", text)
    text = _FENCE.sub("", text)
    return text


def normalize_text(text: str) -> str:
    """OmniDocBench normalisation: markup stripped, then only word characters and CJK kept."""
    return _NOT_WORD_OR_CJK.sub("", strip_markup(text or ""))


@dataclass(frozen=True)
class EditScore:
    """Edit distance of one prediction against its reference, after normalisation."""

    distance: int
    length: int  # max(len(pred), len(ref)), the denominator

    @property
    def ned(self) -> float:
        return self.distance / self.length if self.length else 0.0


def edit_score(prediction: str, reference: str) -> EditScore:
    """Levenshtein distance between normalised texts, and the denominator of its NED."""
    p, r = normalize_text(prediction), normalize_text(reference)
    return EditScore(distance=Levenshtein.distance(p, r), length=max(len(p), len(r)))


def ned(prediction: str, reference: str) -> float:
    """Normalised edit distance 0 (identical) to 1 (nothing in common), OmniDocBench style."""
    return edit_score(prediction, reference).ned


def dataset_ned(scores: Iterable[EditScore]) -> float:
    """Sum of distances over sum of lengths (long pages weigh more, as in OmniDocBench)."""
    total_d = total_l = 0
    for s in scores:
        total_d += s.distance
        total_l += s.length
    return total_d / total_l if total_l else 0.0


def _words(text: str) -> str:
    """Markup stripped, whitespace collapsed: the text CER/WER compare."""
    return " ".join(strip_markup(text or "").split())


def cer(prediction: str, reference: str) -> float:
    """Character error rate against the reference (jiwer); 0 when both are empty."""
    ref, hyp = _words(reference), _words(prediction)
    if not ref:
        return 0.0 if not hyp else 1.0
    return float(jiwer.cer(ref, hyp))


def wer(prediction: str, reference: str) -> float:
    """Word error rate against the reference (jiwer); 0 when both are empty."""
    ref, hyp = _words(reference), _words(prediction)
    if not ref:
        return 0.0 if not hyp else 1.0
    return float(jiwer.wer(ref, hyp))


def agreement(a: str, b: str) -> float:
    """1 - NED between two backends' texts: 1 means they read the same thing."""
    return 1.0 - ned(a, b)
