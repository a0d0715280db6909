"""Load test: N concurrent clients for T seconds, then throughput, latency percentiles, errors and the RSS of
every Ray process at the start and at the end (does anything grow?).

    .venv/bin/python benchmarks/load.py --clients 8 --seconds 600            # starts its own local service
    .venv/bin/python benchmarks/load.py --url http://127.0.0.1:8000 --backend rapidocr --clients 2 --seconds 60
    .venv/bin/python benchmarks/load.py --mixed --clients 4 --seconds 600   # real engines, good + hostile documents
    .venv/bin/python benchmarks/load.py --clients 1 --seconds 1             # smallest run

``--mixed`` starts the CPU profile as ``ocrserve serve`` does (RapidOCR, MinerU flash, router) unless ``--url`` is
given, and sends real and generated documents, good and hostile, to both engines: it is
``benchmarks/load_mixed.py``, which also runs on its own.

Loopback only: the target must be on 127.0.0.0/8 or localhost. Bounded by time and by --max-requests.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this clone's code and benchmarks.support

from benchmarks.support import ray_worker_env  # noqa: E402
from benchmarks.support.fake_engine import FAKE  # noqa: E402
from orchestrator.ops import samples  # noqa: E402

SMALLEST_RUN = "--clients 1 --seconds 1"
"""Arguments of a run that only proves the script works (tests/benchmarks/test_scripts.py runs it)."""


def ray_processes() -> dict[int, tuple[str, int]]:
    """pid -> (name, RSS bytes) of every Ray process on this machine (workers, raylet, GCS, Serve replicas)."""
    out = {}
    for p in psutil.process_iter(["pid", "name", "cmdline", "memory_info"]):
        cmd = " ".join(p.info["cmdline"] or [])
        name = p.info["name"] or ""
        if (
            name.startswith("ray::")
            or "raylet" in name
            or "gcs_server" in name
            or "ray/" in cmd
            and "default_worker" in cmd
        ):
            label = name if name.startswith("ray::") else (name or cmd[:40])
            out[p.info["pid"]] = (label, p.info["memory_info"].rss)
    return out


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))] if values else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="Target service (loopback only); default: start a local one.")
    ap.add_argument("--backend", default="fake", help="Backend to load (fake measures the service itself).")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--max-requests", type=int, default=1_000_000)
    ap.add_argument("--port", type=int, default=0, help="HTTP port of a service started here (0: a free one)")
    ap.add_argument("--ray-defaults", action="store_true", help="Started service: Ray's defaults, not the profile's")
    ap.add_argument("--mixed", action="store_true", help="Real engines, good and hostile documents (load_mixed.py)")
    ap.add_argument("--app", default="ocr", help="--mixed: Serve application whose replicas' memory is reported")
    args = ap.parse_args()
    if args.mixed:
        import load_mixed  # benchmarks/load_mixed.py, beside this script

        ok = load_mixed.run_mixed(args.url, clients=args.clients, seconds=args.seconds, port=args.port, app=args.app)
        raise SystemExit(0 if ok else 1)

    started_service = args.url is None
    if started_service:
        args.url = start_service(port=args.port, ray_defaults=args.ray_defaults)
    try:
        ok = measure(args)
    finally:
        if started_service:
            from orchestrator.ops import local

            local.stop()
    raise SystemExit(0 if ok else 1)


def start_service(*, port: int, ray_defaults: bool) -> str:
    """A local service with the fake engine and RapidOCR (the CPU profile's Serve settings unless
    ``ray_defaults``), as ``ocrserve serve`` starts Ray; returns its URL."""
    import os

    from orchestrator.ops import local

    # the CPU profile's Serve settings (HAProxy, gRPC between deployments...), as `ocrserve serve` starts Ray
    os.environ.update({} if ray_defaults else local.serve_env(local.load_config(local.profile_path("cpu"))))
    os.environ.update(ray_worker_env())  # replicas import the fake engine from this clone
    import ray
    from ray import serve

    from orchestrator.builder import build_app

    ray.init(num_cpus=8, include_dashboard=False, log_to_driver=False)
    port = port or local.free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(
        build_app(
            {
                "backends": {
                    "fake": {
                        "engine": FAKE,
                        "deployment": {
                            "ray_actor_options": {"num_cpus": 0.1},
                            "max_ongoing_requests": 16,
                            "max_queued_requests": 64,
                        },
                    },
                    "rapidocr": {"engine": "rapidocr", "deployment": {"ray_actor_options": {"num_cpus": 1}}},
                },
                "allow_custom_engines": True,  # the fake engine
            }
        ),
        name="load",
        route_prefix="/",
    )
    return f"http://127.0.0.1:{port}"


def measure(args: argparse.Namespace) -> bool:
    """The load run against ``args.url``; prints the report, returns whether any request succeeded."""
    host = urlparse(args.url).hostname or ""
    if not (host == "localhost" or host.startswith("127.") or host == "::1"):
        raise SystemExit(f"refusing to load {host}: loopback targets only")

    page = samples.encode(samples.one_column_page()[0])
    latencies: list[float] = []
    statuses: collections.Counter[int | str] = collections.Counter()
    lock = threading.Lock()
    stop_at = time.monotonic() + args.seconds
    sent = [0]

    def client_loop() -> None:
        with httpx.Client(base_url=args.url, timeout=120) as c:
            while time.monotonic() < stop_at:
                with lock:
                    if sent[0] >= args.max_requests:
                        return
                    sent[0] += 1
                t = time.perf_counter()
                try:
                    r = c.post(
                        "/v1/ocr",
                        files={"file": ("p.png", page)},
                        data={"backend": args.backend, "include_boxes_image": "false"},
                    )
                    code: int | str = r.status_code
                    if r.status_code in (429, 503):
                        time.sleep(min(float(r.headers.get("retry-after", 1)), 5))
                except httpx.HTTPError as e:
                    code = type(e).__name__
                dt = time.perf_counter() - t
                with lock:
                    statuses[code] += 1
                    if code == 200:
                        latencies.append(dt)

    rss_start = ray_processes()
    t0 = time.monotonic()
    threads = [threading.Thread(target=client_loop, daemon=True) for _ in range(args.clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.monotonic() - t0
    rss_end = ray_processes()

    ok = statuses.get(200, 0)
    print(f"target {args.url} backend={args.backend} clients={args.clients} duration={wall:.0f} s")
    print(f"requests {sum(statuses.values())}, ok {ok}, throughput {ok / wall:.1f} req/s")
    print(
        f"latency ms: p50 {pct(latencies, 0.5) * 1000:.1f}  p95 {pct(latencies, 0.95) * 1000:.1f}  "
        f"p99 {pct(latencies, 0.99) * 1000:.1f}  mean {statistics.fmean(latencies) * 1000 if latencies else 0:.1f}"
    )
    print("statuses:", dict(statuses))
    print(f"{'Ray process':<48}{'RSS start MB':>14}{'RSS end MB':>12}{'growth':>9}")
    for pid in sorted(set(rss_start) | set(rss_end), key=lambda p: -(rss_end.get(p, (0, 0))[1])):
        name = (rss_end.get(pid) or rss_start.get(pid))[0]
        a = rss_start.get(pid, (name, 0))[1] / 2**20
        b = rss_end.get(pid, (name, 0))[1] / 2**20
        print(f"{name[:46]:<48}{a:>14.0f}{b:>12.0f}{(b - a):>+9.0f}")
    total_a = sum(v[1] for v in rss_start.values()) / 2**20
    total_b = sum(v[1] for v in rss_end.values()) / 2**20
    print(f"{'total':<48}{total_a:>14.0f}{total_b:>12.0f}{total_b - total_a:>+9.0f}")
    return ok > 0


if __name__ == "__main__":
    main()
