"""Text accuracy metrics, computed the way OmniDocBench computes its text edit distance.

Normalisation (OmniDocBench ``clean_string`` plus its markdown clean-up): markdown images, HTML tags and code
fences are stripped, then every character that is not a word character (``\\w``, Unicode-aware) or CJK is
removed — whitespace and punctuation included. The normalised edit distance (NED) of a page is the Levenshtein
distance over the longer length; a dataset's NED is the sum of distances over the sum of those lengths, as
OmniDocBench averages. Edit distances come from ``rapidfuzz``; CER and WER from ``jiwer``.

Tables are scored the way PubTabNet and OmniDocBench score them: TEDS, the tree-edit-distance similarity of two
``<table>`` trees (``thead``/``tbody`` ignored; a cell renamed into another cell costs the normalised edit
distance of their contents; anything else renamed, inserted or deleted costs 1), normalised by the larger tree's
node count; TEDS-structure is the same with cell contents ignored. The tree edit distance is ``apted``'s (the
implementation PubTabNet's reference code uses).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import jiwer
from rapidfuzz.distance import Levenshtein

from shared.html_tables import Node, parse_table, tables_in_markdown

_MD_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_HTML_TAG = re.compile(r"<[^>]{1,200}>")
_FENCE = re.compile(r"^\s*```[^\n]*$", re.MULTILINE)
_NOT_WORD_OR_CJK = re.compile(r"[^\w\u4e00-\u9fff]")
_WORD_RUN = re.compile(r"\w+")


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


def word_list(text: str) -> list[str]:
    """The words of a text for counting: markup stripped, lower-cased, runs of word characters (CJK included)."""
    return _WORD_RUN.findall(strip_markup(text or "").lower())


def word_recall(prediction: str | Iterable[str], reference: str | Iterable[str]) -> float:
    """Share of the reference's words found in the prediction, counted with multiplicity (1.0: none missing).

    Order is ignored: this measures what a reading *lost* (a page whose text left the markdown), where NED
    mixes losses with reading order. Either side may be a text or an already split word list (``word_list``).
    """
    ref = Counter(word_list(reference) if isinstance(reference, str) else reference)
    total = sum(ref.values())
    if not total:
        return 1.0
    pred = Counter(word_list(prediction) if isinstance(prediction, str) else prediction)
    return sum(min(n, pred[w]) for w, n in ref.items()) / total


def agreement(a: str, b: str) -> float:
    """1 - NED between two backends' texts: 1 means they read the same thing."""
    return 1.0 - ned(a, b)


# --- Tables: TEDS and TEDS-structure -------------------------------------------------------------------------


def _apted_tree(node: Node, structure_only: bool) -> Any:
    from apted.helpers import Tree

    tree = Tree((node.tag, node.colspan, node.rowspan, () if structure_only else tuple(node.tokens)))
    tree.children = [_apted_tree(child, structure_only) for child in node.children]
    return tree


def _ted_config() -> Any:
    from apted import Config

    class _TEDSConfig(Config):  # PubTabNet's CustomConfig
        valuecls = float

        def rename(self, node1: Any, node2: Any) -> float:
            tag1, colspan1, rowspan1, content1 = node1.name
            tag2, colspan2, rowspan2, content2 = node2.name
            if tag1 != tag2 or colspan1 != colspan2 or rowspan1 != rowspan2:
                return 1.0
            if tag1 == "td" and (content1 or content2):
                return float(Levenshtein.normalized_distance(list(content1), list(content2)))
            return 0.0

    return _TEDSConfig()


def teds(prediction_html: str, reference_html: str, *, structure_only: bool = False) -> float:
    """Tree-edit-distance similarity of two HTML tables, 0 (nothing alike) to 1 (identical).

    ``1 - TED(pred, ref) / max(nodes(pred), nodes(ref))`` over the first ``<table>`` of each (PubTabNet). A side
    without a table scores 0.

    Args:
        prediction_html: The predicted table's HTML.
        reference_html: The reference table's HTML.
        structure_only: TEDS-structure: compare tags and spans only, not cell contents.

    Returns:
        The similarity.
    """
    from apted import APTED

    pred, ref = parse_table(prediction_html or ""), parse_table(reference_html or "")
    if pred is None or ref is None:
        return 0.0
    nodes = max(pred.count(), ref.count())
    if nodes == 0:
        return 1.0
    distance = APTED(
        _apted_tree(pred, structure_only), _apted_tree(ref, structure_only), _ted_config()
    ).compute_edit_distance()
    return max(0.0, 1.0 - float(distance) / nodes)


@dataclass(frozen=True)
class TableScore:
    """TEDS of a document's tables against its reference's, each reference table matched to one predicted."""

    teds: float
    """Mean over the reference's tables (an unmatched one counts 0)."""
    teds_structure: float
    """The same with cell contents ignored."""
    reference_tables: int
    predicted_tables: int
    matched: int


def document_teds(prediction_markdown: str, reference_markdown: str) -> TableScore | None:
    """Table accuracy of a whole document: its tables (HTML or pipe tables) against the reference's.

    Tables are paired greedily, best TEDS first, each used once; a reference table left without a partner
    (the engine missed it) scores 0, extra predicted tables are not penalised beyond that (as OmniDocBench's
    table matching). None when the reference has no table: there is nothing to score.

    Args:
        prediction_markdown: The engine's markdown.
        reference_markdown: The reference markdown.

    Returns:
        The scores, or None for a reference without tables.
    """
    refs = tables_in_markdown(reference_markdown)
    if not refs:
        return None
    preds = tables_in_markdown(prediction_markdown)
    pairs = sorted(
        ((teds(p, r), ri, pi) for ri, r in enumerate(refs) for pi, p in enumerate(preds)),
        key=lambda x: -x[0],
    )
    used_r: set[int] = set()
    used_p: set[int] = set()
    full = [0.0] * len(refs)
    structure = [0.0] * len(refs)
    for score, ri, pi in pairs:
        if ri in used_r or pi in used_p:
            continue
        used_r.add(ri)
        used_p.add(pi)
        full[ri] = score
        structure[ri] = teds(preds[pi], refs[ri], structure_only=True)
    return TableScore(
        teds=sum(full) / len(refs),
        teds_structure=sum(structure) / len(refs),
        reference_tables=len(refs),
        predicted_tables=len(preds),
        matched=len(used_r),
    )


def dataset_teds(scores: Iterable[TableScore | None]) -> float | None:
    """Mean TEDS over every reference table of a dataset (documents weighted by their table count)."""
    total = count = 0.0
    for s in scores:
        if s is not None:
            total += s.teds * s.reference_tables
            count += s.reference_tables
    return total / count if count else None
