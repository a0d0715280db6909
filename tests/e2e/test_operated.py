"""Operated as a newcomer would: ``ocrserve serve --config`` with an API key, then its router replica killed under load.

The service is started as a user starts it — the ``ocrserve`` command, a config file (the CPU profile plus
``router.api_key`` and a ``slow`` stand-in backend that holds requests at gates the test opens), a free port — once
behind HAProxy (what ``ocrserve serve`` runs) and once behind Ray's default Python proxy
(``RAY_SERVE_ENABLE_HA_PROXY=0``). Each runs in a subprocess with its own Ray (private temp dir and token); it must
stay up after its demo, which must pass with the configured key. Then the router replica's process is killed (SIGKILL)
while requests are in flight and a burst of requests goes on: every answer must be the API's JSON (a connection
HAProxy closes without an answer is allowed: that is how HAProxy hands a dead server's request back to the client),
and the Python client, retrying, must get its answers - and its request, sent with one ``Idempotency-Key`` on every
try, ran exactly twice: once in the router that was killed, once taken over by a retry after that router's claim
lapsed, never once per try (the ``slow`` backend leaves a record of each call it lets through its gate). Finally
Ctrl-C stops the service cleanly.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest
import yaml
from pydantic import ValidationError

from benchmarks.support.fake_engine import FAKE
from orchestrator.client import OCRClient
from orchestrator.ops import cli, local, samples
from shared.metrics import ned
from shared.schema import ErrorResponse
from tests.support.private_ray import private_ray_env
from tests.support.signals import Gate, until

REPO = Path(__file__).resolve().parents[2]
KEY = "newcomer-key"
START_TIMEOUT_S = 600  # hang guards: a start with its demo takes 1-3 minutes on a busy 2-core machine
STOP_TIMEOUT_S = 120

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


@dataclass
class Service:
    """One ``ocrserve serve`` in a subprocess."""

    proxy: str
    url: str
    proc: subprocess.Popen
    log: Path
    out: Path
    gates: Path
    output: str = ""

    def read(self) -> str:
        self.output = self.log.read_text(errors="replace")
        return self.output

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def router_pids(self) -> set[int]:
        """Processes of this service's router replicas (Ray titles them ``ray::ServeReplica:APP:router``)."""
        return {p.pid for p in self.descendants() if (_title(p) or "").startswith("ray::ServeReplica:ocr:router")}


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    """A process started in the block sees Ctrl-C as from a terminal, however pytest itself was started.

    A shell's background job without job control (``pytest ... &`` in a script) starts with SIGINT ignored, and an
    ignored signal stays ignored across fork and exec: ``ocrserve serve`` would never see the test's SIGINT and the
    test would time out (seen). A handled signal is reset to its default on exec, so handling it here for the
    moment of the fork is enough."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _title(process: psutil.Process) -> str | None:
    """What the process is (Ray titles its workers ``ray::...``); None once it is gone."""
    try:
        return " ".join(process.cmdline()) or process.name()
    except psutil.Error:
        return None


def _config(tmp: Path, gates: Path) -> Path:
    raw = yaml.safe_load(local.profile_path("cpu").read_text())
    args = raw["applications"][0]["args"]
    args["router"]["api_key"] = KEY
    args["allow_custom_engines"] = True  # the stand-in below
    args["backends"]["slow"] = {  # a stand-in that holds requests at gates: requests that are surely in flight
        "engine": FAKE,
        "engine_config": {"gate_dir": str(gates)},
        "deployment": {"max_ongoing_requests": 16, "ray_actor_options": {"num_cpus": 0.05}},
    }
    # the burst's quick POSTs: on a replica of their own, since each request held at a gate holds one of the few
    # threads of the 'slow' replica's default pool (a pool that size on a 2-core machine)
    args["backends"]["quick"] = {"engine": FAKE, "deployment": {"ray_actor_options": {"num_cpus": 0.05}}}
    path = tmp / "secured.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _ocrserve() -> list[str]:
    script = Path(sys.executable).with_name("ocrserve")  # the console script, as README command 1 installs it
    return [str(script)] if script.is_file() else [sys.executable, "-m", "orchestrator.ops.cli"]


@pytest.fixture(scope="module", params=["haproxy", "python-proxy"])
def service(request) -> Iterator[Service]:
    with private_ray_env("op") as env:
        tmp = Path(env["RAY_TMPDIR"])
        env.pop(cli.API_KEY_VAR, None)  # the demo must find the key in the config
        env["RAY_SERVE_ENABLE_HA_PROXY"] = "1" if request.param == "haproxy" else "0"
        port = local.free_port()
        log = tmp / "serve.log"
        gates = tmp / "gates"
        gates.mkdir()
        config = _config(tmp, gates)
        cmd = [*_ocrserve(), "serve", "--config", str(config), "--port", str(port), "--out", str(tmp / "out")]
        with log.open("w") as sink, _interruptible():  # its own session: a last-resort kill reaches only it
            proc = subprocess.Popen(
                cmd, cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
            )
        svc = Service(request.param, f"http://127.0.0.1:{port}", proc, log, tmp / "out", gates)
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while "Press Ctrl-C to stop." not in svc.read():
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"ocrserve serve did not reach serving (rc {proc.poll()}):\n{svc.read()[-6000:]}")
                time.sleep(1)
            yield svc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


def test_a_secured_start_stays_up_and_its_demo_passes(service):
    output = service.read()
    assert service.proc.poll() is None, output[-4000:]
    assert "demo failed" not in output and "Traceback" not in output, output[-6000:]
    assert "Demo through" in output and (service.out / "demo-scan-rapidocr.md").is_file(), output[-6000:]
    _, truth = samples.two_column_page()  # the demo's scan: its text came back through the secured service
    assert ned((service.out / "demo-scan-rapidocr.md").read_text(), truth) <= 0.05
    with httpx.Client(base_url=service.url, timeout=60) as http:
        refused = http.get("/v1/backends")
        assert refused.status_code == 401 and ErrorResponse.model_validate(refused.json()).error.code == "unauthorized"
    with OCRClient(service.url, api_key=KEY) as client:
        assert {"rapidocr", "mineru", "slow"} <= {b.name for b in client.backends().backends}


def test_the_proxy_in_use(service):
    """HAProxy runs through our launcher (its config names our error files); the Python proxy otherwise."""
    names = []
    for p in service.descendants():
        try:
            names.append((p.name(), p.cmdline()))
        except psutil.Error:
            continue
    haproxies = [cmd for name, cmd in names if name == "haproxy"]
    if service.proxy == "haproxy":
        assert haproxies, names
        config = Path(haproxies[-1][haproxies[-1].index("-f") + 1]).read_text()
        assert "503.http" in config and "ocrserve-haproxy-" in config and "500.http" not in config
    else:
        assert not haproxies


def test_a_proxy_deadline_is_a_json_504(service):
    png = samples.encode(samples.one_column_page(width=200)[0])
    with httpx.Client(base_url=service.url, timeout=120) as http:
        r = http.post(
            "/v1/ocr",
            files={"file": ("p.png", png)},
            data={"backend": "slow", "options": json.dumps({"sleep_s": 8}), "include_boxes_image": "false"},
            headers={"x-api-key": KEY, "x-request-timeout-seconds": "1"},  # Serve's own per-request deadline
        )
    assert r.status_code == 504 and r.headers["content-type"] == "application/json", r.text
    assert ErrorResponse.model_validate(r.json()).error.code == "timeout" and int(r.headers["retry-after"]) > 0


@dataclass
class Record:
    """What raw requests got: answers by (status, content type, JSON or not), and dropped connections."""

    answers: list[tuple[int, str, bool]] = field(default_factory=list)
    dropped: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, send) -> int | None:
        try:
            r = send()
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError):
            with self.lock:
                self.dropped += 1
            return None
        try:
            body = r.json()
            is_json = isinstance(body, dict) and (r.status_code < 400 or bool(ErrorResponse.model_validate(body)))
        except (ValueError, ValidationError):  # not JSON, or JSON that is not an ErrorResponse
            is_json = False
        is_json = is_json and r.headers.get("content-type", "").startswith("application/json")
        with self.lock:
            self.answers.append((r.status_code, r.headers.get("content-type", ""), is_json))
        return r.status_code


def test_the_router_killed_during_a_burst(service):
    (router,) = service.router_pids() or pytest.fail(f"no router replica among {service.descendants()}")
    png = samples.encode(samples.one_column_page(width=200)[0])
    raw_gate, keyed_gate = Gate(service.gates, "raw"), Gate(service.gates, "keyed")
    slow_form = {"backend": "slow", "options": json.dumps({"hold": raw_gate.name}), "include_boxes_image": "false"}
    record = Record()
    in_flight: list[int | None] = []
    client_results: list[str] = []
    client_waits: list[float] = []
    stop = threading.Event()

    def slow_raw() -> None:  # in the router when it dies
        with httpx.Client(base_url=service.url, timeout=120, headers={"x-api-key": KEY}) as http:
            in_flight.append(record.add(lambda: http.post("/v1/ocr", files={"file": ("p.png", png)}, data=slow_form)))

    def slow_client() -> None:  # the same through the client, which retries with its Idempotency-Key
        with OCRClient(service.url, api_key=KEY, timeout_s=120) as client:
            client.sleep = lambda s: (client_waits.append(s), time.sleep(s))
            options = {"hold": keyed_gate.name}
            result = client.ocr_bytes(png, "p.png", backend="slow", options=options, include_boxes_image=False)
            client_results.append(result.backend)

    def burst() -> None:  # GETs and quick POSTs all along, before, during and after the restart
        with httpx.Client(base_url=service.url, timeout=120, headers={"x-api-key": KEY}) as http:
            while not stop.is_set():
                record.add(lambda: http.get("/v1/backends"))
                record.add(lambda: http.post("/v1/ocr", files={"file": ("p.png", png)}, data={"backend": "quick"}))
                time.sleep(0.05)

    threads = [threading.Thread(target=f) for f in (slow_raw, slow_raw, slow_client, burst, burst)]
    for t in threads:
        t.start()
    try:
        # the held requests are in the backend, behind the router that is about to die
        until(lambda: raw_gate.waiting() == 2 and keyed_gate.waiting() == 1, "the held requests in the backend")
        os.kill(router, signal.SIGKILL)
        until(lambda: service.router_pids() - {router}, "Serve starting a new router replica")
        with OCRClient(service.url, api_key=KEY) as client:
            client.backends()  # the new router answers (the client waits out the restart if it must)
        answered = sum(1 for a in record.answers if a[0] == 200)
        until(lambda: sum(1 for a in record.answers if a[0] == 200) >= answered + 10, "the burst answered again")
    finally:
        raw_gate.open()  # the dead router's calls finish in the backend; the retry's run (now or later) goes through
        keyed_gate.open()
    until(lambda: client_results or not threads[2].is_alive(), "the client's retried request answered")
    stop.set()
    for t in threads:
        t.join(timeout=300)

    assert service.router_pids() - {router}, "Serve started no new router replica"
    not_json = [a for a in record.answers if not a[2]]
    assert not not_json, f"answers that are not the API's JSON: {not_json[:10]}"
    assert not [a for a in record.answers if a[0] == 500], "a 500 from the proxy"
    # the requests the dead router held: a closed connection (HAProxy) or a JSON 503 (the Python proxy), never text
    held = {"haproxy": (None, 503), "python-proxy": (503,)}[service.proxy]
    assert len(in_flight) == 2 and all(status in held for status in in_flight), in_flight
    statuses = sorted(collections.Counter(a[0] for a in record.answers).items())
    print(f"{service.proxy}: in flight {in_flight}; burst {statuses}, {record.dropped} dropped; waits {client_waits}")
    # the client's own request was held too: it tried again, with its key, and got its answer
    assert client_results == ["slow"] and client_waits, (client_results, client_waits)
    # ...and its request ran twice, whatever the number of tries: once in the dead router's call (let through its
    # gate once opened), once by the retry that took the lapsed claim over - never once per retry
    assert keyed_gate.passed() == 2, (keyed_gate.passed(), client_waits)
    assert raw_gate.passed() == 2  # unkeyed: each ran once, in the dead router's call, and was not retried
    assert sum(1 for a in record.answers if a[0] == 200) > 10  # the burst was answered before and after


def test_ctrl_c_stops_it_cleanly(service):
    started = service.descendants()  # Ray's processes, the replicas, HAProxy
    assert started
    service.proc.send_signal(signal.SIGINT)
    try:
        assert service.proc.wait(timeout=STOP_TIMEOUT_S) == 0, service.read()[-4000:]
    except subprocess.TimeoutExpired:
        left = [title[:80] for p in service.descendants() if (title := _title(p))]
        pytest.fail(f"still running {STOP_TIMEOUT_S} s after Ctrl-C, with {left}:\n{service.read()[-6000:]}")
    assert "Shutting down" in service.read()
    deadline = time.monotonic() + 60  # hang guard while the last of them exit
    while (left := [p for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.5)
    assert not left, [(p.pid, p.name()) for p in left]
