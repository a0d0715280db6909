"""Cascade routing: a cheap backend first, a stronger one only for the pages whose first answer says so.

Most pages of most documents are easy: a CPU engine reads them as well as a GPU model, at a fraction of the cost.
A cascade policy (named in ``router.cascades``; clients send its name as the backend) runs the document through
``first``, checks every page against its rules, and sends only the pages that meet one to ``then``. Two rules are
decided before ``first`` runs: a page without a text layer (``no_text_layer``) goes straight to ``then``, and a
document ``first`` refuses or fails (``first_failed``) goes to ``then`` whole. The answer is one ``OCRResponse``
in the usual schema: each page from whichever backend answered it (``pages[].backend``), and ``escalations``
saying which pages went up, by which rules.

Pure policy and merging here (no Ray): the router feeds it responses and makes the calls.
"""

from __future__ import annotations

import statistics
from collections.abc import Collection

from pydantic import BaseModel, ConfigDict, Field

from shared.merge import replace_pages
from shared.schema import Escalation, OCRResponse, PageResult

RULES = (
    "no_text",
    "low_confidence",
    "table",
    "formula",
    "looping",
    "truncated",
    "columns",
    "no_text_layer",
    "first_failed",
)
"""Every rule a cascade can escalate on, as named in ``escalations[].rules`` and the metrics."""


class EscalationRules(BaseModel):
    """When a page goes to the stronger backend. Each rule is checked on the first backend's page."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    no_text: bool = Field(default=True, description="Escalate a page where the first backend found no text.")
    min_mean_confidence: float | None = Field(
        default=0.85,
        ge=0.0,
        le=1.0,
        description="Escalate a page whose mean block/line confidence is below this (pages without scores are "
        "not judged by it); null turns the rule off.",
    )
    tables: bool = Field(default=True, description="Escalate a page with a table block.")
    formulas: bool = Field(default=True, description="Escalate a page with a formula block.")
    looping: bool = Field(default=True, description="Escalate a page the first backend flagged as looping.")
    truncated: bool = Field(default=True, description="Escalate a page the first backend flagged as truncated.")
    columns: bool = Field(
        default=False,
        description="Escalate a page whose first answer sets paragraphs side by side (columns: two or more pairs "
        "of text blocks next to each other), for a first backend that reads columns out of order (a fast tier "
        "that reads text layers: README, 'The CPU profile's cascade, by quality').",
    )
    no_text_layer: bool = Field(
        default=False,
        description="Send a page without a text layer (a scan, an image) straight to the stronger backend: the "
        "first one never sees it (right when the first backend reads text layers, as a fast tier does).",
    )
    first_failed: bool = Field(
        default=True,
        description="Send the whole document to the stronger backend when the first one refuses or fails it.",
    )

    def enabled(self) -> list[str]:
        """The rules this policy checks, by their names in ``RULES``."""
        flags = {
            "no_text": self.no_text,
            "low_confidence": self.min_mean_confidence is not None,
            "table": self.tables,
            "formula": self.formulas,
            "looping": self.looping,
            "truncated": self.truncated,
            "columns": self.columns,
            "no_text_layer": self.no_text_layer,
            "first_failed": self.first_failed,
        }
        return [rule for rule in RULES if flags[rule]]


class CascadePolicy(BaseModel):
    """One cascade: which backend answers first, which one takes the pages that need it, and when."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    first: str = Field(description="The cheap backend every page goes to first.")
    then: str = Field(description="The stronger backend that re-reads the pages a rule picks.")
    rules: EscalationRules = Field(default_factory=EscalationRules, description="When a page is escalated.")


def mean_confidence(page: PageResult) -> float | None:
    """Mean confidence of a page's lines (or blocks, where the engine gives no lines); None without scores."""
    scores = [line.score for b in page.blocks for line in (b.lines or []) if line.score is not None]
    if not scores:
        scores = [b.score for b in page.blocks if b.score is not None]
    return statistics.fmean(scores) if scores else None


def escalation_rules(page: PageResult, rules: EscalationRules, *, has_text_layer: bool | None = None) -> list[str]:
    """The rules ``page`` meets (empty: the first backend's page stands).

    Args:
        page: The first backend's page.
        rules: The policy's rules.
        has_text_layer: Whether the source page has a text layer (PDFs), None when not known or not a PDF.
    """
    met: list[str] = []
    has_text = bool(page.markdown.strip()) or any(b.text.strip() for b in page.blocks)
    if rules.no_text and not has_text:
        met.append("no_text")
    confidence = mean_confidence(page)
    if rules.min_mean_confidence is not None and confidence is not None and confidence < rules.min_mean_confidence:
        met.append("low_confidence")
    types = {b.type for b in page.blocks}
    if rules.tables and "table" in types:
        met.append("table")
    if rules.formulas and "formula" in types:
        met.append("formula")
    if rules.looping and any(w.startswith("looping") for w in page.warnings):
        met.append("looping")
    if rules.truncated and any(w.startswith("truncated") for w in page.warnings):
        met.append("truncated")
    if rules.columns and side_by_side(page) >= 2:
        met.append("columns")
    if rules.no_text_layer and has_text_layer is False:
        met.append("no_text_layer")
    return met


def side_by_side(page: PageResult) -> int:
    """Pairs of paragraphs on a page set next to each other: text blocks of 8+ words, each narrower than 60 % of
    the page, overlapping vertically (by 30 % of the shorter) with no horizontal overlap. Two or more: columns."""
    paragraphs = [
        b.bbox_norm
        for b in page.blocks
        if b.type in ("text", "title") and b.bbox_norm[2] - b.bbox_norm[0] < 0.6 and len(b.text.split()) >= 8
    ]
    pairs = 0
    for i, a in enumerate(paragraphs):
        for b in paragraphs[i + 1 :]:
            shorter = min(a[3] - a[1], b[3] - b[1])
            overlap = min(a[3], b[3]) - max(a[1], b[1])
            if shorter > 0 and overlap > 0.3 * shorter and (a[2] <= b[0] or b[2] <= a[0]):
                pairs += 1
    return pairs


def plan_escalations(
    first: OCRResponse, policy: CascadePolicy, *, pages_without_text_layer: Collection[int] = ()
) -> dict[int, list[str]]:
    """Page index -> the rules it met, for the pages of ``first`` that go to ``policy.then``."""
    plan = {}
    for page in first.pages:
        layer = None if first.document.media_type != "application/pdf" else page.index not in pages_without_text_layer
        met = escalation_rules(page, policy.rules, has_text_layer=layer)
        if met:
            plan[page.index] = met
    return plan


def merge_cascade(
    name: str,
    policy: CascadePolicy,
    first: OCRResponse | None,
    plan: dict[int, list[str]],
    second: OCRResponse | None,
    *,
    failure: str | None = None,
) -> OCRResponse:
    """One response: ``first``'s pages, those in ``plan`` replaced by (or added from) ``second``'s.

    Args:
        name: The policy's name (the response's ``backend``).
        policy: The policy.
        first: The cheap backend's answer for the pages it was given; None when it was given none (every page
            went straight up) or failed.
        plan: Pages sent up, with their rules.
        second: The stronger backend's answer for those pages; None when nothing was escalated, or when it
            failed (``failure`` says why) and ``first`` answered every page: those pages are then its answers.
        failure: Why ``second`` is missing although pages were escalated.
    """
    if first is None and second is None:
        raise ValueError("a cascade answer needs at least one backend's answer")
    if first is not None:
        for page in first.pages:
            page.backend = policy.first
    answered: set[int] = set()
    if second is not None:
        for page in second.pages:
            page.backend = policy.then
        answered = {p.index for p in second.pages}
    if first is None:
        assert second is not None
        merged = second.model_copy(deep=True)
    elif second is None:
        merged = first.model_copy(deep=True)
    else:
        merged = replace_pages(first, second)
    merged.backend = name
    merged.escalations = [
        Escalation(
            page=index,
            rules=rules,
            from_backend=policy.first,
            to_backend=policy.then,
            answered_by=policy.then if index in answered else policy.first,
        )
        for index, rules in sorted(plan.items())
    ]
    if failure:
        merged.warnings.append(
            f"cascade {name}: {len(plan)} page(s) should have gone to {policy.then!r}, which failed ({failure}); "
            f"they are {policy.first!r}'s answers"
        )
    return merged
