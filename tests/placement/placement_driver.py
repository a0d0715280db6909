"""Placement scenario on a simulated multi-node GPU cluster; prints one JSON report on stdout.

Why a separate process: the test suite shares one ``ray.init()`` cluster per pytest session, and one Python
process cannot join a second Ray cluster. This script starts its own ``ray.cluster_utils.Cluster`` (several
raylets on loopback, each a "node"), with *logical* GPUs and custom resources (Ray resources are bookkeeping,
so a CPU machine can play a GPU cluster), deploys the real application the way ``serve deploy`` and KubeRay do
(a Serve config naming ``orchestrator.builder:build_app``), with the fake engine in place of DeepSeek-OCR and
MinerU, and records where Ray put every replica:

- the GPU ids, read *inside* each replica (``CUDA_VISIBLE_DEVICES``, which Ray sets from the GPU ids it
  assigned; reported by ``BackendDeployment.describe()``), and
- the node, from the GCS actor table (the record ``ray.util.state.list_actors`` reads, but without needing the
  dashboard, which we do not start to keep memory down), joined to ``describe()`` on the replica's pid.

Phases (each builds on the previous cluster):

1. ``one_box``   one node with 2 GPUs: deepseek-ocr and mineru (``num_gpus: 1`` each) get different GPUs.
2. ``scale_out`` a second GPU node joins; deepseek-ocr goes to 2 replicas through the config's ``deployments:``
   override (as an operator would on a live service): the new one takes a free GPU, the others keep running.
3. ``node_loss`` the first GPU node is removed: its replicas come back on the remaining node's free GPUs.
4. ``pinned``    deepseek-ocr asks for a custom resource only the "deepseek" node advertises, mineru for a node
   label only gpu-b carries, each with one replica more than its node kind can hold: every replica lands
   on its node kind, and each extra replica stays pending although the "deepseek" node has a free GPU.
5. ``tensor_parallel`` deepseek-ocr with ``tensor_parallel_size: 2`` (the fake engine starts one worker per GPU
   bundle, as vLLM's Ray executor does) and three replicas on the two 3-GPU nodes left: the builder derives a
   STRICT_PACK placement group of two one-GPU bundles per replica, so two replicas run, each with its two workers
   on two GPUs of one node, and the third waits although two GPUs are free - one on each node.

The cluster is always shut down (``finally``), the Ray temp dir is private (``RAY_TMPDIR``, set by the caller),
and auth uses a per-run token (``RAY_AUTH_TOKEN``), so nothing touches other clusters on the machine. Never
``ray stop``. Exit status 0 when the scenario ran (the assertions live in the pytest test), 1 on an error,
which the report's ``error`` field describes.

Usage (what tests/placement/test_gpu_placement.py runs)::

    RAY_AUTH_MODE=token RAY_TMPDIR=$(mktemp -d) PYTHONPATH=. .venv/bin/python tests/placement/placement_driver.py
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("placement_driver")

APP = "ocr"
GPU_BACKENDS = ("deepseek-ocr", "mineru")
MIB = 1024 * 1024
PHASES = ("one_box", "scale_out", "node_loss", "pinned", "tensor_parallel")
REPORT_PREFIX = "PLACEMENT_REPORT "

# Logical capacities of the simulated nodes. CPUs are logical too: replicas ask for 0.1.
NODE_ARGS: dict[str, dict[str, Any]] = {
    # Head: controller, router, no GPU (as on a real cluster, where the head should not take model replicas).
    "head": {"num_cpus": 4, "num_gpus": 0},
    # The "one box": two GPUs.
    "gpu-a": {"num_cpus": 2, "num_gpus": 2},
    # Joins in scale_out; 3 GPUs so it can absorb gpu-a's replicas in node_loss. Also a MinerU node (label).
    "gpu-b": {"num_cpus": 2, "num_gpus": 3, "labels": {"ocrserve.io/gpu-pool": "mineru"}},
    # Joins in pinned: 3 GPUs but only 2 units of deepseek_gpu, so one GPU stays free: the witness that the
    # pinned replicas left pending were refused by the pin, not for want of a GPU.
    "deepseek": {"num_cpus": 2, "num_gpus": 3, "resources": {"deepseek_gpu": 2}},
}
COMMON_NODE_ARGS: dict[str, Any] = {"object_store_memory": 100 * MIB}


def backend(*, replicas: int = 1, engine_config: dict[str, Any] | None = None, **actor_options: Any) -> dict[str, Any]:
    """A fake-engine backend entry of ``AppArgs.backends``, with a fast health check (quick failure detection)."""
    return {
        "engine": "benchmarks.support.fake_engine:FakeEngine",
        "engine_config": engine_config or {},
        "deployment": {
            "num_replicas": replicas,
            "health_check_period_s": 1,
            "health_check_timeout_s": 5,
            "graceful_shutdown_timeout_s": 0,
            "ray_actor_options": {"num_gpus": 1, "num_cpus": 0.1, **actor_options},
        },
    }


def app_args(deepseek: dict[str, Any], mineru: dict[str, Any]) -> dict[str, Any]:
    return {
        "backends": {"deepseek-ocr": deepseek, "mineru": mineru},
        "router": {"auto_order": list(GPU_BACKENDS)},
        "router_deployment": {"num_replicas": 1, "ray_actor_options": {"num_cpus": 0.1}},
        "allow_custom_engines": True,  # the fake engine
    }


class Scenario:
    """The simulated cluster, the deployed app, and how to read where replicas run."""

    def __init__(self, *, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.cluster: Any = None
        self.nodes: dict[str, Any] = {}  # role -> ray._private.node.Node
        self.report: dict[str, Any] = {"phases": {}, "nodes": {}, "error": None}

    # --- cluster -------------------------------------------------------------------------------------------

    def start(self) -> None:
        import ray
        from ray import serve
        from ray.cluster_utils import Cluster

        t0 = time.monotonic()
        self.cluster = Cluster(
            initialize_head=True,
            head_node_args={
                **COMMON_NODE_ARGS,
                **NODE_ARGS["head"],
                "include_dashboard": False,
                # Notice a removed node within a few seconds instead of the default ~30 s.
                "_system_config": {"health_check_period_ms": 1000, "health_check_failure_threshold": 5},
            },
        )
        self.nodes["head"] = self.cluster.head_node
        self.report["nodes"]["head"] = self.cluster.head_node.node_id
        self.add_node("gpu-a")
        ray.init(address=self.cluster.address, namespace="serve", log_to_driver=False)
        # No HTTP proxy: the scenario talks to replicas through handles, and a proxy per node costs ~150 MB each.
        serve.start(proxy_location="Disabled")
        self.report["ray_version"] = ray.__version__
        self.report["auth_mode"] = os.environ.get("RAY_AUTH_MODE")
        self.report["startup_s"] = round(time.monotonic() - t0, 2)

    def add_node(self, role: str) -> None:
        node = self.cluster.add_node(**COMMON_NODE_ARGS, **NODE_ARGS[role])
        self.nodes[role] = node
        self.report["nodes"][role] = node.node_id

    def remove_node(self, role: str) -> None:
        self.cluster.remove_node(self.nodes.pop(role))

    def shutdown(self) -> None:
        import ray
        from ray import serve

        try:
            if ray.is_initialized():
                serve.shutdown()
        except Exception:  # a broken cluster must still be torn down
            logger.exception("serve.shutdown failed")
        finally:
            ray.shutdown()
            if self.cluster is not None:
                self.cluster.shutdown()

    def role_of(self, node_id: str | None) -> str | None:
        for role, hex_id in self.report["nodes"].items():
            if hex_id == node_id:
                return role
        return node_id

    # --- deployments ---------------------------------------------------------------------------------------

    def deploy(self, args: dict[str, Any], *, replicas: dict[str, int] | None = None, wait: bool = True) -> None:
        """Deploy the app the way ``serve deploy`` / KubeRay do: a Serve config with ``import_path`` + ``args``.

        ``replicas`` goes into the config's ``deployments:`` overrides, not into ``args``: Serve hashes
        ``import_path`` + ``args`` into the app's code version, so changing ``args`` replaces every replica,
        while an override of ``num_replicas`` is a lightweight update that leaves running replicas alone.
        """
        from ray.serve._private import api as serve_api
        from ray.serve.schema import ServeDeploySchema

        replicas = replicas or {}
        config = ServeDeploySchema.model_validate(
            {
                "proxy_location": "Disabled",
                "applications": [
                    {
                        "name": APP,
                        "route_prefix": "/",
                        "import_path": "orchestrator.builder:build_app",
                        "args": args,
                        "deployments": [{"name": n, "num_replicas": k} for n, k in replicas.items()],
                    }
                ],
            }
        )
        serve_api.serve_start(proxy_location="Disabled").deploy_apps(config, _blocking=False)
        if wait:
            wanted = {n: b["deployment"]["num_replicas"] for n, b in args["backends"].items()} | replicas
            self.wait_for(lambda: all(self.running(n) == k for n, k in wanted.items()), f"replicas {wanted}")

    def running(self, deployment: str) -> int:
        """Replicas that Serve calls RUNNING and the GCS calls ALIVE (dead ones linger briefly in Serve)."""
        from ray import serve
        from ray.serve._private.common import ReplicaState

        app = serve.status().applications.get(APP)
        if app is None or deployment not in app.deployments:
            return 0
        serve_running = app.deployments[deployment].replica_states.get(ReplicaState.RUNNING, 0)
        alive = sum(1 for a in self.replica_actors(deployment) if a["State"] == "ALIVE")
        return min(serve_running, alive)

    def wait_for(self, condition: Callable[[], bool], what: str) -> float:
        t0 = time.monotonic()
        while not condition():
            if time.monotonic() - t0 > self.timeout_s:
                raise TimeoutError(f"not reached within {self.timeout_s:.0f} s: {what}")
            time.sleep(0.25)
        return round(time.monotonic() - t0, 2)

    # --- where replicas run --------------------------------------------------------------------------------

    def replica_actors(self, deployment: str) -> list[dict[str, Any]]:
        """The deployment's replica actors from the GCS actor table (any state), each with pid and node id.

        ``ray.util.state.list_actors`` would give the same rows but needs the dashboard; the GCS table is
        where it reads them from.
        """
        from ray._private import state

        class_name = f"ServeReplica:{APP}:{deployment}"
        return [a for a in state.actors().values() if a["ActorClassName"] == class_name and a["State"] != "DEAD"]

    def placements(self, deployment: str) -> list[dict[str, Any]]:
        """One row per live replica: node role, GPU ids Ray gave it, pid. Asks each replica via ``describe()``.

        Handle calls are load-balanced, so we call until every live replica (by pid) has answered.
        """
        from ray import serve

        alive = {a["Pid"]: a for a in self.replica_actors(deployment) if a["State"] == "ALIVE"}
        handle = serve.get_deployment_handle(deployment, app_name=APP)
        seen: dict[int, dict[str, Any]] = {}
        deadline = time.monotonic() + self.timeout_s
        while set(alive) - set(seen):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{deployment}: replicas {sorted(set(alive) - set(seen))} never answered")
            info = handle.describe.remote().result(timeout_s=self.timeout_s).info
            seen[info["pid"]] = info
        rows = []
        for pid, actor in sorted(alive.items()):
            visible = seen[pid].get("cuda_visible_devices") or ""
            row = {"pid": pid, "node": self.role_of(actor["Address"]["NodeID"]), "gpu_ids": _ids(visible)}
            if "tp_workers" in seen[pid]:  # a tensor-parallel replica: where its workers run, which GPU each sees
                row["bundles"] = seen[pid]["placement_group_bundles"]
                row["workers"] = [
                    {"node": self.role_of(w["node_id"]), "gpu_ids": _ids(w["cuda_visible_devices"] or "")}
                    for w in seen[pid]["tp_workers"]
                ]
            rows.append(row)
        return rows

    def snapshot(self, deployments: tuple[str, ...] = GPU_BACKENDS) -> dict[str, Any]:
        pending = {d: sum(1 for a in self.replica_actors(d) if a["State"] != "ALIVE") for d in deployments}
        return {"replicas": {d: self.placements(d) for d in deployments}, "pending": pending}

    # --- phases --------------------------------------------------------------------------------------------

    def one_box(self) -> dict[str, Any]:
        self.deploy(app_args(backend(), backend()))
        return self.snapshot()

    def scale_out(self) -> dict[str, Any]:
        before = self.snapshot()
        self.add_node("gpu-b")
        self.deploy(app_args(backend(), backend()), replicas={"deepseek-ocr": 2})
        return {"before": before, **self.snapshot()}

    def node_loss(self) -> dict[str, Any]:
        before = self.snapshot()
        self.remove_node("gpu-a")
        recovered_s = self.wait_for(
            lambda: (
                self.running("deepseek-ocr") == 2
                and self.running("mineru") == 1
                and all(
                    self.role_of(a["Address"]["NodeID"]) != "gpu-a"
                    for d in GPU_BACKENDS
                    for a in self.replica_actors(d)
                    if a["State"] == "ALIVE"
                )
            ),
            "replicas back on the remaining nodes",
        )
        return {"removed": "gpu-a", "before": before, "recovered_s": recovered_s, **self.snapshot()}

    def pinned(self) -> dict[str, Any]:
        from ray import serve

        serve.delete(APP)
        self.add_node("deepseek")
        deepseek = backend(replicas=3, resources={"deepseek_gpu": 1})  # the node advertises only 2 units
        mineru = backend(replicas=4, label_selector={"ocrserve.io/gpu-pool": "mineru"})  # gpu-b has 3 GPUs
        self.deploy(app_args(deepseek, mineru), wait=False)
        self.wait_for(
            lambda: self.running("deepseek-ocr") == 2 and self.running("mineru") == 3, "pinned replicas running"
        )
        # not a pause: the scheduler has looked at both extra replicas and holds them as unplaceable demand
        self.wait_for(lambda: self.unplaced_gpu_requests() >= 2, "the extra replicas reported as unplaceable")
        snap = self.snapshot()
        snap["free_gpus"] = self.free_gpus()
        return snap

    def tensor_parallel(self) -> dict[str, Any]:
        from ray import serve

        serve.delete(APP)
        for role in ("gpu-b", "deepseek"):  # the two 3-GPU nodes (already there after the phases before)
            if role not in self.nodes:
                self.add_node(role)
        if "gpu-a" in self.nodes:
            self.remove_node("gpu-a")
        deepseek = backend(replicas=3, engine_config={"tensor_parallel_size": 2}, num_gpus=0)
        mineru = backend(num_gpus=0)  # no GPU: the two nodes' six GPUs are the tensor-parallel replicas' alone
        self.deploy(app_args(deepseek, mineru), wait=False)
        self.wait_for(
            lambda: self.running("deepseek-ocr") == 2 and self.running("mineru") == 1, "tensor-parallel replicas"
        )
        # the scheduler has looked at the third replica's two-GPU bundle and holds it as unplaceable demand
        self.wait_for(lambda: self.unplaced_gpu_requests() >= 1, "the third replica reported as unplaceable")
        snap = self.snapshot(("deepseek-ocr",))
        app = serve.status().applications[APP].deployments["deepseek-ocr"]
        snap["replica_states"] = {str(state): count for state, count in app.replica_states.items()}
        snap["free_gpus"] = self.free_gpus()
        return snap

    def unplaced_gpu_requests(self) -> int:
        """GPU requests the cluster's schedulers have seen and could not place, from the GCS's resource state (the
        demand an autoscaler would be asked to add nodes for): single requests and gang (placement group) ones."""
        import ray
        from ray.autoscaler.v2.sdk import get_cluster_resource_state

        state = get_cluster_resource_state(ray._private.worker.global_worker.gcs_client)
        single = sum(r.count for r in state.pending_resource_requests if r.request.resources_bundle.get("GPU", 0) > 0)
        gang = sum(
            1
            for g in state.pending_gang_resource_requests
            if any(r.resources_bundle.get("GPU", 0) > 0 for r in g.requests)
        )
        return int(single + gang)

    def free_gpus(self) -> dict[str, float]:
        """Unused GPUs per node role: shows that the pending replica was not for want of GPUs."""
        from ray._private import state

        free = state.available_resources_per_node()
        return {self.role_of(node_id): res.get("GPU", 0.0) for node_id, res in free.items()}


def _ids(visible: str) -> list[str]:
    return [g for g in visible.split(",") if g]


def _raise_on_signal(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated subset of {PHASES}")
    parser.add_argument(
        "--timeout-s", type=float, default=120.0, help="longest wait for one condition (a hang guard, not a claim)"
    )
    opts = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")

    # The test's timeout sends SIGTERM: turn it into an exception so `finally` still shuts the cluster down.
    signal.signal(signal.SIGTERM, _raise_on_signal)
    t0 = time.monotonic()
    scenario = Scenario(timeout_s=opts.timeout_s)
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
        t = time.monotonic()
        scenario.shutdown()
        scenario.report["shutdown_s"] = round(time.monotonic() - t, 2)
        scenario.report["total_s"] = round(time.monotonic() - t0, 2)
        # Ray prints its own lines on stdout too: the report is the one line with this prefix.
        print(REPORT_PREFIX + json.dumps(scenario.report), flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
