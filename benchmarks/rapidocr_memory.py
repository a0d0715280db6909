"""Resident memory of a RapidOCR engine over many pages of changing sizes: does it level off, and what bounds it?

A replica sees pages of every size, and each new input shape makes onnxruntime plan new buffers (the detector's
input follows the page, the recogniser's the lines' widths, the layout and table models their own resizes). This
runs the engine as a replica does (``backends.pipeline.run_document``, layout and tables on, boxes images drawn)
over a fixed mix of pages — generated pages of random sizes, one to three columns, with report pages (a table, a
figure) and, when present, the reading corpus's pages — and samples this process's RSS every ``--every`` pages.

    PYTHONPATH=. .venv/bin/python benchmarks/rapidocr_memory.py                   # every setting, one process each
    PYTHONPATH=. .venv/bin/python benchmarks/rapidocr_memory.py --pages 300 --every 25
    PYTHONPATH=. .venv/bin/python benchmarks/rapidocr_memory.py --single default   # one setting, this process

Settings: ``default`` (the engine as configured: onnxruntime's CPU arena off in all three models, which is the
packages' own default), ``arena`` (the arena on in RapidOCR's two models, to see what it would cost),
``no-trim`` (the engine without returning freed heap to the OS after each document). Each runs in a fresh
interpreter so none inherits another's heap.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backends.rapidocr.config import FAST_PARAMS  # noqa: E402
from shared.requests import RunRequest  # noqa: E402

CORPUS = ROOT / "tests" / "data" / "corpus" / "pages"
SMALLEST_RUN = "--pages 2 --every 1 --settings default"
"""Arguments of a run that only proves the script works (tests/benchmarks/test_scripts.py runs it)."""
SETTINGS: dict[str, dict[str, Any]] = {
    "default": {},
    "arena": {"params": {**FAST_PARAMS, "EngineConfig.onnxruntime.enable_cpu_mem_arena": True}},
    "no-trim": {"malloc_trim": False},
}


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def workload(n: int, seed: int = 0) -> list[tuple[str, bytes]]:
    """``n`` pages: corpus pages in turn (when present), generated pages of random sizes and report pages."""
    from benchmarks.support.layout_samples import report_page
    from orchestrator.ops import samples

    rng = random.Random(seed)
    corpus = sorted(CORPUS.glob("*")) if CORPUS.is_dir() else []
    items: list[tuple[str, bytes]] = []
    for i in range(n):
        pick = i % 3
        if pick == 0 and corpus:
            path = corpus[(i // 3) % len(corpus)]
            items.append((path.name, path.read_bytes()))
        elif pick == 1:
            width = rng.randrange(600, 2400, 8)
            paragraphs = [rng.choice(samples.PARAGRAPHS) for _ in range(rng.randint(1, 6))]
            if rng.random() < 0.5:
                image, _ = samples.one_column_page(width=width, paragraphs=paragraphs)
            else:
                image, _ = samples.two_column_page(width=width)
            items.append((f"generated-{i}.png", samples.encode(image)))
        else:
            page = report_page(bordered=rng.random() < 0.5, page_number=rng.randint(1, 400))
            scale = rng.uniform(0.6, 1.4)
            image = page.image.resize((int(page.image.width * scale), int(page.image.height * scale)))
            items.append((f"report-{i}.png", samples.encode(image)))
    return items


def measure(setting: str, pages: int, every: int) -> dict[str, Any]:
    """Run the workload in this process and return the RSS samples."""
    import logging

    logging.basicConfig(level=logging.WARNING)
    from backends.pipeline import run_document
    from backends.registry import create_engine
    from shared.documents import open_document

    base = rss_mb()
    config = dict(SETTINGS[setting])
    engine = create_engine("rapidocr", config)
    engine.start()
    samples = [{"pages": 0, "rss_mb": round(rss_mb(), 1), "elapsed_s": 0.0}]
    started = time.perf_counter()
    for i, (name, data) in enumerate(workload(pages), start=1):
        run_document(engine, open_document(data, name=name), RunRequest(request_id=str(i)), backend="rapidocr")
        if i % every == 0 or i == pages:
            samples.append(
                {"pages": i, "rss_mb": round(rss_mb(), 1), "elapsed_s": round(time.perf_counter() - started)}
            )
            print(f"  {setting}: {samples[-1]}", file=sys.stderr, flush=True)
    return {"setting": setting, "python_baseline_mb": round(base, 1), "samples": samples}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=240, help="Pages per setting.")
    parser.add_argument("--every", type=int, default=20, help="Sample RSS every this many pages.")
    parser.add_argument("--single", choices=sorted(SETTINGS), help="Run one setting in this process (JSON out).")
    parser.add_argument("--settings", nargs="*", default=list(SETTINGS), help="Settings to compare.")
    parser.add_argument("--json", type=Path, default=None, help="Also write the samples here.")
    args = parser.parse_args(argv)

    if args.single:
        print(json.dumps(measure(args.single, args.pages, args.every)))
        return 0
    results = []
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for setting in args.settings:
        command = [
            sys.executable,
            __file__,
            "--single",
            setting,
            "--pages",
            str(args.pages),
            "--every",
            str(args.every),
        ]
        out = subprocess.run(
            command, check=True, stdout=subprocess.PIPE, text=True, env=env
        ).stdout  # progress on stderr
        results.append(json.loads(out.strip().splitlines()[-1]))
    print(f"{'pages':>6} " + " ".join(f"{r['setting']:>10}" for r in results) + "   (RSS MiB)")
    for k in range(len(results[0]["samples"])):
        row = [r["samples"][k] for r in results if k < len(r["samples"])]
        print(f"{row[0]['pages']:>6} " + " ".join(f"{s['rss_mb']:>10.1f}" for s in row))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
