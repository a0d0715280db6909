"""What the service costs on top of the engine, measured side by side in one run.

(a) Router hop: the same trivial request (a 64x64 PNG, fake engine, no boxes image) sent
    - through HTTP → Serve proxy → router replica → backend replica (what clients pay), and
    - straight to the backend deployment through a DeploymentHandle from this driver;
    medians, p95 and their ratio.
(b) RapidOCR pages/s: the same generated pages OCRed through the service over HTTP and by the engine called
    in-process (no Ray), and the ratio.

    .venv/bin/python benchmarks/service_overhead.py [--requests 200] [--pages 6]

Loopback only; bounded request counts; starts and stops its own local Ray.
"""

from __future__ import annotations

import argparse
import statistics
import time

import httpx

from shared import samples


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def summary(name: str, seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    row = {"median_ms": statistics.median(ms), "p95_ms": pct(ms, 0.95)}
    print(f"  {name:<38} median {row['median_ms']:8.2f} ms   p95 {row['p95_ms']:8.2f} ms   (n={len(ms)})")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--pages", type=int, default=6)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()

    import ray
    from ray import serve

    from backends.pipeline import run_document
    from backends.rapidocr import RapidOCREngine
    from orchestrator.builder import build_app
    from shared.documents import open_document
    from shared.requests import RunRequest

    ray.init(num_cpus=8, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    serve.run(
        build_app(
            {
                "backends": {
                    "fake": {"engine": "tests.support.fake_engine:FakeEngine", "deployment": {"ray_actor_options": {"num_cpus": 0.1}}},
                    "rapidocr": {"engine": "rapidocr", "deployment": {"ray_actor_options": {"num_cpus": 1}}},
                }
            }
        ),
        name="bench",
        route_prefix="/",
    )
    url = f"http://127.0.0.1:{args.port}"
    try:
        print("(a) router hop, trivial request (fake engine, 64x64 PNG, no boxes image)")
        tiny = samples.encode(samples.one_column_page(width=64)[0].resize((64, 64)))
        doc = open_document(tiny, name="tiny.png")
        handle = serve.get_deployment_handle("fake", app_name="bench")
        http_t, handle_t = [], []
        with httpx.Client(base_url=url, timeout=60) as client:
            for _ in range(20):  # warm both paths
                client.post(
                    "/v1/ocr", files={"file": ("t.png", tiny)}, data={"backend": "fake", "include_boxes_image": "false"}
                )
                handle.ocr.remote(
                    doc, RunRequest(request_id="w", received_at=time.time(), include_boxes_image=False)
                ).result()
            for i in range(args.requests):  # interleaved, so drift hits both alike
                t = time.perf_counter()
                r = client.post(
                    "/v1/ocr", files={"file": ("t.png", tiny)}, data={"backend": "fake", "include_boxes_image": "false"}
                )
                http_t.append(time.perf_counter() - t)
                assert r.status_code == 200, r.text
                t = time.perf_counter()
                handle.ocr.remote(
                    doc, RunRequest(request_id=str(i), received_at=time.time(), include_boxes_image=False)
                ).result()
                handle_t.append(time.perf_counter() - t)
        a = summary("HTTP -> proxy -> router -> backend", http_t)
        b = summary("handle -> backend (no router, no HTTP)", handle_t)
        print(
            f"  ratio (through router / straight): median {a['median_ms'] / b['median_ms']:.2f}x, "
            f"p95 {a['p95_ms'] / b['p95_ms']:.2f}x; router+proxy cost ~{a['median_ms'] - b['median_ms']:.1f} ms"
        )

        print(f"\n(b) RapidOCR pages/s on {args.pages} generated pages (one column and two columns alternating)")
        pages = [
            samples.encode((samples.one_column_page if i % 2 else samples.two_column_page)()[0])
            for i in range(args.pages)
        ]
        engine = RapidOCREngine()
        engine.start()
        for data in pages[:1]:
            run_document(engine, open_document(data), backend="rapidocr", request_id="w")
        t = time.perf_counter()
        for data in pages:
            run_document(engine, open_document(data), backend="rapidocr", request_id="x")
        inproc = time.perf_counter() - t
        with httpx.Client(base_url=url, timeout=120) as client:
            client.post("/v1/ocr", files={"file": ("p.png", pages[0])}, data={"backend": "rapidocr"})
            t = time.perf_counter()
            for data in pages:
                r = client.post("/v1/ocr", files={"file": ("p.png", data)}, data={"backend": "rapidocr"})
                assert r.status_code == 200, r.text
            served = time.perf_counter() - t
        print(f"  in-process engine:        {args.pages / inproc:6.3f} pages/s ({inproc / args.pages:.3f} s/page)")
        print(f"  through the service/HTTP: {args.pages / served:6.3f} pages/s ({served / args.pages:.3f} s/page)")
        print(f"  ratio (service / in-process throughput): {inproc / served:.3f}")
    finally:
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    main()
