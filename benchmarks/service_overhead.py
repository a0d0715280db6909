"""What the service costs on top of the engine, measured side by side in one run.

(a) One trivial request (a 64x64 PNG, the fake engine, no boxes image), interleaved:
    - through HTTP -> Serve's HTTP proxy -> router replica -> backend replica (what clients pay), and
    - straight to the backend deployment through a DeploymentHandle from this driver, the document opened and
      validated inside the timer as the router does (``open_document``), so both paths do the same work;
    medians, p95 and their ratio, and where the router's time goes: its ``Server-Timing`` header (read, validate,
    backend call, the backend's own pipeline time, metrics, encode, router total) and, in this process, the cost of
    each piece alone (validation, the pipeline and the engine, pickling the document and the answer, JSON).
    The proxy's share is the client's time minus the router's.
(b) RapidOCR pages/s on generated pages, through the service over HTTP vs the engine called in-process (no Ray),
    page by page alternately, boxes images included on both sides.
(c) MinerU's flash tier on a generated born-digital 5-page PDF, through the service vs in-process, alternately.

    .venv/bin/python benchmarks/service_overhead.py [--requests 300] [--pages 6] [--ray-defaults]
    .venv/bin/python benchmarks/service_overhead.py --requests 3 --pages 1 --pdf-runs 1   # smallest run

By default Ray starts with the CPU profile's Serve settings (``orchestrator.ops.local.serve_env``: HAProxy as the
HTTP proxy, user code on the replica's loop, gRPC between deployments), as ``ocrserve serve`` does;
``--ray-defaults`` measures Ray Serve's defaults instead. Loopback only; bounded request counts; starts and stops its
own local Ray.
"""

from __future__ import annotations

import argparse
import collections
import io
import os
import pickle
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this clone's code and benchmarks.support

from benchmarks.support import ray_worker_env  # noqa: E402
from benchmarks.support.fake_engine import FAKE  # noqa: E402
from orchestrator.ops import samples  # noqa: E402
from shared.requests import OutputOptions, RunRequest

SMALLEST_RUN = "--requests 3 --pages 1 --pdf-runs 1"
"""Arguments of a run that only proves the script works (tests/benchmarks/test_scripts.py runs it)."""

PHASES = [  # Server-Timing names, in the order a request meets them
    ("read", "read body + multipart"),
    ("validate", "validate (sniff, limits, hash)"),
    ("backend", "backend call (round trip)"),
    ("engine", "  of which backend pipeline + engine"),
    ("metrics", "metrics"),
    ("encode", "encode JSON"),
]


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def summary(name: str, seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    row = {"median_ms": statistics.median(ms), "p95_ms": pct(ms, 0.95)}
    print(f"  {name:<44} median {row['median_ms']:8.2f} ms   p95 {row['p95_ms']:8.2f} ms   (n={len(ms)})")
    return row


def server_timing(header: str | None) -> dict[str, float]:
    """``{phase: ms}`` from a Server-Timing header (empty when the server sends none)."""
    out: dict[str, float] = {}
    for item in (header or "").split(","):
        name, _, params = item.strip().partition(";")
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "dur" and name:
                out[name] = out.get(name, 0.0) + float(value)
    return out


def per_call_ms(fn: Callable[[], Any], n: int = 300) -> float:
    for _ in range(10):
        fn()
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--pages", type=int, default=10)
    parser.add_argument("--pdf-runs", type=int, default=6, help="MinerU: documents per path")
    parser.add_argument("--port", type=int, default=0, help="HTTP port of the service started here (0: a free one)")
    parser.add_argument("--ray-defaults", action="store_true", help="Ray Serve's default settings, not the profile's")
    args = parser.parse_args()

    from orchestrator.ops import local

    env = {} if args.ray_defaults else local.serve_env(local.load_config(local.profile_path("cpu")))
    os.environ.update(env)  # before Ray (and Serve's constants) load: every Ray process and this driver see them
    os.environ.update(ray_worker_env())  # replicas import the fake engine from this clone
    print("Serve settings:", ", ".join(f"{k}={v}" for k, v in sorted(env.items())) or "Ray's defaults")

    import ray
    from ray import serve

    from backends.pipeline import run_document
    from backends.registry import create_engine
    from backends.textpdf import article_pages
    from orchestrator.builder import build_app
    from shared.documents import open_document, rasterize_pages

    mineru_config = {"default_tier": "flash", "tiers": ["flash"]}
    ray.init(num_cpus=8, include_dashboard=False, log_to_driver=False)
    port = args.port or local.free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(
        build_app(
            {
                "backends": {
                    "fake": {"engine": FAKE, "deployment": {"ray_actor_options": {"num_cpus": 0.1}}},
                    "rapidocr": {"engine": "rapidocr", "deployment": {"ray_actor_options": {"num_cpus": 1}}},
                    "mineru": {
                        "engine": "mineru",
                        "engine_config": mineru_config,
                        "deployment": {"ray_actor_options": {"num_cpus": 1}},
                    },
                },
                "allow_custom_engines": True,  # the fake engine
            }
        ),
        name="bench",
        route_prefix="/",
    )
    url = f"http://127.0.0.1:{port}"
    try:
        print("\n(a) one trivial request (fake engine, 64x64 PNG, no boxes image), the two paths interleaved")
        buf = io.BytesIO()
        samples.one_column_page(width=64)[0].resize((64, 64)).save(buf, "PNG")
        tiny = buf.getvalue()
        handle = serve.get_deployment_handle("fake", app_name="bench")
        form = {"backend": "fake", "include_boxes_image": "false"}

        def direct(i: int) -> None:
            doc = open_document(tiny, name="t.png")  # what the router does before it calls the backend
            run = RunRequest(request_id=str(i), output=OutputOptions(include_boxes_image=False))
            handle.ocr.remote(doc, run).result()

        http_t, handle_t = [], []
        phases: dict[str, list[float]] = collections.defaultdict(list)
        with httpx.Client(base_url=url, timeout=60) as client:
            for i in range(30):  # warm both paths
                client.post("/v1/ocr", files={"file": ("t.png", tiny)}, data=form)
                direct(i)
            for i in range(args.requests):  # interleaved, alternating which goes first, so drift hits both alike
                for path in ("http", "direct") if i % 2 == 0 else ("direct", "http"):
                    t = time.perf_counter()
                    if path == "direct":
                        direct(i)
                        handle_t.append(time.perf_counter() - t)
                        continue
                    r = client.post("/v1/ocr", files={"file": ("t.png", tiny)}, data=form)
                    http_t.append(time.perf_counter() - t)
                    assert r.status_code == 200, r.text
                    for name, ms in server_timing(r.headers.get("server-timing")).items():
                        phases[name].append(ms)
        a = summary("HTTP -> proxy -> router -> backend", http_t)
        b = summary("handle -> backend (validate + call, no router)", handle_t)
        print(
            f"  ratio (through router / straight): median {a['median_ms'] / b['median_ms']:.2f}x, "
            f"p95 {a['p95_ms'] / b['p95_ms']:.2f}x; added by proxy + router: {a['median_ms'] - b['median_ms']:.1f} ms"
        )

        print("\n  where the time goes (medians of the router's Server-Timing, ms):")
        med = {name: statistics.median(v) for name, v in phases.items()}
        if not med:
            print("    (the server sends no Server-Timing header)")
        else:
            print(f"    {'client total':<40}{a['median_ms']:8.2f}")
            print(f"    {'proxy + HTTP client/server (total - app)':<40}{a['median_ms'] - med.get('app', 0):8.2f}")
            print(f"    {'router replica (app)':<40}{med.get('app', 0):8.2f}")
            for name, label in PHASES:
                if name in med:
                    print(f"    {'  ' + label:<40}{med[name]:8.2f}")
                if name == "engine" and "backend" in med and "engine" in med:
                    print(f"    {'  of which the hop (call - pipeline)':<40}{med['backend'] - med['engine']:8.2f}")
            known = sum(med.get(n, 0) for n, _ in PHASES if n != "engine")
            print(f"    {'  FastAPI routing, deps, middleware':<40}{med.get('app', 0) - known:8.2f}")

        fake = create_engine(FAKE)
        fake.start()
        doc = open_document(tiny, name="t.png")
        answer = run_document(
            fake, doc, RunRequest(request_id="x", output=OutputOptions(include_boxes_image=False)), backend="fake"
        )
        pages = list(rasterize_pages(doc))
        opts = fake.parse_options({})
        run = RunRequest(request_id="x", output=OutputOptions(include_boxes_image=False))
        print("  the same pieces alone, in this process (ms per call):")
        for label, fn in [
            ("open_document (validate)", lambda: open_document(tiny, name="t.png")),
            (
                "run_document (pipeline + fake engine)",
                lambda: run_document(
                    fake,
                    doc,
                    RunRequest(request_id="x", output=OutputOptions(include_boxes_image=False)),
                    backend="fake",
                ),
            ),
            ("  fake engine.run alone", lambda: fake.run(doc, pages, opts)),
            ("pickle round trip: document + RunRequest", lambda: pickle.loads(pickle.dumps((doc, run)))),
            ("pickle round trip: OCRResponse", lambda: pickle.loads(pickle.dumps(answer))),
            ("OCRResponse -> JSON bytes", lambda: answer.__pydantic_serializer__.to_json(answer, by_alias=True)),
        ]:
            print(f"    {label:<44}{per_call_ms(fn):8.3f}")

        print(f"\n(b) RapidOCR pages/s on {args.pages} generated pages (one and two columns), boxes images included")
        page_docs = [
            samples.encode((samples.one_column_page if i % 2 else samples.two_column_page)()[0])
            for i in range(args.pages)
        ]
        with httpx.Client(base_url=url, timeout=60) as client:
            replica_pid = next(
                b["info"]["pid"] for b in client.get("/v1/backends").json()["backends"] if b["name"] == "rapidocr"
            )
        # Ray starts its workers niced (RAY_worker_niceness): on a shared machine the replicas would lose CPU to
        # other work that this driver wins. Run the in-process engine at the replicas' niceness: alike for both.
        niceness = os.getpriority(os.PRIO_PROCESS, replica_pid)
        if niceness > os.getpriority(os.PRIO_PROCESS, 0):
            os.setpriority(os.PRIO_PROCESS, 0, niceness)
        print(f"  (in-process runs at the replicas' niceness, {niceness})")
        engine = create_engine("rapidocr")
        engine.start()
        inproc, served = 0.0, 0.0
        ratios: list[float] = []
        own: list[float] = []  # client time minus the backend's pipeline time: what the service itself adds
        with httpx.Client(base_url=url, timeout=300) as client:
            run_document(engine, open_document(page_docs[0]), RunRequest(request_id="w"), backend="rapidocr")
            client.post("/v1/ocr", files={"file": ("p.png", page_docs[0])}, data={"backend": "rapidocr"})
            for i, data in enumerate(page_docs):
                took = {}
                for path in ("in", "served") if i % 2 == 0 else ("served", "in"):
                    t = time.perf_counter()
                    if path == "in":
                        run_document(engine, open_document(data), RunRequest(request_id="x"), backend="rapidocr")
                    else:
                        r = client.post("/v1/ocr", files={"file": ("p.png", data)}, data={"backend": "rapidocr"})
                        assert r.status_code == 200, r.text
                        engine_ms = server_timing(r.headers.get("server-timing")).get("engine")
                        if engine_ms is not None:
                            own.append((time.perf_counter() - t) * 1000 - engine_ms)
                    took[path] = time.perf_counter() - t
                inproc += took["in"]
                served += took["served"]
                ratios.append(took["in"] / took["served"])
        print(f"  in-process engine:        {args.pages / inproc:6.3f} pages/s ({inproc / args.pages:.3f} s/page)")
        print(f"  through the service/HTTP: {args.pages / served:6.3f} pages/s ({served / args.pages:.3f} s/page)")
        print(
            f"  ratio (service / in-process throughput): {inproc / served:.3f} "
            f"(median of the per-page ratios {statistics.median(ratios):.3f})"
        )
        if own:
            print(
                f"  the service's own time per page (client - backend pipeline): median {statistics.median(own):.1f} ms"
                f" = {statistics.median(own) / 10 / (served / args.pages):.1f}% of a page"
            )
        del engine

        print(f"\n(c) MinerU flash tier, a generated born-digital 5-page PDF, {args.pdf_runs} runs per path")
        pdf = article_pages(
            [[f"Paragraph {p} of page {i + 1}. " + " ".join(samples.PARAGRAPHS) for p in range(3)] for i in range(5)],
            titles=[f"Section {i + 1}" for i in range(5)],
        )
        mineru = create_engine("mineru", mineru_config)
        mineru.start()
        inproc_t, served_t = [], []
        pdf_phases: dict[str, list[float]] = collections.defaultdict(list)
        with httpx.Client(base_url=url, timeout=300) as client:
            run_document(mineru, open_document(pdf, name="a.pdf"), RunRequest(request_id="w"), backend="mineru")
            client.post("/v1/ocr", files={"file": ("a.pdf", pdf)}, data={"backend": "mineru"})
            for i in range(args.pdf_runs):
                for path in ("in", "served") if i % 2 == 0 else ("served", "in"):
                    t = time.perf_counter()
                    if path == "in":
                        run_document(
                            mineru, open_document(pdf, name="a.pdf"), RunRequest(request_id="x"), backend="mineru"
                        )
                        inproc_t.append(time.perf_counter() - t)
                    else:
                        r = client.post("/v1/ocr", files={"file": ("a.pdf", pdf)}, data={"backend": "mineru"})
                        served_t.append(time.perf_counter() - t)
                        assert r.status_code == 200, r.text
                        for name, ms in server_timing(r.headers.get("server-timing")).items():
                            pdf_phases[name].append(ms)
                        pdf_phases["answer_kib"].append(len(r.content) / 1024)
        c_in = summary("in-process (run_document)", inproc_t)
        c_sv = summary("through the service/HTTP", served_t)
        paired = statistics.median(a / b for a, b in zip(inproc_t, served_t))
        print(
            f"  pages/s: in-process {5000 / c_in['median_ms']:.2f}, service {5000 / c_sv['median_ms']:.2f}; "
            f"ratio (service / in-process throughput) {c_in['median_ms'] / c_sv['median_ms']:.3f} "
            f"(median of the per-run ratios {paired:.3f})"
        )
        if "engine" in pdf_phases:
            own_pdf = statistics.median(c - e for c, e in zip((x * 1000 for x in served_t), pdf_phases["engine"]))
            print(
                f"  the service's own time per document (client - backend pipeline): median {own_pdf:.1f} ms"
                f" = {own_pdf / c_sv['median_ms'] * 100:.1f}%"
            )
        print(
            "  service medians: "
            + ", ".join(f"{name} {statistics.median(v):.1f}" for name, v in pdf_phases.items())
            + " (ms; answer in KiB, boxes images included)"
        )
    finally:
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    main()
