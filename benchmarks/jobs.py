"""The job path's fan-out, measured: one job's chunks over 1, 2 and 4 backend replicas, and a real RapidOCR job.

(a) A 64-page job through a backend of fixed per-page latency (``benchmarks/support/fixed_latency.py``: one batch at a
    time per replica, sleeping, so this machine's cores do not decide the result) deployed with 1, 2 and 4
    replicas, each with ``max_ongoing_requests`` 1 and 2, all in one application. Jobs alternate between them
    (runs interleaved, side by side in one run); for each: pages/s from submit to the job's end as the API reports
    it (median of the runs) and the ratio to 1 replica. Goal: ≥ 3.5× at 4 replicas.
(b) A real RapidOCR job (generated pages with known text), before and after: "before" runs a job's chunks one at
    a time on one replica (what the job runner did before it fanned out: ``window_chunks: 1``), "after" fans them
    out over two replicas (``window_chunks: 4``). On a 2-core machine RapidOCR replicas share the cores, so this
    says what fan-out gives a CPU engine here, not on a cluster.

    .venv/bin/python benchmarks/jobs.py [--runs 3] [--pages 64] [--page-s 0.25] [--rapidocr-pages 8] [--store URL]
                                        [--replicas 1,2,4]

Starts and stops its own local Ray; loopback only; the embedded job store in a temp dir unless ``--store`` names a
Redis URL. Prints one table per part.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
REPLICAS = "1,2,4"
"""Part (a)'s replica counts (``--replicas``); 1 is always measured, as the ratios' base."""
TINY = {"ray_actor_options": {"num_cpus": 0.05}}
SMALLEST_RUN = "--runs 1 --pages 4 --chunk-pages 2 --page-s 0.01 --rapidocr-pages 1 --replicas 1,2 --port 0"
"""What tests/benchmarks/test_scripts.py runs: every part once, as small as it goes."""


def fixed_pdf(n: int) -> bytes:
    from PIL import Image

    from orchestrator.ops import samples

    return samples.multi_page_pdf([Image.new("RGB", (200, 150), "white")] * n, dpi=72)


def run_job(client: httpx.Client, data: bytes, backend: str, *, raw: bool = False) -> tuple[float, dict[str, Any]]:
    """Submit, wait for the end (polling), return (seconds from submit to the job's end, final status)."""
    form = {"backend": backend, "include_boxes_image": "false", "include_raw": str(raw).lower()}
    t0 = time.time()
    r = client.post("/v1/jobs", files={"file": ("doc.pdf", data)}, data=form)
    r.raise_for_status()
    job = r.json()
    while True:
        status = client.get(f"/v1/jobs/{job['job_id']}").json()
        if status["state"] not in ("queued", "running"):
            break
        time.sleep(0.05)
    if status["state"] != "succeeded":
        raise RuntimeError(f"job {job['job_id']} {status['state']}: {status.get('error')}")
    return status["finished_at"] - t0, status


def deploy(name: str, args: dict[str, Any]) -> str:
    from ray import serve

    from orchestrator.builder import build_app

    serve.run(build_app(args), name=name, route_prefix=f"/{name}")
    return name


def fixed_latency(base: str, opts: argparse.Namespace, state: str) -> list[str]:
    """Part (a). Each replica count twice: ``max_ongoing_requests`` 1 (a replica is handed a chunk when it is
    free) and 2 (one chunk waits inside each replica while another runs: no gap between chunks, but the last
    chunks can pile up on one replica)."""
    chunks = max(1, opts.pages // opts.chunk_pages)
    variants = {(n, m): f"lat{n}x{m}" for n in opts.replicas for m in (1, 2)}
    backends = {
        name: {
            "engine": "benchmarks.support.fixed_latency:FixedLatencyEngine",
            "engine_config": {"page_s": opts.page_s},
            "deployment": {"num_replicas": n, "max_ongoing_requests": m, **TINY},
        }
        for (n, m), name in variants.items()
    }
    deploy(
        "fanout",
        {
            "backends": backends,
            "router": {"auto_order": list(backends)},
            "jobs": {"store": opts.store, "state_dir": state, "chunk_pages": opts.chunk_pages, "window_chunks": chunks},
            "jobs_deployment": {"max_ongoing_requests": chunks, **TINY},
            "allow_custom_engines": True,  # the fixed-latency engine
        },
    )
    data = fixed_pdf(opts.pages)
    seconds: dict[tuple[int, int], list[float]] = {v: [] for v in variants}
    spread: dict[tuple[int, int], list[list[int]]] = {v: [] for v in variants}
    with httpx.Client(base_url=f"{base}/fanout", timeout=300) as client:
        for name in variants.values():  # warm-up: first calls open connections and load code
            run_job(client, fixed_pdf(4), name)
        for _ in range(opts.runs):
            for variant, name in variants.items():
                elapsed, status = run_job(client, data, name, raw=True)
                assert status["pages_done"] == opts.pages
                seconds[variant].append(elapsed)
                raws = client.get(f"/v1/jobs/{status['job_id']}/result").json()["raw_result"]
                per_replica = collections.Counter(r["pid"] for r in raws)
                spread[variant].append(sorted(per_replica.values(), reverse=True))
    ideal = opts.pages * opts.page_s
    lines = [
        f"(a) {opts.pages}-page job, {opts.page_s} s/page fixed latency (one chunk at a time per replica), "
        f"chunks of {opts.chunk_pages}, window {chunks}, {opts.runs} runs each, interleaved; "
        f"one replica alone needs {ideal:.1f} s",
        "| backend replicas | max_ongoing_requests | job seconds (median; runs) | pages/s | × 1 replica "
        "| chunks per replica (each run) |",
        "|---|---|---|---|---|---|",
    ]
    for m in (1, 2):
        one = opts.pages / statistics.median(seconds[(1, m)])
        for n in opts.replicas:
            med = statistics.median(seconds[(n, m)])
            rate = opts.pages / med
            runs = ", ".join(f"{s:.2f}" for s in seconds[(n, m)])
            per = " ".join("/".join(map(str, c)) for c in spread[(n, m)])
            lines.append(f"| {n} | {m} | {med:.2f} ({runs}) | {rate:.1f} | {rate / one:.2f}× | {per} |")
    return lines


def rapidocr(base: str, opts: argparse.Namespace, state: str) -> list[str]:
    from orchestrator.ops import samples
    from shared.metrics import ned

    images, texts = samples.numbered_pages(opts.rapidocr_pages)
    data = samples.multi_page_pdf(images)
    reader = {"engine": "rapidocr", "deployment": {"ray_actor_options": {"num_cpus": 0.5}}}
    common = {"store": opts.store, "state_dir": state, "chunk_pages": 2}
    deploy(
        "before",
        {
            "backends": {"rapidocr": reader},
            "jobs": {**common, "window_chunks": 1},
            "jobs_deployment": {"max_ongoing_requests": 1, **TINY},
        },
    )
    two = {**reader, "deployment": {**reader["deployment"], "num_replicas": 2}}
    deploy(
        "after",
        {"backends": {"rapidocr": two}, "jobs": {**common, "window_chunks": 4}, "jobs_deployment": TINY},
    )
    seconds: dict[str, list[float]] = {"before": [], "after": []}
    accuracy: dict[str, float] = {}
    for app in ("before", "after"):  # warm-up: each replica's first pages
        with httpx.Client(base_url=f"{base}/{app}", timeout=600) as client:
            run_job(client, data, "rapidocr")
    for _ in range(opts.runs):
        for app in ("before", "after"):
            with httpx.Client(base_url=f"{base}/{app}", timeout=600) as client:
                elapsed, status = run_job(client, data, "rapidocr")
                seconds[app].append(elapsed)
                result = client.get(f"/v1/jobs/{status['job_id']}/result").json()
                accuracy[app] = max(ned(p["markdown"], t) for p, t in zip(result["pages"], texts, strict=True))
    lines = [
        f"(b) RapidOCR, {opts.rapidocr_pages} generated pages, chunks of 2, {opts.runs} runs each, interleaved",
        "| | job seconds (median; runs) | pages/s | worst page NED |",
        "|---|---|---|---|",
    ]
    labels = {"before": "before: chunks one at a time, 1 replica", "after": "after: fanned out, 2 replicas"}
    for app, label in labels.items():
        med = statistics.median(seconds[app])
        runs = ", ".join(f"{s:.2f}" for s in seconds[app])
        lines.append(f"| {label} | {med:.2f} ({runs}) | {opts.rapidocr_pages / med:.2f} | {accuracy[app]:.3f} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--pages", type=int, default=64)
    ap.add_argument("--chunk-pages", type=int, default=4)
    ap.add_argument("--page-s", type=float, default=0.25)
    ap.add_argument("--rapidocr-pages", type=int, default=8, help="0 skips part (b)")
    ap.add_argument("--store", default="embedded", help="'embedded' or a redis:// URL")
    ap.add_argument("--port", type=int, default=8431, help="Serve's HTTP port (0: any free one)")
    ap.add_argument("--replicas", default=REPLICAS, help="part (a)'s replica counts, comma-separated (1 always runs)")
    opts = ap.parse_args()
    try:
        opts.replicas = sorted({1, *(int(n) for n in opts.replicas.split(","))})
    except ValueError:
        ap.error(f"--replicas takes whole numbers separated by commas, not {opts.replicas!r}")
    if opts.replicas[0] < 1:
        ap.error("--replicas: every count is at least 1")

    sys.path.insert(0, str(REPO))  # this file's folder is on the path, not the repository: shared, benchmarks...
    import ray
    from ray import serve

    os.environ.setdefault("RAY_AUTH_MODE", "token")
    state = tempfile.mkdtemp(prefix="ocrserve-jobs-bench-")
    pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    ray.init(
        num_cpus=16,  # logical: replicas ask for fractions, the real cores are shared
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": pythonpath}},  # replicas import benchmarks.support.fixed_latency
    )
    if opts.port == 0:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            opts.port = s.getsockname()[1]
    serve.start(http_options={"host": "127.0.0.1", "port": opts.port})
    base = f"http://127.0.0.1:{opts.port}"
    out: list[str] = []
    try:
        out += fixed_latency(base, opts, f"{state}/{{app}}")
        if opts.rapidocr_pages:
            out += [""] + rapidocr(base, opts, f"{state}/{{app}}")
    finally:
        serve.shutdown()
        ray.shutdown()
    print("\n".join(out))
    print(json.dumps({"store": opts.store.split("@")[-1], "runs": opts.runs}))


if __name__ == "__main__":
    main()
