"""The grounding parser on realistic DeepSeek-OCR outputs: boxes in pixels, clean markdown, honest warnings."""

from __future__ import annotations

import builtins

import pytest

from backends.deepseek.grounding import (
    GRID_MAX,
    clean_text,
    find_repetition,
    grid_to_pixels,
    parse_boxes,
    parse_page,
    strip_eos,
)
from shared.schema import Block, PageResult

EOS = "<｜end▁of▁sentence｜>"
W, H = 1224, 1584  # US Letter at 144 DPI: a non-square page, so x and y scale differently

PAGE = (
    "<|ref|>title<|/ref|><|det|>[[100, 50, 899, 90]]<|/det|>\n# Annual Report 2024\n\n"
    "<|ref|>sub_title<|/ref|><|det|>[[100, 100, 600, 120]]<|/det|>\n## 1. Results\n\n"
    "<|ref|>text<|/ref|><|det|>[[100, 130, 899, 300]]<|/det|>\n"
    "Revenue grew by 12\\(\\%\\) while costs fell.\n\n"
    "<|ref|>table<|/ref|><|det|>[[0, 320, 999, 600]]<|/det|>\n"
    "<table><tr><td>Q1</td><td>10</td></tr><tr><td>Q2</td><td>12</td></tr></table>\n\n"
    "<|ref|>table_caption<|/ref|><|det|>[[100, 605, 600, 620]]<|/det|>\nTable 1: Quarterly revenue\n\n"
    "<|ref|>equation<|/ref|><|det|>[[300, 630, 700, 680]]<|/det|>\n\\[\nE = mc^2 \\coloneqq x\n\\]\n\n"
    "<|ref|>image<|/ref|><|det|>[[100, 700, 500, 950]]<|/det|>\n\n"
    "<|ref|>image_caption<|/ref|><|det|>[[100, 955, 500, 990]]<|/det|>\n<center>Figure 1: Growth</center>\n" + EOS
)


def px(box: list[float]) -> list[float]:
    return [round(v, 2) for v in grid_to_pixels(tuple(box), W, H)]  # type: ignore[arg-type]


def test_multi_block_page_types_boxes_and_order():
    page = parse_page(PAGE, width=W, height=H, page_number=3, finish_reason="stop")
    assert not page.truncated and not page.looping and page.warnings == []
    assert [(b.type, b.label) for b in page.blocks] == [
        ("title", "title"),
        ("title", "sub_title"),
        ("text", "text"),
        ("table", "table"),
        ("caption", "table_caption"),
        ("formula", "equation"),
        ("figure", "image"),
        ("caption", "image_caption"),
    ]
    title = page.blocks[0]
    # pixel = v / 999 * side, with x scaled by the width and y by the height
    assert title.bbox == pytest.approx([100 / 999 * W, 50 / 999 * H, 899 / 999 * W, 90 / 999 * H], abs=0.01)
    assert title.bbox_norm == pytest.approx([100 / 999, 50 / 999, 899 / 999, 90 / 999], abs=1e-6)
    assert [b.bbox for b in page.blocks[2:4]] == [px([100, 130, 899, 300]), px([0, 320, 999, 600])]
    assert title.text == "Annual Report 2024" and page.blocks[1].text == "1. Results"
    assert page.blocks[5].text == "E = mc^2 := x"  # LaTeX kept without delimiters; \coloneqq fixed
    assert page.blocks[7].text == "Figure 1: Growth"
    for block in page.blocks:  # schema-valid and inside the page
        Block.model_validate(block.model_dump())
        assert 0 <= block.bbox[0] <= block.bbox[2] <= W and 0 <= block.bbox[1] <= block.bbox[3] <= H


def test_grid_edges_map_to_page_edges():
    text = "<|ref|>table<|/ref|><|det|>[[0, 0, 999, 999]]<|/det|>\n<table></table>" + EOS
    (block,) = parse_page(text, width=W, height=H, finish_reason="stop").blocks
    assert block.bbox == [0.0, 0.0, float(W), float(H)]
    assert block.bbox_norm == [0.0, 0.0, 1.0, 1.0]
    assert GRID_MAX == 999


def test_markdown_is_clean():
    md = parse_page(PAGE, width=W, height=H, page_number=3, finish_reason="stop").markdown
    for tag in ("<|ref|>", "<|/ref|>", "<|det|>", "<|/det|>", "[[", EOS, "<center>", "<|grounding|>"):
        assert tag not in md
    assert md.startswith("# Annual Report 2024\n\n## 1. Results\n\nRevenue grew by 12$\\%$ while costs fell.")
    assert "<table><tr><td>Q1</td><td>10</td></tr><tr><td>Q2</td><td>12</td></tr></table>" in md
    assert "$$\nE = mc^2 := x\n$$" in md
    assert "![figure](page-3-figure-1)" in md
    assert md.index("![figure](page-3-figure-1)") < md.index("Figure 1: Growth")
    assert "\n\n\n" not in md


def test_truncated_final_block_keeps_what_parsed():
    text = (
        "<|ref|>title<|/ref|><|det|>[[100, 50, 899, 90]]<|/det|>\n# Report\n\n"
        "<|ref|>text<|/ref|><|det|>[[100, 130, 899, 300]]<|/det|>\nFirst paragraph, complete.\n\n"
        "<|ref|>text<|/ref|><|det|>[[100, 31"
    )
    page = parse_page(text, width=W, height=H, finish_reason="length", output_tokens=8192)
    assert page.truncated and not page.looping
    assert [b.text for b in page.blocks] == ["Report", "First paragraph, complete."]
    assert page.markdown == "# Report\n\nFirst paragraph, complete."
    assert any(w.startswith("truncated:") and "8192 tokens" in w for w in page.warnings)
    assert any(w.startswith("malformed:") and "incomplete" in w for w in page.warnings)


def test_truncated_inside_content_keeps_partial_text():
    text = "<|ref|>text<|/ref|><|det|>[[100, 130, 899, 300]]<|/det|>\nThe quick brown fox jum"
    page = parse_page(text, width=W, height=H, finish_reason="length")
    assert page.truncated
    assert page.blocks[0].text == "The quick brown fox jum"


def test_unknown_finish_reason_uses_the_end_marker():
    text = "<|ref|>text<|/ref|><|det|>[[1, 2, 3, 4]]<|/det|>\nHello"
    assert parse_page(text, width=W, height=H).truncated
    assert not parse_page(text + EOS, width=W, height=H).truncated


def test_looping_page_is_cut_to_one_copy_and_flagged():
    unit = "<|ref|>text<|/ref|><|det|>[[100, 400, 900, 430]]<|/det|>\nThe committee approved the budget.\n\n"
    text = "<|ref|>title<|/ref|><|det|>[[100, 50, 899, 90]]<|/det|>\n# Minutes\n\n" + unit * 40 + unit[:37]
    page = parse_page(text, width=W, height=H, finish_reason="length", output_tokens=8192)
    assert page.truncated and page.looping
    loop = [w for w in page.warnings if w.startswith("looping:")]
    assert loop and "40 times" in loop[0] and "The committee approved the budget." in loop[0]
    assert page.markdown.count("The committee approved the budget.") == 1
    assert [b.type for b in page.blocks] == ["title", "text"]


def test_duplicate_blocks_are_dropped_even_when_finished():
    block = "<|ref|>text<|/ref|><|det|>[[100, 400, 900, 430]]<|/det|>\nSame line.\n\n"
    page = parse_page(block * 4 + EOS, width=W, height=H, finish_reason="stop")
    assert len(page.blocks) == 1 and page.looping
    assert "looping: 3 consecutive duplicate block(s) dropped" in page.warnings


def test_malformed_and_out_of_grid_boxes():
    text = (
        "<|ref|>text<|/ref|><|det|>[[10, 20, 30]]<|/det|>\nThree numbers only.\n\n"
        "<|ref|>text<|/ref|><|det|>[[-5, 10, 1005, 40]]<|/det|>\nToo wide.\n" + EOS
    )
    page = parse_page(text, width=W, height=H, finish_reason="stop")
    assert [b.text for b in page.blocks] == ["Too wide."]  # the 3-number box has no block...
    assert "Three numbers only." in page.markdown  # ...but its text is not lost
    assert page.blocks[0].bbox[0] == 0.0 and page.blocks[0].bbox[2] == float(W)  # clamped to the page
    assert any("unreadable or partial boxes" in w for w in page.warnings)
    assert any("outside the 0-999 grid" in w for w in page.warnings)


def test_boxes_are_never_evaluated(monkeypatch):
    def no_eval(*args, **kwargs):
        raise AssertionError("eval must not be called")

    monkeypatch.setattr(builtins, "eval", no_eval)
    text = "<|ref|>text<|/ref|><|det|>__import__('os').system('echo pwned')<|/det|>\nx" + EOS
    page = parse_page(text, width=W, height=H, finish_reason="stop")
    assert page.blocks == [] and page.markdown == "x"
    boxes, bad = parse_boxes("[[1, 2, 3, 4], [5.5, 6, 7, 8],]")
    assert boxes == [(1.0, 2.0, 3.0, 4.0), (5.5, 6.0, 7.0, 8.0)] and not bad


def test_locate_answer_gives_one_block_per_box():
    text = "<|ref|>Total<|/ref|><|det|>[[10, 10, 50, 20], [600, 700, 690, 720]]<|/det|>" + EOS
    page = parse_page(text, width=W, height=H, finish_reason="stop")
    assert [(b.type, b.label, b.text) for b in page.blocks] == [("other", "Total", "Total")] * 2
    assert page.blocks[1].bbox == px([600, 700, 690, 720])


def test_plain_output_has_markdown_and_no_blocks():
    page = parse_page("Hello world, \\(x^2\\) and\n\\[y\\]" + EOS, width=W, height=H, finish_reason="stop")
    assert page.blocks == [] and not page.grounded
    assert page.markdown == "Hello world, $x^2$ and\n$$\ny\n$$"


def test_text_before_first_box_is_kept_and_flagged():
    text = "Stray words\n<|ref|>text<|/ref|><|det|>[[1, 2, 3, 4]]<|/det|>\nBody" + EOS
    page = parse_page(text, width=W, height=H, finish_reason="stop")
    assert page.markdown == "Stray words\n\nBody"
    assert any(w.startswith("ungrounded:") for w in page.warnings)


def test_headers_and_footers_are_blocks_but_not_markdown():
    text = (
        "<|ref|>page_header<|/ref|><|det|>[[100, 10, 899, 20]]<|/det|>\nACME Corp\n"
        "<|ref|>text<|/ref|><|det|>[[100, 100, 899, 200]]<|/det|>\nBody text.\n"
        "<|ref|>page_footer<|/ref|><|det|>[[450, 980, 550, 995]]<|/det|>\n7\n" + EOS
    )
    page = parse_page(text, width=W, height=H, finish_reason="stop")
    assert [b.type for b in page.blocks] == ["header", "text", "footer"]
    assert page.markdown == "Body text."


def test_unknown_labels_become_other_with_label_kept():
    text = "<|ref|>code<|/ref|><|det|>[[1, 2, 3, 4]]<|/det|>\nprint(1)" + EOS
    (block,) = parse_page(text, width=W, height=H, finish_reason="stop").blocks
    assert (block.type, block.label, block.text) == ("other", "code", "print(1)")


def test_page_result_accepts_parser_output():
    page = parse_page(PAGE, width=W, height=H, finish_reason="stop")
    result = PageResult(index=0, width=W, height=H, markdown=page.markdown, blocks=page.blocks, warnings=page.warnings)
    wire = PageResult.model_validate_json(result.model_dump_json())  # what crosses replicas and HTTP
    assert page.blocks and wire.blocks == page.blocks and wire.markdown == page.markdown


def test_find_repetition():
    prose = (
        "DeepSeek-OCR maps a page to a few hundred vision tokens and decodes them back into text. "
        "Each block carries a box on a 0-999 grid; tables come back as HTML and formulas as LaTeX. "
    )
    assert find_repetition(prose * 1 + "The end.") is None
    looped = "intro " + "abc-def-" * 30 + "abc"
    rep = find_repetition(looped)
    assert rep is not None and rep.period == 8 and rep.repeats >= 30
    assert looped[: rep.cut].count("abc-def-") == 1
    assert find_repetition("ab" * 10) is None  # too short to call a loop


def test_strip_eos_and_clean_text():
    assert strip_eos("abc" + EOS + "junk") == ("abc", True)
    assert strip_eos("abc") == ("abc", False)
    assert clean_text("<|grounding|>a \\(b\\) <|ref|>") == "a $b$"
