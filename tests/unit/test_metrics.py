"""Metrics against values worked out by hand, and normalisation as OmniDocBench does it."""

from __future__ import annotations

import pytest

from shared.metrics import (
    EditScore,
    agreement,
    cer,
    dataset_ned,
    edit_score,
    ned,
    normalize_text,
    wer,
    word_list,
    word_recall,
)


def test_normalisation_keeps_only_word_characters_and_cjk():
    assert normalize_text("Hello, World!  12.5%") == "HelloWorld125"
    assert normalize_text("中文，测试。") == "中文测试"
    assert normalize_text("Größe: café") == "Größecafé"


def test_normalisation_strips_markdown_tables_formulas_images_and_fences():
    md = (
        "# Title\n\n![a chart](fig1.png)\n\n<table><tr><td>a</td><td>b</td></tr></table>\n\n"
        "```python\nx = 1\n```\n\n$$E = mc^2$$\n\n| c | d |\n|---|---|\n| 1 | 2 |"
    )
    # image reference gone (alt text too), tags gone but cell text kept, fence markers gone, code kept
    assert normalize_text(md) == "Titleabx1Emc2cd12"


def test_ned_by_hand():
    assert ned("abc", "abc") == 0.0
    assert ned("abcd", "abce") == pytest.approx(1 / 4)  # one substitution over 4
    assert ned("ab", "abcd") == pytest.approx(2 / 4)  # two insertions over max length 4
    assert ned("", "") == 0.0 and ned("x", "") == 1.0
    assert ned("中文测试", "中文测验") == pytest.approx(1 / 4)
    assert ned("a, b. c!", "abc") == 0.0  # punctuation and spaces do not count


def test_dataset_ned_weighs_by_length():
    scores = [edit_score("abcd", "abce"), edit_score("x" * 96, "x" * 96)]
    assert scores[0] == EditScore(distance=1, length=4)
    assert dataset_ned(scores) == pytest.approx(1 / 100)  # not the mean of 0.25 and 0
    assert dataset_ned([]) == 0.0


def test_cer_and_wer_by_hand():
    assert cer("hello world", "hello world") == 0.0
    assert cer("hallo world", "hello world") == pytest.approx(1 / 11)
    assert wer("the cat sat", "the cat sat down") == pytest.approx(1 / 4)
    assert wer("a  b\n c", "a b c") == 0.0  # whitespace is collapsed
    assert cer("", "") == 0.0 and cer("x", "") == 1.0


def test_word_recall_counts_lost_words_with_multiplicity_and_ignores_order_and_markup():
    assert word_list("# The <td>Quick</td> fox's ![figure](#x) tail") == ["the", "quick", "fox", "s", "tail"]
    assert word_recall("b a c", "a b c") == 1.0  # order is NED's business, not this one's
    assert word_recall("a b", "a a b b") == 0.5  # each occurrence counts
    assert word_recall("<table><tr><td>a</td><td>b</td></tr></table>", ["a", "b"]) == 1.0
    assert word_recall("![figure](#page-1-figure-1)", "every word gone") == 0.0
    assert word_recall("", "") == 1.0 and word_recall("anything", []) == 1.0


def test_agreement_is_one_minus_ned():
    assert agreement("same text", "same text") == 1.0
    assert agreement("abcd", "abce") == pytest.approx(0.75)


# --- Tables: TEDS and TEDS-structure, worked out by hand ------------------------------------------------------

from shared.html_tables import parse_table, tables_in_markdown  # noqa: E402
from shared.metrics import dataset_teds, document_teds, teds  # noqa: E402

GRID = "<table><tr><td>a</td><td>b</td></tr><tr><td>c</td><td>d</td></tr></table>"  # 2 tr + 4 td = 6 nodes


def test_teds_identical_tables_score_one_and_wrappers_are_ignored():
    assert teds(GRID, GRID) == 1.0
    wrapped = "<html><body><table><thead><tr><th>a</th><th>b</th></tr></thead>"
    wrapped += "<tbody><tr><td>c</td><td>d</td></tr></tbody></table></body></html>"
    assert teds(wrapped, GRID) == 1.0  # thead/tbody stripped, th read as td (PubTabNet)


def test_teds_one_wrong_cell_costs_its_normalised_edit_distance():
    # 'd' -> 'x': rename cost = Levenshtein('d', 'x') / 1 = 1; TEDS = 1 - 1/6
    assert teds(GRID.replace(">d<", ">x<"), GRID) == pytest.approx(1 - 1 / 6)
    # 'd' -> 'dd': rename cost 1/2; TEDS = 1 - 0.5/6
    assert teds(GRID.replace(">d<", ">dd<"), GRID) == pytest.approx(1 - 0.5 / 6)
    # structure only: contents ignored
    assert teds(GRID.replace(">d<", ">x<"), GRID, structure_only=True) == 1.0


def test_teds_missing_row_and_spans_by_hand():
    one_row = "<table><tr><td>a</td><td>b</td></tr></table>"  # 3 nodes; 3 deletions (tr + 2 td) to the grid
    assert teds(one_row, GRID) == pytest.approx(1 - 3 / 6)
    merged = '<table><tr><td colspan="2">a</td></tr><tr><td>c</td><td>d</td></tr></table>'  # 5 nodes
    # the colspan cell cannot be renamed into either plain cell (cost 1): one rename + one deletion, over 6
    assert teds(merged, GRID, structure_only=True) == pytest.approx(1 - 2 / 6)


def test_teds_without_a_table_is_zero():
    assert teds("", GRID) == 0.0 and teds("no table here", GRID) == 0.0 and teds(GRID, "") == 0.0


def test_pipe_tables_and_html_tables_are_found_in_document_order():
    md = "intro\n\n| h1 | h2 |\n| - | :-: |\n| 1 | 2 |\n\ntext\n\n<table><tr><td>x</td></tr></table>\n"
    tables = tables_in_markdown(md)
    assert tables == [
        "<table><tr><td>h1</td><td>h2</td></tr><tr><td>1</td><td>2</td></tr></table>",
        "<table><tr><td>x</td></tr></table>",
    ]
    assert parse_table(tables[0]).count() == 6


def test_document_teds_pairs_tables_and_counts_missed_ones_as_zero():
    ref = f"{GRID}\n\n<table><tr><td>z</td></tr></table>"
    score = document_teds(GRID, ref)  # the second reference table was missed
    assert score is not None and score.reference_tables == 2 and score.matched == 1
    assert score.teds == pytest.approx((1.0 + 0.0) / 2)
    assert document_teds("anything", "no tables in the reference") is None
    piped = "| a | b |\n|---|---|\n| c | d |"
    assert document_teds(GRID, piped).teds == 1.0  # HTML prediction against a pipe-table reference
    assert dataset_teds([score, None, document_teds(GRID, GRID)]) == pytest.approx((0.5 * 2 + 1.0) / 3)
