"""What the RapidOCR layout pass keeps, loses and buys, page by page: line reading vs layout reading, one run.

Every page of the reading corpus (``tests/data/corpus``, 49 real pages of many kinds), of the dev set
(``../shared/data/dev`` when it is there) and of two generated report pages with a known table is rendered at the
service's default DPI; the models look at it once (OCR, layout) and three readings are composed from that one
observation (:meth:`RapidOCREngine.read_ways`), so they differ only by the layout pass:

- ``lines``: ``{"layout": false}`` — lines and paragraphs in the column-aware reading order (before the layout pass);
- ``layout``: the defaults — regions checked against their lines, tables, furniture apart;
- ``unchecked``: the layout pass taking every region's label on trust (how it read before region checks).

    .venv/bin/python benchmarks/rapidocr_layout.py [--json out.json] [--boxes docs/corpus] \
        [--observations tests/data/corpus/observations]

Per page: the share of the line reading's words the layout reading lost (page furniture aside, which it leaves
out by design; also with the labels of real pictures aside — both counted apart), NED and word recall against the
reference where there is one, TEDS where the reference has tables, and seconds per stage. Then the totals, the
pages losing more than 2 % of their words, and the five pages the layout pass reads worst relative to the lines;
``--boxes`` draws those five pages' boxes images. ``--observations`` writes what the models saw on each corpus
page (lines, regions) as JSON, for ``tests/backends/test_rapidocr_corpus.py``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backends.rapidocr import RapidOCREngine  # noqa: E402
from backends.rapidocr.compose import ComposeSettings, left_out  # noqa: E402
from benchmarks.support.layout_samples import report_page  # noqa: E402
from orchestrator.ops import samples  # noqa: E402
from shared.boxes import draw_boxes  # noqa: E402
from shared.documents import open_document, rasterize_pages  # noqa: E402
from shared.metrics import document_teds, ned, word_list, word_recall  # noqa: E402

CORPUS = ROOT / "tests" / "data" / "corpus" / "manifest.jsonl"
DEV = ROOT.parent / "shared" / "data" / "dev" / "manifest.jsonl"
WAYS = {
    "lines": ComposeSettings(layout=False, tables=False),
    "layout": ComposeSettings(),
    "unchecked": ComposeSettings(check_regions=False, text_min_score=0.0, furniture_max_lines=99),
}
MAX_LOSS = 0.02
SMALLEST_RUN = "--only typewriter-recipe"
"""Arguments of a run that only proves the script works (tests/benchmarks/test_scripts.py runs it): one page."""


@dataclass
class Doc:
    """A document to read: where it comes from, its bytes, its reference (None: none)."""

    id: str
    set: str
    kind: str
    data: bytes
    reference: str | None


@dataclass
class Row:
    """One document's figures (its pages' markdown joined, as the service joins them)."""

    id: str
    set: str
    kind: str
    pages: int = 0
    loss: float = 0.0  # share of the line reading's words (furniture aside) missing from the layout reading
    loss_text: float = 0.0  # the same, the labels of real pictures aside too
    loss_unchecked: float = 0.0
    furniture_words: int = 0
    picture_words: int = 0
    words: int = 0
    ned: dict[str, float] = field(default_factory=dict)
    recall: dict[str, float] = field(default_factory=dict)
    teds: dict[str, float | None] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def documents(corpus: Path, dev: Path | None) -> list[Doc]:
    """The corpus pages, the dev set's documents (when present) and the generated report pages."""
    docs = []
    for name, manifest in (("corpus", corpus), ("dev", dev)):
        if manifest is None or not manifest.is_file():
            continue
        for line in manifest.read_text().splitlines():
            if line.strip():
                e = json.loads(line)
                truth = (manifest.parent / e["truth"]).read_text() if e.get("truth") else None
                docs.append(Doc(e["id"], name, e.get("kind", ""), (manifest.parent / e["file"]).read_bytes(), truth))
    for bordered in (True, False):
        page = report_page(bordered=bordered)
        kind = "generated report page, " + ("ruled" if bordered else "booktabs") + " table"
        docs.append(
            Doc(
                f"report-{'ruled' if bordered else 'booktabs'}",
                "generated",
                kind,
                samples.encode(page.image),
                page.markdown,
            )
        )
    return docs


def read(engine: RapidOCREngine, doc: Doc, *, boxes: dict[str, Any], observations: Path | None) -> Row:
    """Every page of ``doc`` read the three ways; the document's figures."""
    row = Row(doc.id, doc.set, doc.kind)
    markdown: dict[str, list[str]] = {name: [] for name in WAYS}
    expected: dict[str, Counter[str]] = {"layout": Counter(), "text": Counter(), "unchecked": Counter()}
    got: dict[str, Counter[str]] = {name: Counter() for name in WAYS}
    seconds: dict[str, float] = {}
    for page in rasterize_pages(open_document(doc.data)):
        assert page.image is not None
        started = time.perf_counter()
        readings, timings, seen = engine.read_ways(page.image, WAYS, index=page.index, dpi=page.dpi)
        timings["total_s"] = time.perf_counter() - started
        for stage, value in timings.items():
            seconds[stage] = seconds.get(stage, 0.0) + value
        row.pages += 1
        for name, reading in readings.items():
            markdown[name].append(reading.result.markdown)
            got[name].update(word_list(reading.result.markdown))
        lines_words = Counter(word_list(readings["lines"].result.markdown))
        row.words += sum(lines_words.values())
        for name in ("layout", "unchecked"):
            out = left_out(readings[name].result)
            furniture = Counter(w for t in out["furniture"] for w in word_list(t))
            expected[name].update(lines_words - furniture)
            if name == "layout":
                pictures = Counter(w for t in out["picture"] for w in word_list(t))
                expected["text"].update(lines_words - furniture - pictures)
                row.furniture_words += sum(furniture.values())
                row.picture_words += sum(pictures.values())
        row.warnings.extend(readings["layout"].result.warnings)
        boxes[f"{doc.id}#{page.index}"] = (page.image, readings["layout"])
        if observations is not None and doc.set == "corpus":
            record = {"id": doc.id, "dpi": page.dpi, "width": page.image.width, "height": page.image.height}
            (observations / f"{doc.id}.json").write_text(json.dumps({**record, **seen.to_dict()}) + "\n")
    row.loss = 1 - word_recall(got["layout"], list(expected["layout"].elements()))
    row.loss_text = 1 - word_recall(got["layout"], list(expected["text"].elements()))
    row.loss_unchecked = 1 - word_recall(got["unchecked"], list(expected["unchecked"].elements()))
    row.seconds = {k: round(v / row.pages, 3) for k, v in seconds.items()}
    if doc.reference is not None:
        for name in WAYS:
            text = "\n\n".join(m for m in markdown[name] if m)
            row.ned[name] = round(ned(text, doc.reference), 4)
            row.recall[name] = round(word_recall(text, doc.reference), 4)
            tables = document_teds(text, doc.reference)
            row.teds[name] = None if tables is None else round(tables.teds, 3)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="The reading corpus's manifest.")
    parser.add_argument("--dev", type=Path, default=DEV, help="The dev set's manifest (skipped when absent).")
    parser.add_argument("--only", nargs="*", default=None, help="Read only these document ids.")
    parser.add_argument("--json", type=Path, default=None, help="Also write every figure here.")
    parser.add_argument("--boxes", type=Path, default=None, help="Draw the worst five pages' boxes images here.")
    parser.add_argument("--observations", type=Path, default=None, help="Write each corpus page's observation here.")
    args = parser.parse_args(argv)

    engine = RapidOCREngine()
    started = time.perf_counter()
    engine.start()
    print(f"engine start (3 models loaded and warmed up): {time.perf_counter() - started:.2f} s", flush=True)
    if args.observations:
        args.observations.mkdir(parents=True, exist_ok=True)

    rows: list[Row] = []
    boxes: dict[str, Any] = {}
    for doc in documents(args.corpus, args.dev):
        if args.only and doc.id not in args.only:
            continue
        row = read(engine, doc, boxes=boxes, observations=args.observations)
        rows.append(row)
        print(_line(row), flush=True)
    summary = summarise(rows)
    print(json.dumps(summary, indent=1))
    if args.boxes:
        draw_worst(summary["worst"], boxes, args.boxes)
    if args.json:
        args.json.write_text(json.dumps({"rows": [asdict(r) for r in rows], "summary": summary}, indent=1))
    return 0


def summarise(rows: list[Row]) -> dict[str, Any]:
    """Means per set and way, the pages that lose words, the worst five."""
    out: dict[str, Any] = {}
    for name in ("corpus", "dev", "generated"):
        scored = [r for r in rows if r.set == name and r.ned]
        if not scored:
            continue
        out[name] = {
            "documents": sum(1 for r in rows if r.set == name),
            "pages": sum(r.pages for r in rows if r.set == name),
            "with_reference": len(scored),
            "ned_mean": {w: round(statistics.mean(r.ned[w] for r in scored), 4) for w in WAYS},
            "word_recall_mean": {w: round(statistics.mean(r.recall[w] for r in scored), 4) for w in WAYS},
            "losing_over_2pct": {
                "layout": [r.id for r in rows if r.set == name and r.loss > MAX_LOSS],
                "layout_text": [r.id for r in rows if r.set == name and r.loss_text > MAX_LOSS],
                "unchecked": [r.id for r in rows if r.set == name and r.loss_unchecked > MAX_LOSS],
            },
            "regions_read_as_text": sum(1 for r in rows if r.set == name for w in r.warnings if "→text" in w),
        }
    scored = [r for r in rows if r.ned]
    worst = sorted(scored, key=lambda r: r.ned["layout"] - r.ned["lines"], reverse=True)[:5]
    out["worst"] = [
        {
            "id": r.id,
            "kind": r.kind,
            "ned_lines": r.ned["lines"],
            "ned_layout": r.ned["layout"],
            "loss": round(r.loss, 4),
        }
        for r in worst
    ]
    out["seconds_per_page"] = {
        k: round(statistics.mean(r.seconds.get(k, 0.0) for r in rows), 3)
        for k in ("ocr_s", "layout_s", "tables_s", "compose_s", "total_s")
    }
    return out


def draw_worst(worst: list[dict[str, Any]], boxes: dict[str, Any], folder: Path) -> None:
    """The boxes image of each worst page (its first page), 900 px wide, as the service draws them."""
    folder.mkdir(parents=True, exist_ok=True)
    for entry in worst:
        image, reading = boxes[f"{entry['id']}#0"]
        drawn = draw_boxes(image, reading.result.blocks)
        drawn.thumbnail((900, 1400))
        drawn.convert("RGB").save(folder / f"{entry['id']}.jpg", quality=80)


def _line(r: Row) -> str:
    ned_part = "  ".join(f"{w} {r.ned[w]:.3f}" for w in WAYS) if r.ned else "(no reference)"
    return (
        f"{r.id:26s} {r.pages:2d}p  lost {r.loss:6.2%} (text {r.loss_text:6.2%}, unchecked {r.loss_unchecked:6.2%})  "
        f"out: furniture {r.furniture_words:3d} w, pictures {r.picture_words:3d} w  NED {ned_part}  "
        f"s/page {r.seconds.get('total_s', 0):.2f}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
