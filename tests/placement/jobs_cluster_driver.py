"""Jobs on a simulated multi-node cluster; prints one JSON report on stdout.

Like ``placement_driver.py`` (read its docstring for why a subprocess, the private temp dir and token): a
``ray.cluster_utils.Cluster`` of a head and two worker "nodes" on this machine, a private ``redis-server`` (the
cluster's job store and broker, reached by every node), and the real application deployed as ``serve deploy``
does, with the fake engine as the backend. Phases:

1. ``fanout``    the backend has one replica on each worker node (a custom resource only those advertise, one
   unit each); one job of 8 one-page chunks, window 8, goes through HTTP. The fake engine reports, per chunk,
   the node it ran on and when it started and ended (``include_raw``): the report lists them.
2. ``autoscale`` the consumer deployment autoscales on the queue's length (Ray's
   ``AsyncInferenceAutoscalingPolicy``, through ``orchestrator.jobs.autoscaling``): 1 to 3 replicas, one chunk
   at a time each. A 24-chunk job with a window of 24 fills the queue; the report samples the consumer's running
   replicas (and their nodes) while it runs and after it ends.

Usage (what tests/placement/test_jobs_cluster.py runs)::

    RAY_AUTH_MODE=token RAY_TMPDIR=$(mktemp -d) PYTHONPATH=. .venv/bin/python tests/placement/jobs_cluster_driver.py
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import httpx

logger = logging.getLogger("jobs_cluster_driver")

APP = "ocr"
MIB = 1024 * 1024
PHASES = ("fanout", "autoscale")
REPORT_PREFIX = "JOBS_CLUSTER_REPORT "
NODE_ARGS: dict[str, dict[str, Any]] = {
    "head": {"num_cpus": 4},
    "node-a": {"num_cpus": 2, "resources": {"ocr_node": 1}},
    "node-b": {"num_cpus": 2, "resources": {"ocr_node": 1}},
}
COMMON_NODE_ARGS: dict[str, Any] = {"object_store_memory": 100 * MIB}
FAKE = "benchmarks.support.fake_engine:FakeEngine"


def tiny_pdf(n: int) -> bytes:
    from PIL import Image

    from orchestrator.ops import samples

    return samples.multi_page_pdf([Image.new("RGB", (160, 120), "white")] * n, dpi=72)


class Scenario:
    def __init__(self, *, timeout_s: float, state_dir: Path) -> None:
        self.timeout_s = timeout_s
        self.state_dir = state_dir
        self.cluster: Any = None
        self.redis: Any = None
        self.port = 0
        self.report: dict[str, Any] = {"phases": {}, "nodes": {}, "error": None}

    def start(self) -> None:
        import ray
        from ray import serve
        from ray.cluster_utils import Cluster

        from tests.support.redis_server import RedisServer

        self.redis = RedisServer(self.state_dir / "redis").start()
        self.cluster = Cluster(
            initialize_head=True,
            head_node_args={**COMMON_NODE_ARGS, **NODE_ARGS["head"], "include_dashboard": False},
        )
        self.report["nodes"]["head"] = self.cluster.head_node.node_id
        for role in ("node-a", "node-b"):
            self.report["nodes"][role] = self.cluster.add_node(**COMMON_NODE_ARGS, **NODE_ARGS[role]).node_id
        ray.init(address=self.cluster.address, namespace="serve", log_to_driver=False)
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": self.port})

    def shutdown(self) -> None:
        import ray
        from ray import serve

        try:
            if ray.is_initialized():
                serve.shutdown()
        except Exception:
            logger.exception("serve.shutdown failed")
        finally:
            ray.shutdown()
            if self.cluster is not None:
                self.cluster.shutdown()
            if self.redis is not None:
                self.redis.stop()

    def role_of(self, node_id: str | None) -> str | None:
        for role, hex_id in self.report["nodes"].items():
            if hex_id == node_id:
                return role
        return node_id

    def deploy(self, args: dict[str, Any]) -> None:
        from ray.serve._private import api as serve_api
        from ray.serve.schema import ServeDeploySchema

        config = ServeDeploySchema.model_validate(
            {
                "proxy_location": "HeadOnly",
                "http_options": {"host": "127.0.0.1", "port": self.port},
                "applications": [
                    {"name": APP, "route_prefix": "/", "import_path": "orchestrator.builder:build_app", "args": args}
                ],
            }
        )
        serve_api.serve_start(proxy_location="HeadOnly").deploy_apps(config, _blocking=False)
        self.wait_for(lambda: self.app_running(), "the application RUNNING")

    def app_running(self) -> bool:
        from ray import serve

        app = serve.status().applications.get(APP)
        return app is not None and str(app.status).endswith("RUNNING")

    def wait_for(self, condition: Any, what: str) -> float:
        t0 = time.monotonic()
        while not condition():
            if time.monotonic() - t0 > self.timeout_s:
                raise TimeoutError(f"not reached within {self.timeout_s:.0f} s: {what}")
            time.sleep(0.25)
        return round(time.monotonic() - t0, 2)

    def replicas(self, deployment: str) -> list[dict[str, Any]]:
        """Live replicas of ``deployment``: node role and pid, from the GCS actor table."""
        from ray._private import state

        name = f"ServeReplica:{APP}:{deployment}"
        return [
            {"node": self.role_of(a["Address"]["NodeID"]), "pid": a["Pid"]}
            for a in state.actors().values()
            if a["ActorClassName"] == name and a["State"] == "ALIVE"
        ]

    def app_args(self, *, jobs: dict[str, Any], jobs_deployment: dict[str, Any]) -> dict[str, Any]:
        return {
            "backends": {
                "fake": {
                    "engine": FAKE,
                    "deployment": {
                        "num_replicas": 2,
                        "max_ongoing_requests": 1,
                        "ray_actor_options": {"num_cpus": 0.1, "resources": {"ocr_node": 1}},
                    },
                }
            },
            "router": {"auto_order": ["fake"]},
            "router_deployment": {"num_replicas": 1, "ray_actor_options": {"num_cpus": 0.1}},
            "jobs": {"store": self.redis.url, "chunk_pages": 1, "heartbeat_s": 1, "stale_s": 4, "sweep_s": 1, **jobs},
            "jobs_deployment": {"ray_actor_options": {"num_cpus": 0.1}, **jobs_deployment},
            "allow_custom_engines": True,  # the fake engine
        }

    def submit(self, client: httpx.Client, pages: int, sleep_s: float) -> str:
        r = client.post(
            "/v1/jobs",
            files={"file": ("d.pdf", tiny_pdf(pages))},
            data={"backend": "fake", "include_raw": "true", "options": json.dumps({"sleep_s": sleep_s})},
        )
        r.raise_for_status()
        return r.json()["job_id"]

    def wait_job(self, client: httpx.Client, job_id: str, on_tick: Any = None) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            status = client.get(f"/v1/jobs/{job_id}").json()
            if on_tick is not None:
                on_tick(status)
            if status["state"] in ("succeeded", "failed", "cancelled"):
                return status
            time.sleep(0.5)
        raise TimeoutError(f"job {job_id} did not end within {self.timeout_s:.0f} s")

    # --- phases --------------------------------------------------------------------------------------------

    def fanout(self) -> dict[str, Any]:
        self.deploy(
            self.app_args(jobs={"window_chunks": 8}, jobs_deployment={"num_replicas": 1, "max_ongoing_requests": 4})
        )
        backend_nodes = sorted(r["node"] for r in self.replicas("fake"))
        with httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=60) as client:
            job_id = self.submit(client, 8, sleep_s=1.0)
            status = self.wait_job(client, job_id)
            result = client.get(f"/v1/jobs/{job_id}/result").json()
        chunks = [
            {"node": self.role_of(raw["node_id"]), "pid": raw["pid"], "started": raw["started"], "ended": raw["ended"]}
            for raw in result["raw_result"]
        ]
        return {"backend_nodes": backend_nodes, "status": status, "chunks": chunks, "pages": len(result["pages"])}

    def autoscale(self) -> dict[str, Any]:
        from ray import serve

        serve.delete(APP)
        self.deploy(
            self.app_args(
                jobs={"window_chunks": 24, "queue_poll_s": 1},
                jobs_deployment={
                    "max_ongoing_requests": 1,
                    "autoscaling_config": {
                        "min_replicas": 1,
                        "max_replicas": 3,
                        "target_ongoing_requests": 2,
                        "upscale_delay_s": 1,
                        "downscale_delay_s": 3,
                        "metrics_interval_s": 1,
                        "look_back_period_s": 2,
                    },
                },
            )
        )
        samples: list[dict[str, Any]] = []

        def sample(status: dict[str, Any]) -> None:
            consumers = self.replicas("jobs")
            samples.append(
                {
                    "t": round(time.time(), 2),
                    "pages_done": status["pages_done"],
                    "consumers": len(consumers),
                    "nodes": sorted({c["node"] for c in consumers}),
                }  # fmt: skip
            )

        before = len(self.replicas("jobs"))
        with httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=60) as client:
            job_id = self.submit(client, 24, sleep_s=1.5)
            status = self.wait_job(client, job_id, on_tick=sample)
        after_s = self.wait_for(lambda: len(self.replicas("jobs")) == 1, "consumers back to 1 after the queue emptied")
        return {"before": before, "samples": samples, "status": status, "back_to_one_s": after_s}


def _raise_on_signal(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated subset of {PHASES}")
    parser.add_argument("--timeout-s", type=float, default=120.0, help="longest wait for one condition")
    opts = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    signal.signal(signal.SIGTERM, _raise_on_signal)
    t0 = time.monotonic()
    scenario = Scenario(timeout_s=opts.timeout_s, state_dir=Path(tempfile.mkdtemp(prefix="jobs-cluster-")))
    status = 0
    try:
        scenario.start()
        for phase in opts.phases.split(","):
            if phase not in PHASES:
                raise ValueError(f"unknown phase {phase!r}; known: {PHASES}")
            t = time.monotonic()
            logger.info("phase %s", phase)
            result = getattr(scenario, phase)()
            result["seconds"] = round(time.monotonic() - t, 2)
            scenario.report["phases"][phase] = result
    except (Exception, KeyboardInterrupt) as e:
        scenario.report["error"] = f"{type(e).__name__}: {e}"
        scenario.report["traceback"] = traceback.format_exc()
        status = 1
    finally:
        scenario.shutdown()
        scenario.report["total_s"] = round(time.monotonic() - t0, 2)
        print(REPORT_PREFIX + json.dumps(scenario.report), flush=True)
    return status


if __name__ == "__main__":
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    sys.exit(main())
