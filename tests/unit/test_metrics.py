"""Metrics against values worked out by hand, and normalisation as OmniDocBench does it."""

from __future__ import annotations

import pytest

from shared.metrics import EditScore, agreement, cer, dataset_ned, edit_score, ned, normalize_text, wer


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


def test_agreement_is_one_minus_ned():
    assert agreement("same text", "same text") == 1.0
    assert agreement("abcd", "abce") == pytest.approx(0.75)
