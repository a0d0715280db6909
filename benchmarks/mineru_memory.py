"""Resident memory of a MinerU engine over many documents: does it grow, and does MINERU_MALLOC_TRIM help?

Runs the engine as a replica does (``backends.pipeline.run_document``: render pages, parse, draw boxes) on the flash
tier over a mix of the development PDFs and generated born-digital PDFs of 1-20 pages, and samples the RSS of this
process and of the PDF render workers MinerU spawns (they are part of a replica's footprint).

Usage::

    .venv/bin/python benchmarks/mineru_memory.py               # both settings, one process each
    .venv/bin/python benchmarks/mineru_memory.py --docs 400 --every 50
    .venv/bin/python benchmarks/mineru_memory.py --single --no-malloc-trim
    .venv/bin/python benchmarks/mineru_memory.py --docs 2 --every 1      # smallest run

Each setting runs in a fresh interpreter, so one does not inherit the other's heap.
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

from shared.requests import OutputOptions, RunRequest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this clone's code
DEV_PDFS = ROOT.parent / "shared" / "data" / "dev" / "pdfs"
WORDS = (
    "harbour crane container lighthouse signal keeper winter ledger invoice column margin river bridge tower "
    "engine valve piston copper silver timber granite meadow orchard lantern compass anchor rudder sail"
).split()


SMALLEST_RUN = "--docs 2 --every 1"
"""Arguments of a run that only proves the script works (tests/benchmarks/test_scripts.py runs it)."""


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def descendants(pid: int) -> list[int]:
    """All live descendant processes of ``pid`` (MinerU's render workers)."""
    out: list[int] = []
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return out
    for child in map(int, children):
        out.append(child)
        out.extend(descendants(child))
    return out


def generated_pdf(rng: random.Random, pages: int) -> bytes:
    from backends.textpdf import article_pages

    def sentence() -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(12, 24))).capitalize() + "."

    body = [[" ".join(sentence() for _ in range(3)) for _ in range(rng.randint(3, 8))] for _ in range(pages)]
    return article_pages(body, titles=[f"Section {i + 1}" for i in range(pages)])


def workload(n: int, seed: int = 0) -> list[tuple[str, bytes]]:
    """``n`` documents: the dev PDFs in turn, and generated PDFs of 1-20 pages in between."""
    rng = random.Random(seed)
    dev = [(p.name, p.read_bytes()) for p in sorted(DEV_PDFS.glob("*.pdf"))] if DEV_PDFS.is_dir() else []
    docs: list[tuple[str, bytes]] = []
    for i in range(n):
        if dev and i % 2 == 0:
            docs.append(dev[(i // 2) % len(dev)])
        else:
            pages = rng.choice([1, 2, 3, 5, 8, 13, 20])
            docs.append((f"generated-{i}-{pages}p.pdf", generated_pdf(rng, pages)))
    return docs


def measure(docs: int, every: int, malloc_trim: bool, render_processes: int | None) -> dict:
    """Run the workload in this process and return the RSS samples."""
    import logging

    logging.basicConfig(level=logging.WARNING)
    from backends.pipeline import run_document
    from backends.registry import create_engine
    from shared.documents import open_document

    pid = os.getpid()
    base = rss_mb(pid)
    engine = create_engine("mineru", {"malloc_trim": malloc_trim, "render_processes": render_processes})
    engine.start()
    items = workload(docs)
    samples = [{"docs": 0, "pages": 0, "main_mb": rss_mb(pid), "workers_mb": 0.0, "workers": 0, "elapsed_s": 0.0}]
    started = time.perf_counter()
    pages = 0
    for i, (name, data) in enumerate(items, start=1):
        doc = open_document(data, name=name, accepted=engine.media_types)
        response = run_document(
            engine, doc, RunRequest(request_id=str(i), output=OutputOptions(include_boxes_image=True)), backend="mineru"
        )
        pages += len(response.pages)
        if i % every == 0 or i == len(items):
            workers = descendants(pid)
            samples.append(
                {
                    "docs": i,
                    "pages": pages,
                    "main_mb": round(rss_mb(pid), 1),
                    "workers_mb": round(sum(rss_mb(w) for w in workers), 1),
                    "workers": len(workers),
                    "elapsed_s": round(time.perf_counter() - started, 1),
                }
            )
    return {
        "malloc_trim": malloc_trim,
        "render_processes": render_processes,
        "python_baseline_mb": round(base, 1),
        "samples": samples,
    }


def summarise(result: dict) -> str:
    samples = result["samples"]
    lines = [
        f"MINERU_MALLOC_TRIM={'1' if result['malloc_trim'] else 'unset'}  "
        f"render_processes={result['render_processes']}  (python before import: {result['python_baseline_mb']} MB)",
        f"{'docs':>6} {'pages':>6} {'main MB':>9} {'workers MB':>11} {'n':>3} {'total MB':>9} {'s':>7}",
    ]
    for s in samples:
        total = s["main_mb"] + s["workers_mb"]
        lines.append(
            f"{s['docs']:>6} {s['pages']:>6} {s['main_mb']:>9.1f} {s['workers_mb']:>11.1f} {s['workers']:>3} "
            f"{total:>9.1f} {s['elapsed_s']:>7.1f}"
        )
    if len(samples) >= 3:
        warm, last = samples[1], samples[-1]  # growth after the first sample (imports and pools are warm)
        docs = last["docs"] - warm["docs"]
        growth = (last["main_mb"] + last["workers_mb"]) - (warm["main_mb"] + warm["workers_mb"])
        per100 = growth / docs * 100 if docs else 0.0
        lines.append(
            f"growth after doc {warm['docs']}: {growth:+.1f} MB over {docs} docs = {per100:+.1f} MB / 100 docs"
        )
        result["growth_mb_per_100_docs"] = round(per100, 2)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=200, help="documents per setting")
    parser.add_argument("--every", type=int, default=25, help="sample RSS every N documents")
    parser.add_argument("--render-processes", type=int, default=1, help="MinerU PDF render workers (engine config)")
    parser.add_argument("--single", action="store_true", help="run one setting in this process")
    parser.add_argument("--no-malloc-trim", action="store_true", help="with --single: leave MINERU_MALLOC_TRIM unset")
    parser.add_argument("--json", action="store_true", help="with --single: print the samples as JSON only")
    args = parser.parse_args()

    if args.single:
        result = measure(args.docs, args.every, not args.no_malloc_trim, args.render_processes)
        text = summarise(result)
        print(json.dumps(result) if args.json else text, flush=True)
        return

    for trim in (True, False):
        cmd = [
            sys.executable,
            __file__,
            "--single",
            "--json",
            "--docs",
            str(args.docs),
            "--every",
            str(args.every),
            "--render-processes",
            str(args.render_processes),
        ] + ([] if trim else ["--no-malloc-trim"])
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
        result = json.loads(out.strip().splitlines()[-1])
        print(summarise(result), end="\n\n", flush=True)


if __name__ == "__main__":
    main()
