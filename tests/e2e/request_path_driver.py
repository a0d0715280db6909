"""The CPU profile's request path on a cluster of its own; prints one JSON report on stdout.

Why a separate process: the suite's session cluster runs Ray Serve's defaults, and the profile's settings
(``orchestrator.ops.local.serve_env``: HAProxy as the HTTP proxy, user code on the replica's loop, gRPC between
deployments with its message limit raised) are process settings that must be in place before Ray starts. This
script starts Ray with them as ``ocrserve serve`` does, deploys fake backends behind the router and records what
the tests in ``test_request_path.py`` assert on. Private ``RAY_TMPDIR`` and auth token come from the caller; the
cluster is always shut down; never ``ray stop``.
"""

from __future__ import annotations

import io
import json
import os
import socket
import sys
import traceback
from typing import Any

REPORT_PREFIX = "REQUEST_PATH_REPORT "


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _noise_png(side: int) -> bytes:
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(side).integers(0, 255, (side, side, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def scenario(report: dict[str, Any]) -> None:
    from orchestrator.ops import local

    env = local.serve_env(local.load_config(local.profile_path("cpu")))
    os.environ.update(env)
    report["env"] = env

    import httpx
    import ray
    from ray import serve

    from benchmarks.support.fake_engine import FAKE
    from orchestrator.builder import build_app

    ray.init(num_cpus=8, object_store_memory=200 * 1024 * 1024, include_dashboard=False, log_to_driver=False)
    port = _free_port()  # after Ray's own processes took their ports (one chosen before could be taken by then)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        fake = {"engine": FAKE, "deployment": {"ray_actor_options": {"num_cpus": 0.1}}}
        serve.run(
            build_app({"backends": {"f1": fake, "f2": fake}, "allow_custom_engines": True}),
            name="path",
            route_prefix="/",
        )
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            r = client.post(
                "/v1/ocr",
                files={"file": ("t.png", _noise_png(32))},
                data={"backend": "f1", "include_boxes_image": "false"},
                headers={"x-request-id": "path-1"},
            )
            report["trivial"] = {
                "status": r.status_code,
                "request_id": r.json().get("request_id"),
                "x_request_id": r.headers.get("x-request-id"),
                "server_timing": r.headers.get("server-timing"),
            }
            big = _noise_png(1500)  # ~6.5 MiB: over gRPC's 4 MiB default, both ways (the answer carries boxes)
            r = client.post("/v1/ocr", files={"file": ("big.png", big)}, data={"backend": "f1"})
            report["big"] = {
                "sent": len(big),
                "status": r.status_code,
                "size_bytes": r.json().get("document", {}).get("size_bytes"),
                "answer_bytes": len(r.content),
            }
            r = client.post(  # f2's own call with the document inline (compare's below go by reference)
                "/v1/ocr",
                files={"file": ("t.png", _noise_png(32))},
                data={"backend": "f2", "include_boxes_image": "false"},
            )
            report["f2_status"] = r.status_code
            shared = _noise_png(300)  # > 100 KiB: travels to both backends as one object-store reference
            r = client.post("/v1/compare", files={"file": ("c.png", shared)}, data={"backends": "f1,f2"})
            report["compare"] = {
                "sent": len(shared),
                "status": r.status_code,
                "entries": [
                    {
                        "backend": e["backend"],
                        "size_bytes": (e.get("result") or {}).get("document", {}).get("size_bytes"),
                    }
                    for e in r.json().get("entries", [])
                ],
            }
            r = client.post(
                "/v1/ocr",
                files={"file": ("t.png", _noise_png(32))},
                data={"backend": "f1", "options": '{"sleep_s": 3}', "timeout_s": "0.5"},
            )
            report["timeout"] = {"status": r.status_code, "code": r.json().get("error", {}).get("code")}
        report["in_use"] = in_use(port)
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()


def in_use(port: int) -> dict[str, Any]:
    """What carries the requests, seen from outside the app: which process listens on the HTTP port, and whether
    the router's process holds connections to each backend replica's inter-deployment gRPC server (the port Serve
    itself opened in the replica, read from the replica; handle calls made as Ray actor calls never connect to it),
    and how many connections that server has from anyone."""
    import psutil
    import ray

    listeners = {
        psutil.Process(c.pid).name()
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port and c.pid
    }
    replicas: dict[str, dict[str, Any]] = {}
    for named in ray.util.list_named_actors(all_namespaces=True):
        for deployment in ("router", "f1", "f2"):
            if f"path#{deployment}#" in named["name"]:
                actor = ray.get_actor(named["name"], namespace=named["namespace"])
                pid, grpc_port = ray.get(
                    actor.__ray_call__.remote(lambda a: (os.getpid(), a._replica_impl._internal_grpc_port))
                )
                replicas[deployment] = {"pid": pid, "grpc_port": grpc_port}
    for info in replicas.values():
        info["grpc_clients"] = sum(
            1
            for c in psutil.Process(info["pid"]).net_connections(kind="tcp")
            if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == info["grpc_port"]
        )
    router = psutil.Process(replicas["router"]["pid"])
    peers = {c.raddr.port for c in router.net_connections(kind="tcp") if c.raddr and c.status == "ESTABLISHED"}
    return {
        "http_listeners": sorted(listeners),
        "router_connected_to_grpc_of": sorted(
            d for d, r in replicas.items() if d != "router" and r["grpc_port"] and r["grpc_port"] in peers
        ),
        "replicas": replicas,
    }


def main() -> int:
    report: dict[str, Any] = {}
    status = 0
    try:
        scenario(report)
    except Exception:
        report["error"] = traceback.format_exc()
        status = 1
    print(REPORT_PREFIX + json.dumps(report), flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
