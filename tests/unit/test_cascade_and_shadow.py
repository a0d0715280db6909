"""Cascade rules and merging, and the shadow sampler's bounds - pure policy, no Ray."""

from __future__ import annotations

from orchestrator.serving.cascade import (
    CascadePolicy,
    EscalationRules,
    escalation_rules,
    merge_cascade,
    plan_escalations,
)
from orchestrator.serving.shadow import ShadowSampler, ShadowSettings
from shared.boxes import make_block
from shared.schema import ComputeUsage, DocumentInfo, Line, ModelInfo, OCRResponse, PageResult, PageUsage, Usage

W, H = 1000, 1000


def page(index: int, blocks=(), warnings=(), tokens=None) -> PageResult:
    return PageResult(
        index=index,
        width=W,
        height=H,
        markdown="\n\n".join(b.text for b in blocks),
        blocks=list(blocks),
        warnings=list(warnings),
        usage=PageUsage(output_tokens=tokens),
    )


def text(t: str, score: float | None = 0.99, type_: str = "text"):
    lines = [Line(text=t, bbox=[0, 0, 10, 10], score=score)] if score is not None else None
    return make_block(type_, t, [100, 100, 900, 200], width=W, height=H, score=score, lines=lines)


def response(backend: str, pages, media_type="application/pdf", cpu=1.0) -> OCRResponse:
    return OCRResponse(
        request_id="r",
        backend=backend,
        model=ModelInfo(id=backend, engine="e"),
        document=DocumentInfo(
            name="d",
            media_type=media_type,
            size_bytes=1,
            sha256="0",
            page_count=4,
            pages_processed=[p.index for p in pages],
        ),
        markdown="",
        pages=list(pages),
        usage=Usage(pages=len(pages), compute=ComputeUsage(cpu_seconds=cpu)),
    )


def test_each_rule_fires_on_its_page_and_only_there():
    rules = EscalationRules(no_text_layer=True)
    assert escalation_rules(page(0, [text("fine")]), rules, has_text_layer=True) == []
    assert escalation_rules(page(0, []), rules) == ["no_text"]
    assert escalation_rules(page(0, [text("blurry", score=0.4)]), rules) == ["low_confidence"]
    assert escalation_rules(page(0, [text("<table></table>", type_="table")]), rules) == ["table"]
    assert escalation_rules(page(0, [text("x^2", type_="formula")]), rules) == ["formula"]
    assert escalation_rules(page(0, [text("a")], warnings=["looping: repeats"]), rules) == ["looping"]
    assert escalation_rules(page(0, [text("a")], warnings=["truncated: hit the limit"]), rules) == ["truncated"]
    assert escalation_rules(page(0, [text("a")]), rules, has_text_layer=False) == ["no_text_layer"]
    assert escalation_rules(page(0, [text("unscored", score=None)]), rules) == []  # no scores: not judged
    off = EscalationRules(no_text=False, min_mean_confidence=None, tables=False)
    assert escalation_rules(page(0, [text("<table></table>", score=0.1, type_="table")]), off) == []


def test_the_columns_rule_fires_on_paragraphs_set_side_by_side():
    words = "one two three four five six seven eight nine"

    def para(x0: int, y0: int, x1: int = 0, y1: int = 0):
        return make_block("text", words, [x0, y0, x1 or x0 + 400, y1 or y0 + 200], width=W, height=H, score=0.99)

    two_columns = page(0, [para(50, 100), para(550, 120), para(50, 400), para(550, 420)])
    one_column = page(0, [para(50, 100, 950), para(50, 400, 950), para(50, 700, 950)])
    labels = page(0, [make_block("text", "Left", [50, 100, 300, 150], width=W, height=H), para(550, 100)])
    rules = EscalationRules(columns=True)
    assert escalation_rules(two_columns, rules) == ["columns"]
    assert escalation_rules(one_column, rules) == [] and escalation_rules(labels, rules) == []
    assert escalation_rules(two_columns, EscalationRules()) == []  # off unless a policy asks for it
    assert "columns" in rules.enabled() and "columns" not in EscalationRules().enabled()


def test_plan_and_merge_keep_easy_pages_and_replace_escalated_ones():
    policy = CascadePolicy(first="cheap", then="strong")
    first = response("cheap", [page(0, [text("easy")]), page(1, []), page(2, [text("t", type_="table")])])
    plan = plan_escalations(first, policy, pages_without_text_layer=[1])
    assert plan == {1: ["no_text"], 2: ["table"]}
    second = response(
        "strong", [page(1, [text("read by strong")], tokens=7), page(2, [text("table!")], tokens=3)], cpu=5
    )
    merged = merge_cascade("cascade", policy, first, plan, second)
    assert merged.backend == "cascade"
    assert [(p.index, p.backend) for p in merged.pages] == [(0, "cheap"), (1, "strong"), (2, "strong")]
    assert merged.markdown == "easy\n\nread by strong\n\ntable!"
    assert [(e.page, e.rules, e.answered_by) for e in merged.escalations] == [
        (1, ["no_text"], "strong"),
        (2, ["table"], "strong"),
    ]
    assert merged.usage.pages == 3 and merged.usage.output_tokens == 10
    assert merged.usage.compute.cpu_seconds == 6.0  # both backends' compute was spent


def test_a_failed_stronger_backend_leaves_the_first_answers_and_says_so():
    policy = CascadePolicy(first="cheap", then="strong")
    first = response("cheap", [page(0, [])])
    merged = merge_cascade("c", policy, first, {0: ["no_text"]}, None, failure="overloaded")
    assert merged.pages[0].backend == "cheap" and merged.escalations[0].answered_by == "cheap"
    assert "failed (overloaded)" in merged.warnings[0]


def test_shadow_sampler_samples_bounds_and_backs_off():
    now = [0.0]
    draws = iter([0.1, 0.9, 0.1, 0.1, 0.1, 0.1])
    sampler = ShadowSampler(
        ShadowSettings(fraction=0.5, pairs={"a": "b"}, max_in_flight=2, backoff_s=10),
        rng=lambda: next(draws),
        clock=lambda: now[0],
    )
    assert sampler.pick("zzz") == (None, "unpaired")
    assert sampler.pick("a") == ("b", "sent")
    assert sampler.pick("a") == (None, "not_sampled")
    assert sampler.pick("a") == ("b", "sent")
    assert sampler.pick("a") == (None, "dropped")  # two in flight already
    sampler.done("b", busy=True)
    assert sampler.pick("a") == (None, "backoff")
    now[0] = 11.0
    assert sampler.pick("a") == ("b", "sent")
