"""``ocrserve compress-bench``: optical compression measured end to end on a running service.

DeepSeek-OCR's paper reports how much text survives being squeezed into a few vision tokens (~97 % precision
below 10x compression, ~60 % at 20x). This reproduces that table on anyone's deployment and any backend: each
passage of a text corpus is rendered for each resolution mode (``POST /v1/render``: pages, their vision tokens in
that mode, the text tokens of the passage), every page is read back by each backend (``POST /v1/ocr``), and the
reading is scored against the text that was drawn: OmniDocBench-normalised edit distance (NED; precision is
1 - NED) and the rate of lines reproduced exactly. The compression ratio is text tokens per vision token, as the
paper counts it.

Runs against any backend - on the CPU default today RapidOCR reads the pages back, which measures what a
classical OCR makes of the same pixels; a DeepSeek backend is sent ``options.mode`` too, and where it runs a
different mode (vLLM runs Gundam only) the vision tokens it really used are reported beside the mode's.
Imports ``shared`` and the HTTP client only.
"""

from __future__ import annotations

import base64
import difflib
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.client import OCRClient, ServiceError
from shared.metrics import EditScore, dataset_ned, edit_score

MODES: tuple[str, ...] = ("tiny", "small", "base", "large", "gundam")

CORPUS: tuple[tuple[str, str], ...] = (
    (
        "prose",
        "Optical compression treats a page of text as an image and lets a vision encoder summarise it in a\n"
        "few hundred tokens. A decoder then expands those tokens back into the original words. The idea is\n"
        "old in spirit: people skim a printed page far faster than they could read the same words aloud, and\n"
        "a photograph of a whiteboard keeps everything that was written on it. What is new is the claim that a\n"
        "language model can recover nearly every character at ten times compression, and most of them at\n"
        "twenty. If that holds for ordinary documents, long conversations and logs could be stored as images\n"
        "and read back on demand, trading exactness for a much smaller context. The measurement below renders\n"
        "plain text at the resolution of each mode and asks a reader to transcribe it. Precision is one minus\n"
        "the normalised edit distance; exact lines counts the lines that came back character for character.\n"
        "Nothing here depends on the reader being DeepSeek-OCR: any backend can be scored the same way, which\n"
        "is how one learns whether a cheaper engine is good enough for a given font size and page density.",
    ),
    (
        "logs",
        "2026-03-14 09:12:01 INFO  router    request 7f3a accepted: 2 pages, backend=auto\n"
        "2026-03-14 09:12:01 INFO  router    auto chose rapidocr (ready, reads image/png)\n"
        "2026-03-14 09:12:02 INFO  rapidocr  page 1: 41 lines, 3 regions, 0.84 s\n"
        "2026-03-14 09:12:03 INFO  rapidocr  page 2: 37 lines, 2 regions, 0.79 s\n"
        "2026-03-14 09:12:03 INFO  router    request 7f3a answered in 1.71 s\n"
        "2026-03-14 09:12:09 WARN  deepseek  page 4 hit max_new_tokens=8192 (truncated)\n"
        "2026-03-14 09:12:11 ERROR mineru    models_missing: pipeline OCR weights not found\n"
        "2026-03-14 09:12:15 INFO  jobs      job 19c2 progress 12/40 pages\n"
        "2026-03-14 09:12:20 INFO  serve     replica deepseek-ocr#2 started on node 10.0.3.7 (GPU 1)\n"
        "2026-03-14 09:12:31 INFO  router    compare 88d1: rapidocr vs mineru agreement 0.913\n"
        "2026-03-14 09:12:40 WARN  router    backend mineru overloaded; Retry-After 2\n"
        "2026-03-14 09:12:44 INFO  jobs      job 19c2 succeeded: 40 pages in 96.4 s",
    ),
    (
        "history",
        "Customer: My invoice for March shows two charges for the same order, number 48213.\n"
        "Agent: Thanks for flagging it. I can see order 48213 was billed on March 3 and again on March 5.\n"
        "Customer: Yes, the second one is 129.90 EUR and I never placed a second order.\n"
        "Agent: The second charge came from a retry after a payment timeout. I have refunded 129.90 EUR.\n"
        "Customer: How long until the money is back on my card?\n"
        "Agent: Refunds usually appear within three to five business days, depending on your bank.\n"
        "Customer: Could you also send a corrected invoice for my records?\n"
        "Agent: Done. Invoice INV-2026-0311-B replaces the old one and was sent to your email address.",
    ),
)
"""The built-in corpus: prose, log lines and a conversation - the three things teams compress into images."""


@dataclass
class Reading:
    """One passage in one mode read by one backend.

    Attributes:
        passage: Passage name.
        pages: Pages rendered.
        text_tokens: Text tokens of the passage.
        vision_tokens: Vision tokens of its pages in the mode (the models' geometry).
        vision_ran: Vision tokens the backend reports having used (DeepSeek), else None.
        score: Edit distance against the drawn text.
        lines: Lines drawn.
        exact_lines: Lines read back exactly (whitespace aside).
        seconds: Time spent reading the pages.
        error: The backend's error code, when it failed.
    """

    passage: str
    pages: int
    text_tokens: int
    vision_tokens: int
    vision_ran: int | None
    score: EditScore | None
    lines: int
    exact_lines: int
    seconds: float
    error: str | None = None


@dataclass
class CompressionRow:
    """One (mode, backend) line of the table: readings of every passage, aggregated."""

    mode: str
    backend: str
    readings: list[Reading] = field(default_factory=list)

    @property
    def ok(self) -> list[Reading]:
        return [r for r in self.readings if r.error is None and r.score is not None]

    @property
    def pages(self) -> int:
        return sum(r.pages for r in self.readings)

    @property
    def text_tokens(self) -> int:
        return sum(r.text_tokens for r in self.readings)

    @property
    def vision_tokens(self) -> int:
        return sum(r.vision_tokens for r in self.readings)

    @property
    def ratio(self) -> float | None:
        """Text tokens per vision token (the paper's compression)."""
        return self.text_tokens / self.vision_tokens if self.vision_tokens else None

    @property
    def vision_ran(self) -> int | None:
        ran = [r.vision_ran for r in self.readings if r.vision_ran is not None]
        return sum(ran) if ran else None

    @property
    def ned(self) -> float | None:
        """Dataset NED (sum of distances over sum of lengths) of the readings that answered."""
        scores = [r.score for r in self.ok if r.score is not None]
        return dataset_ned(scores) if scores else None

    @property
    def precision(self) -> float | None:
        return None if self.ned is None else 1 - self.ned

    @property
    def exact_rate(self) -> float | None:
        lines = sum(r.lines for r in self.ok)
        return sum(r.exact_lines for r in self.ok) / lines if lines else None

    @property
    def seconds_per_page(self) -> float | None:
        pages = sum(r.pages for r in self.ok)
        return sum(r.seconds for r in self.ok) / pages if pages else None

    @property
    def failures(self) -> int:
        return sum(1 for r in self.readings if r.error is not None)


def _line_key(line: str) -> str:
    return re.sub(r"\s+", " ", line).strip()


def exact_lines(drawn: str, read: str) -> int:
    """Lines of ``drawn`` that appear in ``read``, in order and exactly (whitespace collapsed, blank lines aside)."""
    ref = [k for k in (_line_key(x) for x in drawn.splitlines()) if k]
    out = [k for k in (_line_key(x) for x in read.splitlines()) if k]
    matcher = difflib.SequenceMatcher(None, ref, out, autojunk=False)
    return sum(block.size for block in matcher.get_matching_blocks())


def load_corpus(path: Path | None) -> list[tuple[str, str]]:
    """``(name, text)`` passages: the built-in corpus, a text file (one passage), or every ``*.txt`` in a folder."""
    if path is None:
        return list(CORPUS)
    files = sorted(path.glob("*.txt")) if path.is_dir() else [path]
    passages = [(f.stem, f.read_text(encoding="utf-8")) for f in files]
    passages = [(n, t) for n, t in passages if t.strip()]
    if not passages:
        raise ValueError(f"no text in {path}")
    return passages


def read_pages(client: OCRClient, backend: str, pngs: list[bytes], *, mode: str | None) -> tuple[str, int | None]:
    """Each page through ``backend`` (with ``options.mode`` when given); the readings joined by newlines, and the
    vision tokens the backend reports having used (None when it reports none)."""
    texts, vision = [], []
    options = {"mode": mode} if mode else None
    for i, png in enumerate(pngs):
        result = client.ocr_bytes(png, f"page-{i + 1}.png", backend=backend, options=options, include_boxes_image=False)
        texts.append(result.markdown)
        if result.usage.vision_tokens is not None:
            vision.append(result.usage.vision_tokens)
    return "\n".join(texts), (sum(vision) if vision else None)


def run_compression(
    client: OCRClient,
    *,
    backends: Sequence[str],
    modes: Sequence[str] = MODES,
    corpus: list[tuple[str, str]] | None = None,
    font: str = "monospace",
    font_size_px: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[CompressionRow]:
    """Render every passage per mode, read it back with every backend, score it.

    Args:
        client: A client of the running service.
        backends: Backends that read the pages.
        modes: Resolution modes to render for.
        corpus: ``(name, text)`` passages; default :data:`CORPUS`.
        font: ``monospace`` or ``proportional``.
        font_size_px: Font size for every mode; default the mode's own (see ``shared.textrender.GEOMETRY``).
        progress: Called with (done, total) after each passage x mode x backend.

    Returns:
        One row per (mode, backend), in the order given.
    """
    passages = corpus or list(CORPUS)
    # a backend that counts vision tokens per resolution mode is told the mode (its capabilities say which it has)
    modal = {b.name: b.capabilities.vision_token_modes for b in client.backends().backends if b.capabilities}
    rows = {(m, b): CompressionRow(m, b) for m in modes for b in backends}
    total, done = len(passages) * len(modes) * len(backends), 0
    for mode in modes:
        for name, text in passages:
            rendering = client.render(text, mode=mode, font=font, font_size_px=font_size_px)
            pngs = [base64.b64decode(p.png or "") for p in rendering.pages]
            drawn = "\n".join(p.text for p in rendering.pages)
            vision = next(c.vision_tokens for c in rendering.modes if c.mode == mode)  # the first model's count
            for backend in backends:
                told = mode if mode in modal.get(backend, []) else None
                started = time.perf_counter()
                try:
                    read, ran = read_pages(client, backend, pngs, mode=told)
                    error = None
                except ServiceError as e:
                    read, ran, error = "", None, str(e.error.error.code)
                lines = sum(1 for x in drawn.splitlines() if x.strip())
                rows[(mode, backend)].readings.append(
                    Reading(
                        passage=name,
                        pages=len(pngs),
                        text_tokens=rendering.text_tokens,
                        vision_tokens=vision,
                        vision_ran=ran,
                        score=edit_score(read, drawn) if error is None else None,
                        lines=lines,
                        exact_lines=exact_lines(drawn, read) if error is None else 0,
                        seconds=time.perf_counter() - started,
                        error=error,
                    )
                )
                done += 1
                if progress:
                    progress(done, total)
    return list(rows.values())


def as_dicts(rows: list[CompressionRow]) -> list[dict[str, object]]:
    """The table as plain data (for ``--json``)."""
    out = []
    for r in rows:
        out.append(
            {
                "mode": r.mode,
                "backend": r.backend,
                "pages": r.pages,
                "text_tokens": r.text_tokens,
                "vision_tokens": r.vision_tokens,
                "compression_ratio": None if r.ratio is None else round(r.ratio, 3),
                "vision_tokens_ran": r.vision_ran,
                "ned": None if r.ned is None else round(r.ned, 4),
                "precision": None if r.precision is None else round(r.precision, 4),
                "exact_line_rate": None if r.exact_rate is None else round(r.exact_rate, 4),
                "seconds_per_page": None if r.seconds_per_page is None else round(r.seconds_per_page, 3),
                "failures": r.failures,
                "passages": [
                    {"passage": x.passage, "error": x.error, "ned": None if x.score is None else round(x.score.ned, 4)}
                    for x in r.readings
                ],
            }
        )
    return out
