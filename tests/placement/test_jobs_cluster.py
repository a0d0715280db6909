"""Jobs at cluster scale on a simulated multi-node cluster with a real Redis: one job's chunks run on backend
replicas on two nodes at once, and the consumers autoscale on the queue's length (Ray's
``AsyncInferenceAutoscalingPolicy``). The scenario runs once in a subprocess (``jobs_cluster_driver.py``); the
tests assert on its report: nodes per chunk, overlapping runs, replica counts. No wall-clock thresholds."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.placement.jobs_cluster_driver import REPORT_PREFIX
from tests.support.private_ray import REPO, private_ray_env
from tests.support.redis_server import have_redis

DRIVER = Path(__file__).with_name("jobs_cluster_driver.py")
TIMEOUT_S = 480

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


@pytest.fixture(scope="module")
def report() -> Iterator[dict[str, Any]]:
    if not have_redis():
        pytest.fail("redis-server is not installed (scripts/test.sh installs Debian's redis-server)")
    with private_ray_env("rj") as env:
        proc = subprocess.Popen(
            [sys.executable, str(DRIVER)],
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
        pytest.fail(f"jobs cluster driver printed no report (rc {proc.returncode}); stderr tail:\n{err[-4000:]}")
    data = json.loads(lines[-1][len(REPORT_PREFIX) :])
    if data["error"]:
        pytest.fail(f"driver failed: {data['error']}\n{data.get('traceback', '')}\nstderr tail:\n{err[-3000:]}")
    yield data


def test_one_jobs_chunks_run_on_replicas_on_two_nodes_at_once(report):
    fanout = report["phases"]["fanout"]
    assert fanout["backend_nodes"] == ["node-a", "node-b"]  # one backend replica per worker node
    assert fanout["status"]["state"] == "succeeded" and fanout["pages"] == 8
    chunks = fanout["chunks"]
    assert {c["node"] for c in chunks} == {"node-a", "node-b"}
    # at once: some chunk on node-a overlaps in time some chunk on node-b
    overlaps = [
        (a, b)
        for a in chunks
        for b in chunks
        if a["node"] == "node-a" and b["node"] == "node-b" and a["started"] < b["ended"] and b["started"] < a["ended"]
    ]
    assert overlaps, chunks


def test_consumers_scale_out_on_the_queue_and_back_when_it_empties(report):
    scale = report["phases"]["autoscale"]
    assert scale["before"] == 1 and scale["status"]["state"] == "succeeded"
    counts = [s["consumers"] for s in scale["samples"]]
    assert max(counts) >= 2, counts  # the queue of 24 chunks moved the consumer deployment up
    busiest = max(scale["samples"], key=lambda s: s["consumers"])
    assert busiest["pages_done"] < 24  # ... while the job was running
    assert scale["back_to_one_s"] is not None  # and back to its minimum once the queue emptied
