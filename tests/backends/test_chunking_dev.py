"""Chunks of real engines' answers on the dev documents (RapidOCR on every document, MinerU's flash tier on the
born-digital PDFs): every word of the markdown in exactly one chunk, no chunk over its limit, boxes inside their
pages, tables whole - the invariants of tests.support.chunk_checks - and blocks found for the text they hold."""

from __future__ import annotations

import json

import pytest

from backends.pipeline import run_document
from backends.rapidocr import RapidOCREngine
from shared.chunking import chunk_response
from shared.documents import open_document
from shared.requests import ChunkingOptions, OutputOptions, RunRequest
from shared.schema import OCRResponse
from shared.tokens import bundled_counter
from tests.conftest import DEV_DATA, dev_file
from tests.support.chunk_checks import check_chunks

pytestmark = pytest.mark.slow

OPTIONS = [
    ChunkingOptions(chunking="layout"),
    ChunkingOptions(chunking="layout", chunk_tokens=96),
    ChunkingOptions(chunking="tokens", chunk_tokens=256, chunk_overlap=48),
    ChunkingOptions(chunking="tokens", chunk_tokens=64, chunk_overlap=16, tokenizer="o200k_base"),
]


def _manifest() -> list[dict]:
    path = dev_file("manifest.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


RAPIDOCR_DOCUMENTS = {"phototest", "eurotext", "8071_093", "2305.03393v1-pg9", "code_and_formula"}
"""What RapidOCR reads here: the three scans (what it is for), the paper page with its table, and a two-page PDF (chunks
across a page break). The five-page and handbook PDFs are MinerU's below: OCR'ing them again (~10 s a page on the CI
machine) added suite time and no case."""


@pytest.fixture(scope="module")
def rapidocr_answers() -> dict[str, OCRResponse]:
    engine = RapidOCREngine()
    engine.start()
    answers = {}
    entries = [e for e in _manifest() if e["id"] in RAPIDOCR_DOCUMENTS]
    assert {e["id"] for e in entries} == RAPIDOCR_DOCUMENTS  # none renamed away from under this test
    for entry in entries:
        data = (DEV_DATA / entry["file"]).read_bytes()
        doc = open_document(data, name=entry["file"])
        answers[entry["id"]] = run_document(
            engine, doc, RunRequest(request_id="t", output=OutputOptions(include_boxes_image=False)), backend="rapidocr"
        )
    engine.close()
    return answers


@pytest.fixture(scope="module")
def mineru_answers(tmp_path_factory) -> dict[str, OCRResponse]:
    pytest.importorskip("mineru", reason="the mineru extra is not installed")
    import os

    from backends.registry import create_engine

    saved = dict(os.environ)
    engine = create_engine("mineru", {"models_dir": str(tmp_path_factory.mktemp("mineru-models"))})
    engine.start()
    answers = {}
    try:
        for entry in _manifest():
            if not entry["file"].endswith(".pdf"):
                continue  # the scans need MinerU's OCR models, which are not here
            doc = open_document((DEV_DATA / entry["file"]).read_bytes(), name=entry["file"])
            answers[entry["id"]] = run_document(
                engine,
                doc,
                RunRequest(request_id="t", output=OutputOptions(include_boxes_image=False), options={"tier": "flash"}),
                backend="mineru",
            )
    finally:
        engine.close()
        os.environ.clear()
        os.environ.update(saved)
    return answers


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: f"{o.chunking}-{o.chunk_tokens}-{o.tokenizer}")
@pytest.mark.parametrize("engine", ["rapidocr", "mineru"])
def test_dev_documents_keep_every_invariant(request, engine, options):
    answers = request.getfixturevalue(f"{engine}_answers")
    counter = bundled_counter(options.tokenizer)
    assert answers
    for doc_id, response in answers.items():
        chunks, info = chunk_response(response, options, counter)
        check_chunks(response, chunks, info, counter)
        # where the engine has blocks for the text, the chunks find them: most chunks have a block to draw
        with_boxes = sum(1 for c in chunks if c.boxes)
        assert with_boxes >= 0.8 * len(chunks), (engine, doc_id, with_boxes, len(chunks))


def test_the_paper_page_table_is_one_chunk_with_the_table_block(rapidocr_answers):
    response = rapidocr_answers["2305.03393v1-pg9"]
    tables = [(p.index, j) for p in response.pages for j, b in enumerate(p.blocks) if b.type == "table"]
    assert tables, "RapidOCR found no table on the paper page"
    chunks, info = chunk_response(response, ChunkingOptions(chunking="layout", chunk_tokens=128), bundled_counter())
    check_chunks(response, chunks, info, bundled_counter())
    holding = [c for c in chunks if "<table" in c.text]
    assert len(holding) == len(tables)
    for chunk, (page, block) in zip(holding, tables):
        assert (page, block) in [(r.page, r.block) for r in chunk.block_refs]


def test_multi_page_sections_carry_their_headings(mineru_answers):
    response = mineru_answers["multi_page"]
    chunks, info = chunk_response(response, ChunkingOptions(chunking="layout"), bundled_counter())
    check_chunks(response, chunks, info, bundled_counter())
    headed = [c for c in chunks if c.heading_path]
    assert headed and len({c.pages[0] for c in chunks}) > 1
    for c in headed:
        first = c.text.split("\n", 1)[0]
        if first.startswith("#"):
            assert first.lstrip("#").strip() == c.heading_path[-1]
