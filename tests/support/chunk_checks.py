"""The invariants every set of chunks keeps (shared.chunking), checked the same way on generated and real answers."""

from __future__ import annotations

import re

from shared.schema import Chunk, ChunkingInfo, OCRResponse
from shared.tokens import NamedCounter

_TABLE = re.compile(r"<table.*?</table>", re.S | re.I)
_PIPE_TABLE = re.compile(r"(?:^[ \t]*\|.*(?:\n|$)){2,}", re.M)


def tables(markdown: str) -> list[str]:
    """The markdown's tables: HTML tables and pipe tables (two or more lines starting with '|')."""
    return _TABLE.findall(markdown) + [t.strip() for t in _PIPE_TABLE.findall(markdown)]


def words(text: str) -> list[str]:
    return text.split()


def check_chunks(response: OCRResponse, chunks: list[Chunk], info: ChunkingInfo, counter: NamedCounter) -> None:
    """Assert the promises of ``shared.chunking`` for ``chunks`` of ``response``.

    - every word of the markdown is in exactly one chunk, in order (each chunk's text after its overlap);
    - ``tokens`` is the named tokenizer's count of the whole text, at most ``chunk_tokens`` unless the chunk is one
      table (or one word) that alone is longer;
    - every box lies inside its page and on a page the chunk names; block refs point at real blocks;
    - a table is never split: each of the markdown's tables lies whole in one chunk, and no chunk opens a table it
      does not close;
    - the overlap repeats the end of the previous chunk, within ``chunk_overlap`` tokens.
    """
    own = [words(c.text[c.overlap_chars :]) for c in chunks]
    assert [w for ws in own for w in ws] == words(response.markdown), "the chunks' words are not the markdown's"
    assert all(own), "a chunk holds no words of its own"
    counts = counter.count([c.text for c in chunks])
    pages = {p.index: p for p in response.pages}
    for k, (chunk, n) in enumerate(zip(chunks, counts)):
        assert chunk.id == f"c{k:04d}"
        assert chunk.tokens == n, (chunk.id, chunk.tokens, n)
        if chunk.oversize:
            body = chunk.text[chunk.overlap_chars :].strip()
            one_table = tables(body) == [body]
            assert one_table or len(body.split()) == 1, f"{chunk.id} oversize but not one table: {body!r}"
        else:
            assert n <= info.chunk_tokens, (chunk.id, n, info.chunk_tokens)
        text = chunk.text.lower()
        assert text.count("<table") == text.count("</table>"), f"{chunk.id} cuts a table"
        assert len(chunk.boxes) == len(chunk.block_refs)
        for ref, box in zip(chunk.block_refs, chunk.boxes):
            page = pages[ref.page]
            assert 0 <= ref.block < len(page.blocks)
            assert box.page == ref.page and ref.page in chunk.pages
            x0, y0, x1, y1 = box.bbox
            assert 0 <= x0 <= x1 <= page.width + 0.5 and 0 <= y0 <= y1 <= page.height + 0.5, (chunk.id, box)
            assert all(0.0 <= v <= 1.0 for v in box.bbox_norm)
        assert chunk.pages == sorted(set(chunk.pages)) and set(chunk.pages) <= set(pages)
        if chunk.overlap_chars:
            assert info.mode == "tokens" and k > 0
            repeated = words(chunk.text[: chunk.overlap_chars])
            assert words(chunks[k - 1].text)[-len(repeated) :] == repeated, f"{chunk.id}'s overlap is not a tail"
            assert counter.count([" ".join(repeated)])[0] <= info.chunk_overlap
    for table in tables(response.markdown):
        assert any(table in c.text for c in chunks), f"table split: {table[:60]!r}"
