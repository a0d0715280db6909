"""GPU placement on a simulated multi-node cluster: each model gets its own GPU, scaling takes free GPUs, a lost
node's replicas come back elsewhere, pins (custom resource, node label) are hard constraints, and a
tensor-parallel replica gets its GPUs together on one node.

The scenario runs once, in a subprocess (``placement_driver.py``: its own ``ray.cluster_utils.Cluster``, since this
pytest process may already belong to the suite's shared cluster), and reports where every replica ran: the node
(from Ray's actor table) and the GPU ids Ray gave it (``CUDA_VISIBLE_DEVICES`` as seen inside the replica, through
``BackendDeployment.describe()``). The tests below assert on that report.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.placement.placement_driver import REPORT_PREFIX
from tests.support.private_ray import private_ray_env

REPO = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("placement_driver.py")
TIMEOUT_S = 360

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def run_driver(*args: str) -> tuple[dict[str, Any], str]:
    """Run the driver; returns its report and its stderr. On timeout the driver gets SIGTERM (it then shuts its
    cluster down) and, if still alive 30 s later, SIGKILL (Ray's processes die with it: fate sharing)."""
    with private_ray_env("rp") as env:
        proc = subprocess.Popen(
            [sys.executable, str(DRIVER), *args],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            out, err = proc.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            try:
                out, err = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
    lines = [line for line in out.splitlines() if line.startswith(REPORT_PREFIX)]
    if not lines:
        pytest.fail(f"placement driver printed no report (rc {proc.returncode}); stderr tail:\n{err[-4000:]}")
    return json.loads(lines[-1][len(REPORT_PREFIX) :]), err


@pytest.fixture(scope="module")
def report() -> Iterator[dict[str, Any]]:
    rep, err = run_driver()
    if rep["error"]:
        pytest.fail(f"placement scenario failed: {rep['error']}\n{rep.get('traceback', '')}\nstderr:\n{err[-3000:]}")
    assert rep["auth_mode"] == "token"
    yield rep


def gpus(replicas: dict[str, list[dict[str, Any]]]) -> list[tuple[str, str]]:
    """Every (node, GPU id) held by any replica; a replica asked for one GPU, so it must hold exactly one."""
    held = []
    for name, rows in replicas.items():
        for row in rows:
            assert len(row["gpu_ids"]) == 1, f"{name} replica {row} should see exactly one GPU"
            held.append((row["node"], row["gpu_ids"][0]))
    return held


def pids(rows: list[dict[str, Any]]) -> set[int]:
    return {row["pid"] for row in rows}


def test_one_box_gives_each_model_its_own_gpu(report):
    phase = report["phases"]["one_box"]
    held = gpus(phase["replicas"])
    assert [node for node, _ in held] == ["gpu-a", "gpu-a"]
    assert sorted(gpu for _, gpu in held) == ["0", "1"]  # both GPUs of the box, one each


def test_scaling_out_takes_a_free_gpu_and_keeps_running_replicas(report):
    phase = report["phases"]["scale_out"]
    replicas = phase["replicas"]
    assert len(replicas["deepseek-ocr"]) == 2 and len(replicas["mineru"]) == 1
    held = gpus(replicas)
    assert len(set(held)) == len(held) == 3, f"two replicas share a GPU: {held}"
    # gpu-a's two GPUs were taken, so the new replica can only be on the node that joined.
    new = [r for r in replicas["deepseek-ocr"] if r["pid"] not in pids(phase["before"]["replicas"]["deepseek-ocr"])]
    assert [r["node"] for r in new] == ["gpu-b"]
    # A replica-count change through the config's `deployments:` overrides restarts nothing.
    for name, rows in phase["before"]["replicas"].items():
        assert pids(rows) <= pids(replicas[name]), f"{name} replicas were restarted by a scale-out"


def test_node_loss_reschedules_onto_remaining_gpus(report):
    phase = report["phases"]["node_loss"]
    before, after = phase["before"]["replicas"], phase["replicas"]
    assert {name: len(rows) for name, rows in after.items()} == {"deepseek-ocr": 2, "mineru": 1}
    held = gpus(after)
    assert all(node == "gpu-b" for node, _ in held), f"replica left on a removed node or elsewhere: {held}"
    assert sorted(gpu for _, gpu in held) == ["0", "1", "2"]  # gpu-b's three GPUs, one each
    lost = {r["pid"] for rows in before.values() for r in rows if r["node"] == "gpu-a"}
    kept = {r["pid"] for rows in before.values() for r in rows if r["node"] == "gpu-b"}
    assert lost and not lost & pids(after["deepseek-ocr"] + after["mineru"]), "lost replicas were not replaced"
    assert kept <= pids(after["deepseek-ocr"]), "the replica on the surviving node was restarted"


def test_custom_resource_pins_deepseek_to_its_node_kind(report):
    phase = report["phases"]["pinned"]
    rows = phase["replicas"]["deepseek-ocr"]
    # The node advertises deepseek_gpu: 2; the third replica must wait although a GPU is free elsewhere.
    assert [r["node"] for r in rows] == ["deepseek", "deepseek"]
    assert phase["pending"]["deepseek-ocr"] == 1
    assert sum(phase["free_gpus"].values()) >= 1
    assert len(set(gpus({"deepseek-ocr": rows}))) == 2


def test_label_selector_pins_mineru_to_labelled_nodes(report):
    phase = report["phases"]["pinned"]
    rows = phase["replicas"]["mineru"]
    # Only gpu-b carries ocrserve.io/gpu-pool=mineru (3 GPUs); the 4th replica waits while "deepseek" has a free GPU.
    assert [r["node"] for r in rows] == ["gpu-b"] * 3
    assert phase["pending"]["mineru"] == 1
    assert phase["free_gpus"]["deepseek"] >= 1
    assert len(set(gpus({"mineru": rows}))) == 3


def test_tensor_parallel_replicas_get_two_gpus_on_one_node(report):
    """tensor_parallel_size: 2 used to be unplaceable: each replica asked for one GPU, and vLLM refused a world size
    of 2 on it. The builder now gives each replica a STRICT_PACK placement group of two one-GPU bundles, and the
    engine's workers (one per bundle, as vLLM's Ray executor places them) see two GPUs of one node."""
    phase = report["phases"]["tensor_parallel"]
    rows = phase["replicas"]["deepseek-ocr"]
    assert len(rows) == 2
    for row in rows:
        assert sorted(bundle.get("GPU", 0) for bundle in row["bundles"]) == [1.0, 1.0]
        assert row["gpu_ids"] == []  # the replica itself holds no GPU: its workers do
        workers = row["workers"]
        assert len(workers) == 2 and {w["node"] for w in workers} == {row["node"]}, row
        assert len({g for w in workers for g in w["gpu_ids"]}) == 2, f"workers share a GPU: {workers}"
        assert all(len(w["gpu_ids"]) == 1 for w in workers)
    assert {row["node"] for row in rows} == {"gpu-b", "deepseek"}  # one replica per 3-GPU node
    # The third replica waits although two GPUs are free - one per node: its pair is never split across nodes.
    assert phase["replica_states"].get("RUNNING") == 2 and sum(phase["replica_states"].values()) == 3
    assert phase["free_gpus"]["gpu-b"] == 1 and phase["free_gpus"]["deepseek"] == 1
