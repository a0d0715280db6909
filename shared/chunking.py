"""Chunks for a retrieval index, cut from an OCR response alone: text, heading path, pages, blocks and boxes.

Pure (pydantic, rapidfuzz and a token counter), so chunks can be made wherever the response is complete - in the
router after a cascade or a job merged pages, or in a client from a saved answer.

How it works:

1. **Elements.** Each page's markdown is cut at blank lines into elements (paragraphs, headings, tables, formulas,
   figure references); an element never ends inside an HTML table, a ``$$`` block or a code fence. The elements
   of all pages, in order, hold every word of the response's markdown exactly once.
2. **Where each element came from.** The page's words, read in markdown order, are aligned with its blocks' words
   in reading order (an edit-distance alignment of word sequences, ``rapidfuzz``); the blocks that share aligned
   words with an element are its blocks. Figure references (``![figure](...)``) pair with the page's figure blocks
   in order. Blocks the markdown leaves out (running heads, page numbers) belong to no chunk; text only in the
   markdown (an engine's ungrounded preamble) has no block.
3. **Units.** An element that fits the budget is one unit; a longer one is cut between sentences, then between
   words. A table is never cut: one longer than the budget becomes a chunk of its own, flagged ``oversize``.
4. **Packing.** ``layout``: a section is a heading and what follows it up to the next heading (headings with
   nothing under them open the next section); each section is packed into as few chunks as the budget allows,
   cut between units. ``tokens``: units are packed in order regardless of sections, each chunk but the first
   starting with up to ``chunk_overlap`` tokens of whole words from the end of the previous chunk (never from a
   table), counted in ``tokens`` and marked by ``overlap_chars``.

Every chunk's ``tokens`` is the named tokenizer's count of its whole ``text`` (overlap included), checked after
packing, and never more than ``chunk_tokens`` except for an ``oversize`` chunk (one table, or a single "word"
longer than the budget such as a long URL). So, taking each chunk's ``text[overlap_chars:]``, the words of the
chunks in order are the words of the markdown in order, each once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from shared.requests import ChunkingOptions
from shared.schema import BlockRef, Chunk, ChunkingInfo, OCRResponse, PageResult, SourceBox
from shared.tokens import NamedCounter

_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
_FIGURE_REF = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_TAG = re.compile(r"<[^>]+>")
_WORD = re.compile(r"\w+", re.UNICODE)
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")

MIN_SHARED = 0.5
"""Share of the smaller side's words an element and a block must have aligned for the block to be the element's."""

SEPARATOR = "\n\n"
"""What joins two elements in a chunk's text (as in the markdown)."""


@dataclass
class Element:
    """One markdown element of one page.

    Attributes:
        page: 0-based page index.
        text: The element's markdown, stripped.
        level: Heading level (1-6), 0 when not a heading.
        table: Whether it is a table (HTML or pipe), which is never cut.
        figures: Figure references it holds.
        blocks: Indices of the page's blocks it was read from.
    """

    page: int
    text: str
    level: int = 0
    table: bool = False
    figures: int = 0
    blocks: list[int] = field(default_factory=list)

    @property
    def heading(self) -> str:
        m = _HEADING.match(self.text.split("\n", 1)[0])
        return m.group(2).strip() if m else ""


@dataclass
class Unit:
    """A piece of an element that is packed whole (the element itself, or a sentence or word of a long one).

    Attributes:
        element: Position of its element in the document's element list.
        text: The piece's text.
        continues: It continues the previous unit's element (joined by a space, not a blank line).
        tokens: Its token count.
    """

    element: int
    text: str
    continues: bool = False
    tokens: int = 0


def split_elements(markdown: str) -> list[str]:
    """A page's markdown cut at blank lines, never inside an HTML table, a ``$$`` block or a code fence."""
    out: list[str] = []
    pending = ""
    for part in _BLANK_LINE.split(markdown):
        pending = f"{pending}\n\n{part}" if pending else part
        if _open_construct(pending):
            continue
        if pending.strip():
            out.append(pending.strip())
        pending = ""
    if pending.strip():
        out.append(pending.strip())
    return out


def _open_construct(text: str) -> bool:
    lowered = text.lower()
    if lowered.count("<table") > lowered.count("</table>"):
        return True
    if sum(1 for line in text.split("\n") if line.lstrip().startswith("```")) % 2:
        return True
    return sum(1 for line in text.split("\n") if line.strip() == "$$") % 2 == 1


def _is_table(text: str) -> bool:
    lines = text.strip().split("\n")
    if text.lstrip().lower().startswith("<table"):
        return True
    return len(lines) >= 2 and all(line.lstrip().startswith("|") for line in lines)


def page_elements(page: PageResult) -> list[Element]:
    """The page's markdown elements, each with the blocks it was read from."""
    elements = []
    for text in split_elements(page.markdown):
        m = _HEADING.match(text.split("\n", 1)[0])
        elements.append(
            Element(
                page=page.index,
                text=text,
                level=len(m.group(1)) if m else 0,
                table=_is_table(text),
                figures=len(_FIGURE_REF.findall(text)),
            )
        )
    _attribute(elements, page)
    return elements


def _norm_words(text: str) -> list[str]:
    return [w.casefold() for w in _WORD.findall(_TAG.sub(" ", _FIGURE_REF.sub(" ", text)))]


def _attribute(elements: list[Element], page: PageResult) -> None:
    """Fill each element's ``blocks``: word alignment for text, figure order for figure references."""
    from rapidfuzz.distance import Levenshtein

    md_words: list[str] = []
    md_owner: list[int] = []
    for i, e in enumerate(elements):
        words = _norm_words(e.text)
        md_words.extend(words)
        md_owner.extend([i] * len(words))
    block_words: list[str] = []
    block_owner: list[int] = []
    for j, block in enumerate(page.blocks):
        words = _norm_words(block.text) if block.type != "figure" else []
        block_words.extend(words)
        block_owner.extend([j] * len(words))
    shared: dict[tuple[int, int], int] = {}
    if md_words and block_words:
        for op in Levenshtein.opcodes(md_words, block_words):
            if op.tag != "equal":
                continue
            for k in range(op.src_end - op.src_start):
                pair = (md_owner[op.src_start + k], block_owner[op.dest_start + k])
                shared[pair] = shared.get(pair, 0) + 1
    # a block belongs to an element when they share a good part of the smaller one's words: an alignment may pair
    # a lone common word ("the", a title word) with a block the markdown leaves out, such as a running head
    md_sizes = [md_owner.count(i) for i in range(len(elements))]
    block_sizes = [block_owner.count(j) for j in range(len(page.blocks))]
    found: list[set[int]] = [set() for _ in elements]
    for (i, j), n in shared.items():
        if n >= max(1, MIN_SHARED * min(md_sizes[i], block_sizes[j])):
            found[i].add(j)
    figure_blocks = iter([j for j, b in enumerate(page.blocks) if b.type == "figure"])
    for i, e in enumerate(elements):
        for _ in range(e.figures):
            figure = next(figure_blocks, None)
            if figure is not None:
                found[i].add(figure)
        e.blocks = sorted(found[i])


def _pieces(text: str, pattern: re.Pattern[str]) -> list[str]:
    return [p for p in pattern.split(text) if p.strip()]


def _units(elements: list[Element], budget: int, counter: NamedCounter) -> list[Unit]:
    """Elements as units: whole when they fit the budget (or are tables), else sentences, else words."""
    counts = counter.count([e.text for e in elements]) if elements else []
    long = [i for i, e in enumerate(elements) if counts[i] > budget and not e.table]
    sentences = {i: _pieces(elements[i].text, _SENTENCE_END) for i in long}
    flat = [s for i in long for s in sentences[i]]
    sentence_counts = iter(counter.count(flat) if flat else [])
    units: list[Unit] = []
    for i, e in enumerate(elements):
        if i not in sentences:
            units.append(Unit(i, e.text, tokens=counts[i]))
            continue
        first = True
        for sentence in sentences[i]:
            n = next(sentence_counts)
            if n <= budget:
                units.append(Unit(i, sentence, continues=not first, tokens=n))
                first = False
                continue
            words = sentence.split()
            for word, wn in zip(words, counter.count(words)):
                units.append(Unit(i, word, continues=not first, tokens=wn))
                first = False
    return units


def _join(units: Sequence[Unit]) -> str:
    text = ""
    for k, u in enumerate(units):
        text += u.text if k == 0 else (" " if u.continues else SEPARATOR) + u.text
    return text


def _pack(units: list[Unit], budget: int, elements: list[Element], counter: NamedCounter) -> list[list[Unit]]:
    """Consecutive units into groups of at most ``budget`` tokens (exact counts of the joined text checked)."""
    groups: list[list[Unit]] = []
    current: list[Unit] = []
    size = 0
    for u in units:
        alone = elements[u.element].table and u.tokens > budget
        if current and (alone or size + 1 + u.tokens > budget):
            groups.append(current)
            current, size = [], 0
        current.append(u)
        size += u.tokens + (1 if len(current) > 1 else 0)
        if alone:
            groups.append(current)
            current, size = [], 0
    if current:
        groups.append(current)
    # the sum of the parts' counts estimates the whole's: count the joined text, move units on until it fits
    k = 0
    while k < len(groups):
        group = groups[k]
        if len(group) > 1 and counter.count([_join(group)])[0] > budget:
            last = group.pop()
            following = groups[k + 1][0] if k + 1 < len(groups) else None
            if following is not None and not (elements[following.element].table and following.tokens > budget):
                groups[k + 1].insert(0, last)
            else:
                groups.insert(k + 1, [last])
            continue
        k += 1
    return groups


def _sections(elements: list[Element], units: list[Unit]) -> list[list[Unit]]:
    """Units grouped by section: a heading opens one, unless the current one holds only headings so far."""
    sections: list[list[Unit]] = []
    for u in units:
        e = elements[u.element]
        opens = e.level > 0 and not u.continues
        if not sections or (opens and any(elements[x.element].level == 0 for x in sections[-1])):
            sections.append([])
        sections[-1].append(u)
    return sections


def _heading_paths(elements: list[Element]) -> list[list[str]]:
    """For each element, the headings in effect at it (its own when it is one), outermost first."""
    stack: list[tuple[int, str]] = []
    paths = []
    for e in elements:
        if e.level:
            stack = [h for h in stack if h[0] < e.level] + [(e.level, e.heading)]
        paths.append([h[1] for h in stack])
    return paths


def _overlap(previous: list[Unit], elements: list[Element], limit: int, counter: NamedCounter) -> str:
    """Up to ``limit`` tokens of whole words from the end of the previous chunk (none when it ends in a table)."""
    tail: list[Unit] = []
    for u in reversed(previous):
        if elements[u.element].table:
            break
        tail.insert(0, u)
    if limit <= 0 or not tail:
        return ""
    words = _join(tail).split()[-limit:]  # a word is at least one token
    taken = 0
    total = 0
    for n in reversed(counter.count(words)):  # words counted alone; the joined tail is checked below
        if total + n > limit:
            break
        total += n
        taken += 1
    while taken:
        text = " ".join(words[len(words) - taken :])
        if counter.count([text])[0] <= limit:
            return text
        taken -= 1
    return ""


def _chunk(
    k: int,
    units: list[Unit],
    elements: list[Element],
    pages: dict[int, PageResult],
    paths: list[list[str]],
    *,
    overlap: str,
    tokens: int,
    budget: int,
) -> Chunk:
    content = _join(units)
    joiner = (" " if units[0].continues else SEPARATOR) if overlap else ""
    refs: list[BlockRef] = []
    for u in units:
        e = elements[u.element]
        for j in e.blocks:
            ref = BlockRef(page=e.page, block=j)
            if ref not in refs:
                refs.append(ref)
    boxes = [
        SourceBox(
            page=r.page,
            bbox=list(pages[r.page].blocks[r.block].bbox),
            bbox_norm=list(pages[r.page].blocks[r.block].bbox_norm),
        )
        for r in refs
    ]
    lead = units[0].element  # the path in effect after the headings the chunk opens with
    for u in units:
        if not elements[u.element].level:
            break
        lead = u.element
    on_pages = sorted({elements[u.element].page for u in units})
    oversize = tokens > budget
    return Chunk(
        id=f"c{k:04d}",
        text=overlap + joiner + content,
        heading_path=paths[lead],
        pages=on_pages,
        block_refs=refs,
        boxes=boxes,
        tokens=tokens,
        overlap_chars=len(overlap + joiner),
        oversize=oversize,
    )


def chunk_response(
    response: OCRResponse, options: ChunkingOptions, counter: NamedCounter
) -> tuple[list[Chunk], ChunkingInfo] | None:
    """Chunks of ``response``'s markdown, as ``options`` ask (None for ``chunking: none``).

    Args:
        response: A complete OCR response (its pages' markdown and blocks).
        options: Mode and limits.
        counter: The named tokenizer ``options.tokenizer`` resolved to (the caller resolves ``backend:<name>``).

    Returns:
        (chunks, how they were cut), or None when no chunking was asked for.
    """
    if options.chunking == "none":
        return None
    limit = options.chunk_tokens
    overlap_limit = options.chunk_overlap if options.chunking == "tokens" else 0
    budget = limit - overlap_limit
    pages = {p.index: p for p in response.pages}
    elements = [e for p in response.pages for e in page_elements(p)]
    units = _units(elements, budget, counter)
    if options.chunking == "layout":
        groups = [g for section in _sections(elements, units) for g in _pack(section, budget, elements, counter)]
    else:
        groups = _pack(units, budget, elements, counter)
    paths = _heading_paths(elements)
    contents = [_join(g) for g in groups]
    counts = counter.count(contents) if contents else []
    chunks: list[Chunk] = []
    for k, group in enumerate(groups):
        overlap = _overlap(groups[k - 1], elements, overlap_limit, counter) if k else ""
        tokens = counts[k]
        while overlap:
            joiner = " " if group[0].continues else SEPARATOR
            tokens = counter.count([overlap + joiner + contents[k]])[0]
            if tokens <= limit:
                break
            overlap = " ".join(overlap.split()[1:])  # drop a word and count again
            tokens = counts[k]
        chunks.append(_chunk(k, group, elements, pages, paths, overlap=overlap, tokens=tokens, budget=limit))
    info = ChunkingInfo(mode=options.chunking, tokenizer=counter.name, chunk_tokens=limit, chunk_overlap=overlap_limit)
    return chunks, info
