"""Chunks for retrieval (shared.chunking) on generated responses: sections, heading paths, tables whole, limits,
overlap, blocks and boxes - and the invariants of tests.support.chunk_checks on many random documents."""

from __future__ import annotations

import random

import pytest
from pydantic import ValidationError

from shared.chunking import chunk_response, split_elements
from shared.requests import ChunkingOptions
from shared.schema import OCRResponse
from shared.tokens import BUNDLED_TOKENIZERS, bundled_counter
from tests.support.chunk_checks import check_chunks
from tests.support.responses import make_response as _response

COUNTER = bundled_counter("cl100k_base")
WORDS = (
    "serving engines compare pages table router replica throughput accuracy markdown boxes scans invoice total "
    "harbour cranes lighthouse keeper winter nights ledger column reading order layout model"
).split()


def _text(n: int, rng: random.Random, *, sentence: int = 12) -> str:
    words = [rng.choice(WORDS) for _ in range(n)]
    for k in range(sentence - 1, n - 1, sentence):
        words[k] += "."
    return " ".join(words).capitalize() + "."


def _table(rows: int, rng: random.Random) -> str:
    cells = "".join(
        "<tr>" + "".join(f"<td>{rng.choice(WORDS)} {rng.randint(0, 999)}</td>" for _ in range(4)) + "</tr>"
        for _ in range(rows)
    )
    return f"<table>{cells}</table>"


def _block(kind: str, rng: random.Random) -> tuple[str, str, str]:
    if kind == "title":
        text = " ".join(rng.choice(WORDS) for _ in range(3)).title()
        return "title", text, f"{'#' * rng.randint(1, 3)} {text}"
    if kind == "table":
        table = _table(rng.choice([2, 4, 40]), rng)
        return "table", table, table
    if kind == "figure":
        return "figure", "", f"![figure](#page-1-figure-{rng.randint(1, 9)})"
    if kind == "header":
        return "header", "Running Head Of The Journal", ""
    text = _text(rng.choice([5, 30, 120, 700]), rng)
    return "text", text, text


def _random_response(seed: int) -> OCRResponse:
    rng = random.Random(seed)
    kinds = ["text"] * 6 + ["title"] * 2 + ["table", "figure", "header"]
    return _response([[_block(rng.choice(kinds), rng) for _ in range(rng.randint(0, 12))] for _ in range(3)])


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize(
    "options",
    [
        ChunkingOptions(chunking="layout"),
        ChunkingOptions(chunking="layout", chunk_tokens=64),
        ChunkingOptions(chunking="tokens", chunk_tokens=128, chunk_overlap=32),
        ChunkingOptions(chunking="tokens", chunk_tokens=40, chunk_overlap=0),
    ],
    ids=["layout-512", "layout-64", "tokens-128-32", "tokens-40"],
)
def test_invariants_hold_on_random_documents(seed, options):
    response = _random_response(seed)
    chunks, info = chunk_response(response, options, COUNTER)
    assert info.mode == options.chunking and info.tokenizer == "cl100k_base"
    check_chunks(response, chunks, info, COUNTER)


def test_layout_makes_one_chunk_per_section_with_its_heading_path():
    response = _response(
        [
            [
                ("header", "Journal of Serving", ""),
                ("text", "Preamble before any heading.", "Preamble before any heading."),
                ("title", "Guide", "# Guide"),
                ("title", "Install", "## Install"),
                ("text", "Run the installer.", "Run the installer."),
                ("title", "Configure", "## Configure"),
                ("text", "Edit the file.", "Edit the file."),
            ],
            [
                ("title", "Tuning", "### Tuning"),
                ("text", "Raise the batch size.", "Raise the batch size."),
                ("title", "Reference", "# Reference"),
                ("text", "Every option.", "Every option."),
            ],
        ]
    )
    chunks, info = chunk_response(response, ChunkingOptions(chunking="layout"), COUNTER)
    check_chunks(response, chunks, info, COUNTER)
    assert [c.heading_path for c in chunks] == [
        [],
        ["Guide", "Install"],  # a heading with nothing under it opens the next section
        ["Guide", "Configure"],
        ["Guide", "Configure", "Tuning"],
        ["Reference"],
    ]
    assert chunks[1].text == "# Guide\n\n## Install\n\nRun the installer."
    assert [[(r.page, r.block) for r in c.block_refs] for c in chunks] == [
        [(0, 1)],  # the running head (block 0) is in no chunk: the markdown leaves it out
        [(0, 2), (0, 3), (0, 4)],
        [(0, 5), (0, 6)],
        [(1, 0), (1, 1)],
        [(1, 2), (1, 3)],
    ]
    assert chunks[3].pages == [1] and chunks[3].boxes[0].bbox == response.pages[1].blocks[0].bbox


def test_a_section_longer_than_the_limit_is_cut_between_paragraphs_and_keeps_its_path():
    rng = random.Random(1)
    paragraphs = [_text(40, rng) for _ in range(6)]
    response = _response([[("title", "Long", "# Long"), *[("text", p, p) for p in paragraphs]]])
    chunks, info = chunk_response(response, ChunkingOptions(chunking="layout", chunk_tokens=120), COUNTER)
    check_chunks(response, chunks, info, COUNTER)
    assert len(chunks) > 1 and all(c.heading_path == ["Long"] for c in chunks)
    for c in chunks:  # cut between paragraphs: each chunk holds whole paragraphs
        body = [p for p in c.text.split("\n\n") if not p.startswith("#")]
        assert all(p in paragraphs for p in body)


def test_a_table_is_never_split_and_a_long_one_is_flagged_oversize():
    rng = random.Random(2)
    big = _table(60, rng)
    small = _table(2, rng)
    response = _response([[("text", "Before.", "Before."), ("table", big, big), ("table", small, small)]])
    for options in (
        ChunkingOptions(chunking="layout", chunk_tokens=100),
        ChunkingOptions(chunking="tokens", chunk_tokens=100, chunk_overlap=20),
    ):
        chunks, info = chunk_response(response, options, COUNTER)
        check_chunks(response, chunks, info, COUNTER)
        oversize = [c for c in chunks if c.oversize]
        assert len(oversize) == 1 and oversize[0].text == big and oversize[0].tokens > 100
        assert oversize[0].overlap_chars == 0  # no overlap is carried into a table's chunk beyond the limit
        assert any(small in c.text and not c.oversize for c in chunks)


def test_tokens_mode_overlaps_whole_words_within_the_limit():
    rng = random.Random(3)
    text = _text(600, rng)
    response = _response([[("text", text, text)]])
    chunks, info = chunk_response(
        response, ChunkingOptions(chunking="tokens", chunk_tokens=100, chunk_overlap=25), COUNTER
    )
    check_chunks(response, chunks, info, COUNTER)
    assert len(chunks) >= 6 and chunks[0].overlap_chars == 0
    assert all(c.overlap_chars > 0 for c in chunks[1:])
    assert all(c.tokens <= 100 for c in chunks)
    assert all(c.block_refs[0].block == 0 for c in chunks)


def test_a_sentence_without_an_end_is_cut_between_words():
    text = " ".join(["lighthouse"] * 400)  # no sentence end at all
    response = _response([[("text", text, text)]])
    chunks, info = chunk_response(response, ChunkingOptions(chunking="layout", chunk_tokens=50), COUNTER)
    check_chunks(response, chunks, info, COUNTER)
    assert len(chunks) > 1 and not any(c.oversize for c in chunks)


def test_figures_pair_with_figure_blocks_in_order():
    response = _response(
        [
            [
                ("figure", "", "![figure](#page-1-figure-1)"),
                ("caption", "Figure 1. A chart.", "Figure 1. A chart."),
                ("figure", "", "![figure](#page-1-figure-2)"),
            ]
        ]
    )
    chunks, info = chunk_response(response, ChunkingOptions(chunking="tokens", chunk_tokens=32), COUNTER)
    check_chunks(response, chunks, info, COUNTER)
    refs = [(r.page, r.block) for c in chunks for r in c.block_refs]
    assert refs == [(0, 0), (0, 1), (0, 2)]


def test_elements_never_end_inside_a_table_a_formula_or_a_fence():
    markdown = "A\n\n<table><tr><td>x\n\ny</td></tr></table>\n\n$$\na\n\nb\n$$\n\n```\ncode\n\nmore\n```\n\nZ"
    assert split_elements(markdown) == [
        "A",
        "<table><tr><td>x\n\ny</td></tr></table>",
        "$$\na\n\nb\n$$",
        "```\ncode\n\nmore\n```",
        "Z",
    ]


def test_none_gives_no_chunks_and_options_are_checked():
    assert chunk_response(_random_response(0), ChunkingOptions(), COUNTER) is None
    with pytest.raises(ValidationError, match="only used by chunking 'tokens'"):
        ChunkingOptions(chunking="layout", chunk_overlap=10)
    with pytest.raises(ValidationError, match="at most half"):
        ChunkingOptions(chunking="tokens", chunk_tokens=64, chunk_overlap=40)
    with pytest.raises(ValidationError):
        ChunkingOptions(chunking="sections")


def test_bundled_tokenizers_count_offline_and_unknown_names_are_refused():
    from shared.errors import OCRError

    for name in BUNDLED_TOKENIZERS:
        counter = bundled_counter(name)
        assert counter.name == name and counter.count(["hello world", ""]) == [2, 0]
    with pytest.raises(OCRError) as e:
        bundled_counter("gpt2")
    assert e.value.code == "invalid_option" and "cl100k_base" in e.value.accepted["tokenizer"]
