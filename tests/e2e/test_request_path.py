"""The CPU profile's request path (HAProxy, user code on the replica's loop, gRPC between deployments) keeps the
API as it is: request ids, Server-Timing, big documents and answers, object-store fan-out in compare, time-outs.

The scenario runs in a subprocess with its own Ray (``request_path_driver.py``): the profile's settings are process
settings, and this pytest process already belongs to the suite's shared cluster, which runs Serve's defaults.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from orchestrator.serving.timing import parse
from tests.e2e.request_path_driver import REPORT_PREFIX
from tests.support.private_ray import private_ray_env

REPO = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("request_path_driver.py")
TIMEOUT_S = 240

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    with private_ray_env("rq") as env:
        proc = subprocess.Popen(
            [sys.executable, str(DRIVER)], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            out, err = proc.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            try:
                out, err = proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
    lines = [line for line in out.splitlines() if line.startswith(REPORT_PREFIX)]
    if not lines:
        pytest.fail(f"driver printed no report (rc {proc.returncode}); stderr tail:\n{err[-4000:]}")
    rep = json.loads(lines[-1][len(REPORT_PREFIX) :])
    if rep.get("error"):
        pytest.fail(f"request-path scenario failed: {rep['error']}\nstderr tail:\n{err[-3000:]}")
    return rep


def test_the_profile_runs_haproxy(report):
    """Seen in use, not read from the settings: HAProxy is the process listening on the service's HTTP port."""
    assert report["in_use"]["http_listeners"] == ["haproxy"], report["in_use"]


def test_router_to_backend_calls_go_over_grpc(report):
    """Seen in use, not read from the settings: the router's process is connected to both backends' inter-deployment
    gRPC servers (the ports Serve opened in those replicas), and those servers have clients."""
    in_use = report["in_use"]
    assert report["f2_status"] == 200
    assert in_use["router_connected_to_grpc_of"] == ["f1", "f2"], in_use
    assert all(in_use["replicas"][b]["grpc_clients"] > 0 for b in ("f1", "f2")), in_use
    # the raised message limit: test_documents_and_answers_over_4_mib_pass is what shows the big bodies pass
    assert int(report["env"]["RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH"]) > 4 * 1024 * 1024


def test_request_id_and_server_timing(report):
    trivial = report["trivial"]
    assert trivial["status"] == 200
    assert trivial["request_id"] == trivial["x_request_id"] == "path-1"
    phases = parse(trivial["server_timing"])
    assert {"read", "validate", "backend", "engine", "app"} <= set(phases)
    assert phases["app"] >= phases["backend"] >= phases["engine"] >= 0


def test_documents_and_answers_over_4_mib_pass(report):
    big = report["big"]
    assert big["sent"] > 4 * 1024 * 1024 and big["status"] == 200 and big["size_bytes"] == big["sent"]
    assert big["answer_bytes"] > 4 * 1024 * 1024  # the boxes image makes the answer as big as the page


def test_compare_fans_one_shared_document_out(report):
    compare = report["compare"]
    assert compare["status"] == 200 and compare["sent"] > 100 * 1024
    assert compare["entries"] == [
        {"backend": "f1", "size_bytes": compare["sent"]},
        {"backend": "f2", "size_bytes": compare["sent"]},
    ]


def test_timeouts_keep_their_status(report):
    assert report["timeout"] == {"status": 504, "code": "timeout"}
