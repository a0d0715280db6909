"""The job API over real HTTP on the session's Ray cluster, through Ray Serve's async inference (Celery) and the
job store, embedded (SQLite) and Redis (a private ``redis-server`` with its append-only file).

Durability is shown the hard way, with RapidOCR reading real pages: the consumer replica killed mid-job, then the
router, then the whole application deleted and deployed again — the job finishes with every page exactly once and
the same markdown as an uninterrupted run; with Redis, Redis itself stopped mid-job and started again. The rest
runs on the fake engine (timing-independent orchestration): cancel, fairness between two submitters, signed
callbacks to an allow-listed local server, the event stream, idempotency keys, and every bad input to the new
routes and fields. No wall-clock assertions: order and outcomes; deadlines only as hang guards.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks.support.fake_engine import FAKE
from orchestrator.ops import samples
from shared.schema import OCRResponse
from tests.support.callback_receiver import callback_receiver
from tests.support.redis_server import RedisServer, have_redis

pytestmark = pytest.mark.cluster

HANG_GUARD_S = 300
FAST = {"heartbeat_s": 1, "stale_s": 4, "sweep_s": 1, "events_poll_s": 0.2}
"""Recovery timings for tests: a killed consumer's chunk comes back within seconds (defaults: 5/30/10 s)."""
TINY = {"ray_actor_options": {"num_cpus": 0.05}}
SECRET = "callback-secret"


# --- helpers ---------------------------------------------------------------------------------------------------


def deploy(name: str, args: dict[str, Any]) -> str:
    from ray import serve

    from orchestrator.builder import build_app

    serve.run(build_app(args), name=name, route_prefix=f"/{name}")
    return name


def undeploy(name: str) -> None:
    from ray import serve

    serve.delete(name)


def kill_replicas(app: str, deployment: str) -> int:
    """Kill every replica of ``deployment`` in ``app`` (Serve starts new ones)."""
    import ray

    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if f"{app}#{deployment}#" in a["name"]]
    for actor in names:
        ray.kill(ray.get_actor(actor, namespace="serve"), no_restart=True)
    return len(names)


def wait_status(client: httpx.Client, job_id: str, until: Callable[[dict], bool], what: str) -> dict:
    deadline = time.monotonic() + HANG_GUARD_S
    while time.monotonic() < deadline:
        try:
            r = client.get(f"/v1/jobs/{job_id}")
            status = r.json()
        except (httpx.HTTPError, ValueError):  # a router coming back
            time.sleep(0.5)
            continue
        if r.status_code == 200 and until(status):
            return status
        time.sleep(0.2)
    raise AssertionError(f"job {job_id}: {what} did not happen within {HANG_GUARD_S} s")


def ended(status: dict) -> bool:
    return status["state"] in ("succeeded", "failed", "cancelled")


def read_events(client: httpx.Client, job_id: str, last_event_id: int | None = None) -> list[tuple[Any, str, dict]]:
    """Every event of the job's stream until it closes: (id, event, data)."""
    headers = {"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {}
    events: list[tuple[Any, str, dict]] = []
    with client.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers, timeout=HANG_GUARD_S) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        block: dict[str, str] = {}
        for line in r.iter_lines():
            if line == "":
                if "event" in block:
                    events.append(
                        (int(block["id"]) if "id" in block else None, block["event"], json.loads(block["data"]))
                    )
                block = {}
            elif not line.startswith((":", "retry")):
                key, _, value = line.partition(": ")
                block[key] = value
    return events


def pages_once(events: list[tuple[Any, str, dict]], total: int) -> None:
    """The stream is complete and in order: ids 1..n without a gap, each page exactly once, one end, last."""
    numbered = [e for e in events if e[0] is not None]
    assert [e[0] for e in numbered] == list(range(1, len(numbered) + 1))
    indices = [e[2]["page"]["index"] for e in events if e[1] == "page"]
    assert sorted(indices) == list(range(total)), indices
    assert [e[1] for e in events].count("end") == 1 and events[-1][1] == "end"


def submit(client: httpx.Client, data: bytes, name: str = "doc.pdf", headers: dict | None = None, **form: Any) -> dict:
    fields = {k: (json.dumps(v) if isinstance(v, dict) else str(v)) for k, v in form.items()}
    r = client.post("/v1/jobs", files={"file": (name, data)}, data=fields, headers=headers or {})
    assert r.status_code == 202, r.text
    return r.json()


def tiny_pdf(n: int) -> bytes:
    from PIL import Image

    return samples.multi_page_pdf([Image.new("RGB", (160, 120), "white")] * n, dpi=72)


# --- durability with a real engine -----------------------------------------------------------------------------

PAGES = 16


@pytest.fixture(scope="module")
def scans() -> bytes:
    images, _ = samples.numbered_pages(PAGES)
    return samples.multi_page_pdf(images)


def durable_app(store: str, state_dir: Path) -> dict[str, Any]:
    return {
        "backends": {"rapidocr": {"engine": "rapidocr", "deployment": {"ray_actor_options": {"num_cpus": 0.3}}}},
        "router": {"auto_order": ["rapidocr"]},
        # one chunk of one page at a time: progress is steady, so each blow lands mid-job
        "jobs": {"store": store, "state_dir": str(state_dir / "{app}"), "chunk_pages": 1, "window_chunks": 1, **FAST},
        "jobs_deployment": {"max_ongoing_requests": 1, **TINY},
    }


@pytest.fixture(scope="module")
def reference() -> dict[str, str]:
    """The markdown of an uninterrupted run, made once by whichever durable test runs first and compared by both:
    RapidOCR's answer for these pages does not depend on the store that carried the job (an interrupted job on
    either store must match it)."""
    return {}


def run_uninterrupted(client: httpx.Client, scans: bytes, reference: dict[str, str]) -> str:
    if "markdown" not in reference:
        job = submit(client, scans, backend="rapidocr", include_boxes_image="false")
        status = wait_status(client, job["job_id"], ended, "the reference job's end")
        assert status["state"] == "succeeded", status
        reference["markdown"] = client.get(f"/v1/jobs/{job['job_id']}/result").json()["markdown"]
    return reference["markdown"]


def survive_everything(
    app: str,
    args: dict[str, Any],
    client: httpx.Client,
    scans: bytes,
    reference: dict[str, str],
    before_restart: Callable[[str], None] | None = None,
) -> None:
    """Kill the consumer mid-job, then the router, then (``before_restart``, given the job id) whatever else the
    store must survive, then delete and deploy the app again; then check the job."""
    expected = run_uninterrupted(client, scans, reference)
    job = submit(client, scans, backend="rapidocr", include_boxes_image="false")
    job_id = job["job_id"]
    seen = wait_status(client, job_id, lambda s: s["pages_done"] >= 1, "a first page")["pages_done"]
    assert kill_replicas(app, "jobs") == 1
    status = wait_status(client, job_id, lambda s: s["pages_done"] > seen, "progress after the consumer died")
    assert status["pages_done"] < PAGES, "the job ended before the router could be killed mid-job"
    assert kill_replicas(app, "router") == 1
    status = wait_status(client, job_id, lambda s: True, "a new router answering")  # the job is still there
    assert status["state"] == "running" and status["pages_done"] < PAGES, status
    if before_restart is not None:
        before_restart(job_id)
    undeploy(app)  # the whole application, every replica, mid-job
    deploy(app, args)
    final = wait_status(client, job_id, ended, "the job's end after the restart")
    assert final["state"] == "succeeded", final
    assert final["pages_done"] == final["pages_total"] == PAGES and final["chunks_done"] == PAGES
    result = OCRResponse.model_validate(client.get(f"/v1/jobs/{job_id}/result").json())
    assert [p.index for p in result.pages] == list(range(PAGES))  # every page exactly once, in order
    assert result.markdown == expected  # as if nothing had happened
    pages_once(read_events(client, job_id), PAGES)


def callbacks_are_refused(client: httpx.Client) -> None:
    """An app whose ``jobs`` lists no ``callback_hosts`` (the durable apps) refuses any callback_url at submit; checked
    on the embedded app, already deployed, rather than on an app of its own."""
    r = client.post(
        "/v1/jobs",
        files={"file": ("d.pdf", tiny_pdf(1))},
        data={"backend": "rapidocr", "callback_url": "http://127.0.0.1:9/hook"},
    )
    assert r.status_code == 400 and "allow-list is empty" in r.json()["error"]["message"]


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory) -> Iterator[RedisServer]:
    if not have_redis():
        pytest.fail("redis-server is not installed (scripts/test.sh installs Debian's redis-server)")
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


def test_embedded_store_a_job_survives_its_consumer_its_router_and_a_restart(serve_url, scans, reference, tmp_path):
    """Also where no callback host is allowed, callbacks are refused (the durable app lists none)."""
    app = "jobsdb"
    args = durable_app("embedded", tmp_path)
    deploy(app, args)
    try:
        with httpx.Client(base_url=f"{serve_url}/{app}", timeout=120) as client:
            callbacks_are_refused(client)
            survive_everything(app, args, client, scans, reference)
    finally:
        undeploy(app)


def test_redis_store_survives_the_same_and_redis_itself_going_away(serve_url, scans, reference, tmp_path, redis_server):
    """The same job as on the embedded store also outlives Redis: stopped after the router's death, while the
    job runs (SIGTERM: it flushes its append-only file), and started again on the same files. The live replicas
    carry on (progress before the restart), and the restart and the final checks follow as before."""
    app = "jobsredis"
    args = durable_app(redis_server.url, tmp_path)

    def redis_goes_away(job_id: str) -> None:
        done = wait_status(client, job_id, lambda s: True, "the job before Redis stops")["pages_done"]
        redis_server.stop()
        time.sleep(3)  # jobs and queue unreachable: replicas wait (no assertion on time)
        redis_server.start()
        status = wait_status(client, job_id, lambda s: s["pages_done"] > done, "progress after Redis came back")
        assert status["state"] == "running" and status["pages_done"] < PAGES, "the job ended before the restart"

    deploy(app, args)
    try:
        with httpx.Client(base_url=f"{serve_url}/{app}", timeout=120) as client:
            survive_everything(app, args, client, scans, reference, before_restart=redis_goes_away)
    finally:
        undeploy(app)


# --- orchestration on the fake engine --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake_jobs(serve_url, tmp_path_factory) -> Iterator[tuple[httpx.Client, Any]]:
    """One app for cancel, fairness, events, callbacks, idempotency and bad input: a one-replica fake backend that
    takes one chunk at a time, a consumer that runs one chunk at a time, windows of 2 chunks of 1 page."""
    app = "jobsfake"
    with callback_receiver() as receiver:
        host = f"127.0.0.1:{receiver.port}"
        deploy(
            app,
            {
                "backends": {
                    "fake": {"engine": FAKE, "deployment": {**TINY, "max_ongoing_requests": 1}},
                    "other": {"engine": FAKE, "deployment": TINY},
                },
                "router": {"auto_order": ["fake"], "cascades": {"both": {"first": "fake", "then": "other"}}},
                "jobs": {
                    "state_dir": str(tmp_path_factory.mktemp("jobs") / "{app}"),
                    "chunk_pages": 1,
                    "window_chunks": 2,
                    "callback_hosts": [host],
                    "callback_secret": SECRET,
                    **FAST,
                },
                "jobs_deployment": {"max_ongoing_requests": 1, **TINY},
                "allow_custom_engines": True,  # the fake engines
            },
        )
        try:
            with httpx.Client(base_url=f"{serve_url}/{app}", timeout=120) as client:
                yield client, receiver
        finally:
            undeploy(app)


def test_cancel_stops_the_job_keeps_its_pages_and_answers_its_result_with_a_conflict(fake_jobs):
    client, _ = fake_jobs
    job = submit(client, tiny_pdf(30), backend="fake", options={"sleep_s": 0.3})
    wait_status(client, job["job_id"], lambda s: s["pages_done"] >= 2, "two pages")
    r = client.delete(f"/v1/jobs/{job['job_id']}")
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    done = r.json()["pages_done"]
    assert done < 30
    time.sleep(2)  # what was queued is dropped; nothing more is added (no assertion on time)
    status = client.get(f"/v1/jobs/{job['job_id']}").json()
    assert status["state"] == "cancelled" and status["pages_done"] == done
    pages = client.get(f"/v1/jobs/{job['job_id']}/pages").json()
    assert len(pages["pages"]) == done and pages["state"] == "cancelled"
    result = client.get(f"/v1/jobs/{job['job_id']}/result")
    assert result.status_code == 409 and result.json()["error"]["code"] == "job_cancelled"
    events = read_events(client, job["job_id"])
    assert events[-1][1] == "end" and events[-1][2]["state"] == "cancelled"
    again = client.delete(f"/v1/jobs/{job['job_id']}")
    assert again.status_code == 200 and again.json()["state"] == "cancelled"


def test_a_small_job_submitted_after_a_long_one_finishes_first(fake_jobs):
    """Two submitters: a 24-page job, then a 2-page one. The queue is FIFO with a window of 2 chunks per job, so
    the small job waits for at most the long job's window (and the chunk running), not for the long job."""
    client, _ = fake_jobs
    big = submit(client, tiny_pdf(24), backend="fake", options={"sleep_s": 0.2})
    wait_status(client, big["job_id"], lambda s: s["pages_done"] >= 1, "the long job under way")
    small = submit(client, tiny_pdf(2), backend="fake", options={"sleep_s": 0.2})
    small_end = wait_status(client, small["job_id"], ended, "the small job's end")
    assert small_end["state"] == "succeeded"
    big_now = client.get(f"/v1/jobs/{big['job_id']}").json()
    assert big_now["state"] == "running", "the long job ended before the small one"
    big_events = read_events(client, big["job_id"])
    done_times = [e[2]["updated_at"] for e in big_events if e[1] == "progress"]
    during = [t for t in done_times if small["created_at"] <= t <= small_end["finished_at"]]
    # FIFO: the long job's chunks already queued (its window, 2) and the one running go first; then the small job
    assert len(during) <= 3, (len(during), len(done_times))
    assert len(done_times) == 24


def test_the_event_stream_is_in_order_complete_and_resumes_after_last_event_id(fake_jobs):
    client, _ = fake_jobs
    job = submit(client, tiny_pdf(5), backend="fake")
    live = read_events(client, job["job_id"])  # opened while the job runs; closes at its end
    assert live[0][1] == "status" and live[0][0] is None
    pages_once(live, 5)
    assert [e[1] for e in live if e[0] is not None].count("progress") == 5
    assert live[-1][2]["state"] == "succeeded" and live[-1][2]["result_url"].endswith("/result")
    resumed = read_events(client, job["job_id"], last_event_id=4)
    assert [e[0] for e in resumed[1:]] == list(range(5, live[-1][0] + 1))
    assert resumed[1:] == [e for e in live if e[0] is not None and e[0] > 4]  # the same events, the same data


def test_a_callback_is_posted_signed_to_an_allowed_host_and_retried(fake_jobs):
    client, receiver = fake_jobs
    receiver.answers[:] = [503]  # the first try fails; the retry (after a backoff) gets through
    job = submit(client, tiny_pdf(2), backend="fake", callback_url=f"{receiver.url}/hooks/ocr?tag=7")
    assert job["callback"] == "waiting"
    status = wait_status(client, job["job_id"], lambda s: s["callback"] in ("delivered", "failed"), "the callback")
    assert status["callback"] == "delivered" and status["state"] == "succeeded"
    calls = [c for c in receiver.calls if c.headers.get("x-ocrserve-delivery") == job["job_id"]]
    assert len(calls) == 2 and all(c.path == "/hooks/ocr?tag=7" for c in calls)
    last = calls[-1]
    timestamp = last.headers["x-ocrserve-timestamp"]
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + last.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(last.headers["x-ocrserve-signature"], f"sha256={expected}")
    body = json.loads(last.body)
    assert body["event"] == "job.ended" and body["job"]["job_id"] == job["job_id"]
    assert body["job"]["state"] == "succeeded" and body["job"]["pages_done"] == 2


def test_a_redirecting_receiver_is_not_followed(fake_jobs):
    client, receiver = fake_jobs
    receiver.answers[:] = [307]
    receiver.location = "http://169.254.169.254/latest/meta-data/"
    job = submit(client, tiny_pdf(1), backend="fake", callback_url=f"{receiver.url}/moved")
    status = wait_status(client, job["job_id"], lambda s: s["callback"] in ("delivered", "failed"), "the callback")
    assert status["callback"] == "failed"  # a 3xx is final and never followed
    assert [c.path for c in receiver.calls if c.headers.get("x-ocrserve-delivery") == job["job_id"]] == ["/moved"]
    receiver.location = None


def test_an_idempotency_key_makes_a_retried_submit_the_same_job(fake_jobs):
    client, _ = fake_jobs
    data = tiny_pdf(2)
    key = {"Idempotency-Key": "batch-7/contract-0001"}
    first = client.post("/v1/jobs", files={"file": ("c.pdf", data)}, data={"backend": "fake"}, headers=key)
    again = client.post("/v1/jobs", files={"file": ("c.pdf", data)}, data={"backend": "fake"}, headers=key)
    assert first.status_code == again.status_code == 202
    assert first.json()["job_id"] == again.json()["job_id"]
    assert "idempotent-replayed" not in first.headers and again.headers["idempotent-replayed"] == "true"
    other = client.post("/v1/jobs", files={"file": ("c.pdf", tiny_pdf(3))}, data={"backend": "fake"}, headers=key)
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"


@pytest.mark.parametrize("backend", ["fake", "both"])  # a backend, and a cascade
def test_a_keyed_ocr_request_retried_at_once_runs_once(fake_jobs, backend):
    client, _ = fake_jobs
    data = samples.encode(samples.one_column_page(width=400)[0])
    key = {"Idempotency-Key": f"ocr-{backend}-{time.time_ns()}"}
    answers: list[httpx.Response] = []

    def post() -> None:
        form = {"backend": backend, "options": json.dumps({"sleep_s": 1.0}) if backend == "fake" else "{}"}
        answers.append(client.post("/v1/ocr", files={"file": ("p.png", data)}, data=form, headers=key))

    threads = [threading.Thread(target=post) for _ in range(2)]
    for t in threads:
        t.start()
        time.sleep(0.3)  # the retry arrives while the first runs
    for t in threads:
        t.join()
    assert [a.status_code for a in answers] == [200, 200]
    bodies = [a.json() for a in answers]
    assert bodies[0]["request_id"] == bodies[1]["request_id"]  # one run: the retry got the first one's answer
    assert sorted(a.headers.get("idempotent-replayed", "") for a in answers) == ["", "true"]
    other = {"backend": backend, "include_raw": "true"}  # the same key, another request
    later = client.post("/v1/ocr", files={"file": ("p.png", data)}, data=other, headers=key)
    assert later.status_code == 422 and later.json()["error"]["code"] == "idempotency_key_reused"


BAD_IDS = ["nope", "..%2F..%2Fetc%2Fpasswd", "A" * 32, "0" * 31, "0" * 33, "0" * 32, "%00" * 4, "x" * 5000]


@pytest.mark.parametrize("job_id", BAD_IDS)
def test_bad_or_unknown_job_ids_get_404_on_every_route(fake_jobs, job_id):
    client, _ = fake_jobs
    for method, path in [
        ("GET", ""),
        ("GET", "/result"),
        ("GET", "/pages"),
        ("GET", "/events"),
        ("DELETE", ""),
    ]:
        r = client.request(method, f"/v1/jobs/{job_id}{path}")
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["success"] is False and r.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("form", "headers", "code", "words"),
    [
        ({"callback_url": "ftp://127.0.0.1/x"}, {}, "invalid_option", "http:// or https://"),
        ({"callback_url": "http://evil.example.com/hook"}, {}, "invalid_option", "allow-list"),
        ({"callback_url": "http://127.0.0.1:1/hook"}, {}, "invalid_option", "allow-list"),
        ({"callback_url": "http://user:pw@127.0.0.1/hook"}, {}, "invalid_option", "credentials"),
        ({"callback_url": "h" * 3000}, {}, "invalid_option", "callback_url"),
        ({"callbackurl": "x"}, {}, "invalid_option", "unknown form fields"),
        ({}, {"Idempotency-Key": "k" * 300}, "invalid_option", "Idempotency-Key"),
        ({}, {"Idempotency-Key": ""}, "invalid_option", "Idempotency-Key"),
        ({"backend": "both"}, {}, "invalid_option", "cascade"),
        ({"pages": "50-60"}, {}, "invalid_page_range", ""),
    ],
)
def test_bad_job_submissions_get_their_4xx(fake_jobs, form, headers, code, words):
    client, _ = fake_jobs
    r = client.post(
        "/v1/jobs", files={"file": ("d.pdf", tiny_pdf(2))}, data={"backend": "fake", **form}, headers=headers
    )
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["error"]["code"] == code and words in r.json()["error"]["message"]


def test_bad_event_and_page_parameters_and_ended_jobs_get_their_4xx(fake_jobs):
    client, _ = fake_jobs
    job = submit(client, tiny_pdf(1), backend="fake")
    wait_status(client, job["job_id"], ended, "the job's end")
    base = f"/v1/jobs/{job['job_id']}"
    for value in ("-1", "abc", "1e9", "99999999999"):
        r = client.get(f"{base}/events", headers={"Last-Event-ID": value})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_option", value
    assert client.get(f"{base}/pages", params={"start": -1}).status_code == 400
    r = client.delete(base)
    assert r.status_code == 409 and r.json()["error"]["code"] == "job_finished"


def test_job_metrics_reach_prometheus(fake_jobs):
    """Queue depth, chunks in flight, job states and time in queue are exported beside the router's metrics."""
    from tests.conftest import METRICS_PORT

    client, _ = fake_jobs
    job = submit(client, tiny_pdf(2), backend="fake")
    wait_status(client, job["job_id"], ended, "the job's end")

    def lines(name: str) -> list[str]:
        text = httpx.get(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=30).text
        return [x for x in text.splitlines() if x.startswith(f"ray_{name}") and 'application="jobsfake"' in x]

    deadline = time.monotonic() + HANG_GUARD_S
    wanted = ("ocrserve_jobs_ended_total", "ocrserve_job_chunk_queue_seconds_count", "ocrserve_job_chunks{")
    while time.monotonic() < deadline and not all(lines(n) for n in wanted):
        time.sleep(2)
    ended_lines = [x for x in lines("ocrserve_jobs_ended_total") if 'state="succeeded"' in x and 'backend="fake"' in x]
    assert ended_lines and float(ended_lines[0].rsplit(" ", 1)[1]) >= 1
    assert lines("ocrserve_job_chunk_queue_seconds_count") and lines("ocrserve_job_chunk_seconds_count")
    assert {s for s in ("queued", "running") if any(f'state="{s}"' in x for x in lines("ocrserve_job_chunks{"))} == {
        "queued",
        "running",
    }
    assert any('outcome="done"' in x for x in lines("ocrserve_job_chunks_total"))
    assert lines("ocrserve_jobs_submitted_total")


def test_the_cli_runs_a_document_as_a_job_with_progress(fake_jobs, tmp_path):
    from typer.testing import CliRunner

    from orchestrator.ops.cli import app

    client, _ = fake_jobs
    doc = tmp_path / "long.pdf"
    doc.write_bytes(tiny_pdf(4))
    result = CliRunner().invoke(
        app, ["ocr", str(doc), "--url", str(client.base_url), "--backend", "fake", "--job", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    markdown = (tmp_path / "long.md").read_text()
    assert [f"fake text page {i}" in markdown for i in range(1, 5)] == [True] * 4
