"""What the RapidOCR layout pass costs and buys: pages/s, NED and TEDS with layout+tables on and off, one run.

The engine runs in-process (models loaded once) over the dev set (``../shared/data/dev/manifest.jsonl`` when it
is there, or ``--manifest``) and over generated report pages with a known table (bordered and borderless). Each
document is read with ``{"layout": false}`` (lines and paragraphs: the engine before the layout pass) and with
the defaults (layout + tables), alternately, ``--repeat`` times, so both settings see the same machine load.

    .venv/bin/python benchmarks/rapidocr_layout.py [--repeat 2] [--json out.json]
    .venv/bin/python benchmarks/rapidocr_layout.py --manifest none     # smallest run: the generated pages only

Prints one row per document (NED off -> on, TEDS off -> on where the reference has tables, seconds per page
off / on) and the totals: pages/s of each setting, the extra seconds per page, and where the layout pass
spends them (layout model, table model, composition), from the engine's raw per-page timings.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this clone's code and benchmarks.support

from backends.pipeline import run_document  # noqa: E402
from backends.rapidocr import RapidOCREngine  # noqa: E402
from benchmarks.support.layout_samples import report_page  # noqa: E402
from shared import samples  # noqa: E402
from shared.documents import open_document  # noqa: E402
from shared.metrics import document_teds, edit_score  # noqa: E402

DEV_MANIFEST = Path(__file__).resolve().parents[2] / "shared" / "data" / "dev" / "manifest.jsonl"
SETTINGS: dict[str, dict[str, Any]] = {"off": {"layout": False}, "on": {}}
SMALLEST_RUN = "--manifest none"
"""Arguments of a run that only proves the script works (tests/benchmarks/test_scripts.py runs it)."""


def documents(manifest: Path | None) -> list[tuple[str, bytes, str]]:
    """(id, bytes, reference markdown) of the dev set's documents and of the generated report pages."""
    docs: list[tuple[str, bytes, str]] = []
    if manifest is not None and manifest.is_file():
        for line in manifest.read_text().splitlines():
            if line.strip():
                entry = json.loads(line)
                docs.append(
                    (
                        entry["id"],
                        (manifest.parent / entry["file"]).read_bytes(),
                        (manifest.parent / entry["truth"]).read_text(),
                    )
                )
    for bordered in (True, False):
        page = report_page(bordered=bordered)
        name = "generated-report-" + ("bordered" if bordered else "borderless")
        docs.append((name, samples.encode(page.image), page.markdown))
    return docs


def measure(engine: RapidOCREngine, data: bytes, options: dict[str, Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = run_document(
        engine,
        open_document(data),
        backend="rapidocr",
        request_id="bench",
        options=options,
        include_boxes_image=False,
        include_raw=True,
    )
    return result, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--manifest",
        type=Path,
        default=DEV_MANIFEST,
        help="JSON-lines dataset (dev set format); a path that is not a file: the generated pages only.",
    )
    parser.add_argument("--repeat", type=int, default=1, help="Runs of each document per setting.")
    parser.add_argument("--json", type=Path, default=None, help="Also write the figures here.")
    args = parser.parse_args(argv)

    engine = RapidOCREngine()
    started = time.perf_counter()
    engine.start()
    print(f"engine start (3 models loaded and warmed up): {time.perf_counter() - started:.2f} s")

    rows = []
    seconds = {name: 0.0 for name in SETTINGS}
    pages = {name: 0 for name in SETTINGS}
    stages: dict[str, list[float]] = {}
    for doc_id, data, reference in documents(args.manifest):
        row: dict[str, Any] = {"id": doc_id}
        for _ in range(args.repeat):
            for name, options in SETTINGS.items():
                result, took = measure(engine, data, options)
                seconds[name] += took
                pages[name] += len(result.pages)
                row.setdefault(f"s_{name}", []).append(took / max(1, len(result.pages)))
                score = edit_score(result.markdown, reference)
                tables = document_teds(result.markdown, reference)
                row[f"ned_{name}"] = round(score.ned, 4)
                row[f"teds_{name}"] = None if tables is None else round(tables.teds, 3)
                row[f"teds_s_{name}"] = None if tables is None else round(tables.teds_structure, 3)
                row["pages"] = len(result.pages)
                row.setdefault("warnings", set()).update(w for p in result.pages for w in p.warnings)
                if name == "on":
                    raws = result.raw_result if isinstance(result.raw_result, list) else [result.raw_result]
                    for page in (p for raw in raws for p in raw["pages"]):
                        for stage, value in page["timings"].items():
                            stages.setdefault(stage, []).append(value)
        row["s_off"] = round(statistics.median(row["s_off"]), 3)
        row["s_on"] = round(statistics.median(row["s_on"]), 3)
        row["warnings"] = sorted(row["warnings"])
        rows.append(row)
        print(
            f"{doc_id:32s} pages {row['pages']:2d}  NED {row['ned_off']:.4f} -> {row['ned_on']:.4f}  "
            f"TEDS {_fmt(row['teds_off'])} -> {_fmt(row['teds_on'])} (struct {_fmt(row['teds_s_on'])})  "
            f"s/page {row['s_off']:.2f} / {row['s_on']:.2f}",
            flush=True,
        )

    rate = {name: pages[name] / seconds[name] for name in SETTINGS if seconds[name]}
    extra = (seconds["on"] / pages["on"]) - (seconds["off"] / pages["off"])
    stage_means = {k: round(statistics.mean(v), 4) for k, v in stages.items()}
    print(
        f"\npages/s  layout+tables off: {rate['off']:.3f}   on: {rate['on']:.3f}   "
        f"({rate['on'] / rate['off']:.2f}x)   extra per page: {extra:+.3f} s"
    )
    print("mean seconds per page with layout on, by stage: " + ", ".join(f"{k} {v}" for k, v in stage_means.items()))
    if args.json:
        args.json.write_text(
            json.dumps(
                {"rows": rows, "pages_per_s": rate, "extra_s_per_page": extra, "stages_s_per_page": stage_means},
                indent=1,
            )
        )
    return 0


def _fmt(value: float | None) -> str:
    return "  -  " if value is None else f"{value:.3f}"


if __name__ == "__main__":
    raise SystemExit(main())
