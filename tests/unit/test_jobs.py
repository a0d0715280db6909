"""The job path without Ray: the record's rules, the store on SQLite and on a real Redis, and the router's job
service with consumers driven by hand through a stand-in queue (every message delivered when the test says).

What the end-to-end tests (tests/e2e/test_jobs_http.py) then prove over HTTP with Celery, Ray and real engines,
these prove rule by rule: the window, claims, every page exactly once under duplicates and dead consumers,
cancel, the event stream's ids, idempotency keys, callback URLs, and the document cut into chunks.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import io
import json
import time

import pytest
from PIL import Image

from orchestrator.jobs import idempotency
from orchestrator.jobs.callbacks import check_callback_url, sign
from orchestrator.jobs.consumer import JobConsumer
from orchestrator.jobs.events import parse_last_event_id, plan_events
from orchestrator.jobs.kv import RedisKV, SQLiteKV
from orchestrator.jobs.records import JobRecord, plan_chunks, recover
from orchestrator.jobs.service import JobService, check_job_id
from orchestrator.jobs.settings import JobSettings
from orchestrator.jobs.store import JobStore
from orchestrator.ops import samples
from shared.documents import open_document
from shared.errors import OCRError
from shared.requests import RunRequest
from shared.schema import DocumentInfo, ErrorCode, ErrorDetail
from shared.subdocument import sub_document
from tests.support.hand_queue import HandQueue
from tests.support.redis_server import RedisServer, have_redis
from tests.unit.test_router import FakeHandle


def run(coro):
    return asyncio.new_event_loop().run_until_complete(coro)


# --- the record's rules ----------------------------------------------------------------------------------------


def _record(pages: int = 10, chunk_pages: int = 2, window: int = 2) -> JobRecord:
    info = DocumentInfo(
        name="d.pdf",
        media_type="application/pdf",
        size_bytes=1,
        sha256="0",
        page_count=pages,
        pages_processed=list(range(pages)),
    )
    return JobRecord(
        job_id="a" * 32,
        backend="fake",
        request=RunRequest(request_id="r", received_at=0.0),
        document=info,
        dpi=72,
        window=window,
        chunks=plan_chunks(list(range(pages)), chunk_pages),
        created_at=0.0,
        updated_at=0.0,
    )


def always(_: str) -> bool:
    return True


def never(_: str) -> bool:
    return False


def test_the_window_keeps_at_most_k_chunks_in_flight_and_moves_on_as_they_finish():
    r = _record(pages=10, chunk_pages=2, window=2)
    assert r.take_window("router", 1.0) == [0, 1]
    assert r.take_window("router", 1.0) == []  # full
    assert r.claim(1, "c1", 2.0, always) == "run" and r.state == "running"
    assert r.complete(1, "k1", 3.0)
    assert r.take_window("c1", 3.0) == [2]  # chunk 1 done: one slot, the lowest undispatched chunk
    for i in (0, 2):
        assert r.claim(i, "c1", 4.0, always) == "run"
        assert r.complete(i, f"k{i}", 5.0)
    assert r.take_window("c1", 5.0) == [3, 4]
    assert r.order == [1, 0, 2] and r.pages_done == 6 and r.state == "running"


def test_a_duplicate_or_late_message_never_adds_a_page_twice():
    r = _record(pages=4, chunk_pages=2, window=2)
    r.take_window("router", 0.0)
    assert r.claim(0, "c1", 1.0, always) == "run"
    assert r.claim(0, "c2", 1.5, always) == "busy"  # a redelivered message while c1 (alive) runs it
    assert r.complete(0, "first", 2.0)
    assert r.claim(0, "c2", 3.0, always) == "done"
    assert not r.complete(0, "second", 3.5)  # a second run that got through anyway: dropped
    assert r.complete(0, "first", 4.0)  # the same write seen again (a retried store call): still its own
    assert r.order == [0] and r.chunks[0].result_key == "first"


def test_a_dead_owners_chunk_is_claimable_and_the_job_ends_with_its_last_chunk():
    r = _record(pages=4, chunk_pages=2, window=2)
    r.take_window("router", 0.0)
    r.claim(0, "dead", 1.0, always)
    assert r.claim(0, "c2", 2.0, never) == "run"  # its owner stopped beating: take it
    assert r.complete(0, "a", 3.0)
    r.claim(1, "c2", 3.0, always)
    assert r.complete(1, "b", 4.0)
    assert r.state == "succeeded" and r.finished_at == 4.0 and r.ended


def test_a_chunk_started_too_often_is_refused_so_a_poison_page_cannot_go_round_forever():
    from orchestrator.jobs.records import MAX_CLAIMS

    r = _record(pages=2, chunk_pages=2)
    for i in range(MAX_CLAIMS):
        assert r.claim(0, f"consumer-{i}", float(i), never) == "run"  # each one died with it
    assert r.claim(0, "another", 99.0, never) == "exhausted"


def test_cancel_ends_the_job_and_no_chunk_counts_after_it():
    r = _record(pages=6, chunk_pages=2, window=3)
    r.take_window("router", 0.0)
    r.claim(0, "c", 1.0, always)
    r.complete(0, "a", 1.5)
    r.claim(1, "c", 1.6, always)
    assert r.cancel(2.0) and r.state == "cancelled"
    assert not r.complete(1, "b", 3.0)  # finished after the cancel: not added
    assert r.claim(2, "c", 3.0, always) == "ended"
    assert r.take_window("c", 3.0) == []
    assert not r.cancel(4.0) and not r.fail(ErrorDetail(code=ErrorCode.INTERNAL_ERROR, message="x"), 4.0)
    assert r.pages_done == 2 and r.order == [0]


def test_recover_requeues_what_a_gone_or_forgetful_holder_had_and_nothing_else():
    r = _record(pages=8, chunk_pages=2, window=4)
    r.take_window("router-x", 0.0)  # marked by a router that never confirmed (it died), at t=0
    r.confirm([3], "router-x")  # ... except chunk 3, which it did put in the queue
    r.claim(1, "gone", 1.0, always)
    r.claim(2, "me", 1.0, always)
    alive = {"me", "other"}.__contains__
    # within the grace period nothing is judged
    assert not recover(r, me="me", now=5.0, alive=alive, mine=lambda t: False, grace_s=30)
    # later: chunk 0 (dispatcher gone), 1 (owner gone), 2 (mine, but I no longer run it) go back; 3 stays queued
    assert recover(r, me="me", now=60.0, alive=alive, mine=lambda t: False, grace_s=30)
    assert [c.dispatched_at is None for c in r.chunks[:4]] == [True, True, True, False]
    assert r.take_window("me", 61.0) == [0, 1, 2]
    # something I do run is left alone, and so is what was put in the queue (confirmed)
    r.confirm([1, 2], "me")
    r.claim(0, "me", 62.0, always)
    assert not recover(r, me="me", now=200.0, alive=alive, mine=lambda t: t.endswith(".0"), grace_s=30)


def test_recover_requeues_a_message_fetched_but_never_claimed_and_leaves_waiting_ones():
    """A consumer killed between fetching a message and claiming its chunk: the embedded broker keeps that message
    invisible for ever, so only the store and the broker together can tell it is gone."""
    r = _record(pages=6, chunk_pages=2, window=3)
    r.take_window("router", 0.0)
    r.confirm([0, 1, 2], "router")
    waiting = {f"{r.job_id}.1"}.__contains__  # chunk 1 still waits; 0 and 2 were fetched
    r.claim(2, "alive", 2.0, always)  # ... and 2 was claimed by a consumer that lives
    # within the grace period nothing is judged; without a broker to ask (Redis) nothing either
    assert not recover(r, me="me", now=5.0, alive=always, mine=never, grace_s=30, waiting=waiting)
    assert not recover(r, me="me", now=60.0, alive=always, mine=never, grace_s=30)
    assert recover(r, me="me", now=60.0, alive=always, mine=never, grace_s=30, waiting=waiting)
    assert [c.dispatched_at is None for c in r.chunks] == [True, False, False]
    assert r.take_window("me", 61.0) == [0]


def test_event_ids_follow_the_order_chunks_finished_in_and_resume_exactly():
    r = _record(pages=5, chunk_pages=2, window=3)
    r.take_window("router", 0.0)
    for i in (1, 0):
        r.claim(i, "c", 1.0, always)
        r.complete(i, f"k{i}", 2.0)
    events = plan_events(r, 0)
    assert [(e.id, e.kind, e.chunk) for e in events] == [
        (1, "page", 1), (2, "page", 1), (3, "progress", 1), (4, "page", 0), (5, "page", 0), (6, "progress", 0)
    ]  # fmt: skip
    assert [e.position for e in events if e.kind == "page"] == [0, 1, 2, 3]
    r.claim(2, "c", 3.0, always)
    r.complete(2, "k2", 4.0)
    after = plan_events(r, 6)  # a client that saw 6 events resumes: only what is new, then the end
    assert [(e.id, e.kind) for e in after] == [(7, "page"), (8, "progress"), (9, "end")]
    assert [e.id for e in plan_events(r, 0)][:6] == [e.id for e in events]  # old ids never change
    assert parse_last_event_id(None) == 0 and parse_last_event_id(" 7 ") == 7
    for bad in ("-1", "x", "1e3", "99999999999"):
        with pytest.raises(ValueError):
            parse_last_event_id(bad)


# --- the store, on both backends -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    if not have_redis():
        pytest.fail("redis-server is not installed (scripts/test.sh installs Debian's redis-server)")
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path):
    settings = JobSettings(keep_s=60)
    if request.param == "sqlite":
        kv = SQLiteKV(tmp_path / "jobs" / "jobs.sqlite3")
    else:
        server = request.getfixturevalue("redis_server")
        kv = RedisKV(server.url, f"test:{tmp_path.name}:")
    yield JobStore(kv, settings)
    kv.close()


def test_the_store_keeps_a_job_its_document_once_and_one_result_per_chunk(store):
    r = _record(pages=4, chunk_pages=2)
    assert store.create(r, b"%PDF-document")
    assert not store.create(r, b"other")  # the id is taken: nothing overwritten
    assert store.document(r.job_id) == b"%PDF-document"
    assert store.active() == [r.job_id]
    picked = store.update(r.job_id, lambda rec: rec.take_window("router", 1.0))
    assert picked == [0, 1]
    assert store.update("b" * 32, lambda rec: 1) is not None  # MISSING, not an error
    assert store.get(r.job_id).chunks[0].dispatched_by == "router"


def test_an_ended_job_drops_its_document_and_leaves_the_sweepers_list(store):
    r = _record(pages=2, chunk_pages=2)
    store.create(r, b"doc")
    store.update(r.job_id, lambda rec: rec.cancel(5.0))
    assert store.document(r.job_id) is None
    assert store.active() == []
    assert store.get(r.job_id).state == "cancelled"


def test_consumers_liveness_comes_from_their_heartbeats(store):
    store.heartbeat("c1", 100.0)
    alive = store.liveness(110.0)
    assert alive("c1") and not alive("c2")
    assert not store.liveness(100.0 + store.settings.stale_s + 1)("c1")
    store.leave("c1")
    assert not store.liveness(101.0)("c1")


def test_the_embedded_store_is_private_to_the_service_user(tmp_path):
    import os
    import stat

    shared_dir = tmp_path / "jobs"
    shared_dir.mkdir(mode=0o777)
    os.chmod(shared_dir, 0o777)  # made world-writable by someone before the service started
    SQLiteKV(shared_dir / "jobs.sqlite3")
    assert stat.S_IMODE(os.stat(shared_dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(shared_dir / "jobs.sqlite3").st_mode) == 0o600


# --- the service and consumers, through a hand-driven queue ----------------------------------------------------


def deliver_all(queue: HandQueue, consumer: JobConsumer) -> list[str]:
    return queue.deliver(consumer)


@pytest.fixture
def rig(tmp_path):
    settings = JobSettings(state_dir=str(tmp_path / "{app}"), chunk_pages=2, window_chunks=2, heartbeat_s=1, stale_s=5)
    queue = HandQueue()
    backend = FakeHandle("fake")
    service = JobService(settings, queue=queue)
    consumer = JobConsumer({"fake": backend}, settings, queue=queue, background=False)
    return settings, queue, backend, service, consumer


def _pdf(n: int) -> bytes:
    """``n`` small pages (what they show does not matter to the fake engine)."""
    return samples.multi_page_pdf([Image.new("RGB", (160, 120), "white")] * n, dpi=72)


def _submit(service, data: bytes, **kw):
    doc = open_document(data, name="d.pdf")
    run_request = RunRequest(request_id="req", received_at=time.time())
    return run(service.submit(doc, "fake", run_request, **kw))


def test_a_job_runs_chunk_by_chunk_each_backend_call_gets_only_its_pages(rig):
    _, queue, backend, service, consumer = rig
    status, replayed = _submit(service, _pdf(5))
    assert status.state == "queued" and status.pages_total == 5 and status.chunks_total == 3 and not replayed
    assert [m[1][1] for m in queue.messages] == [0, 1]  # the window: 2 chunks queued at submit
    assert deliver_all(queue, consumer) == ["done", "done", "done"]
    result = run(service.result(status.job_id))
    assert [p.index for p in result.pages] == [0, 1, 2, 3, 4]
    assert [p.markdown for p in result.pages] == [f"from fake page {i + 1}" for i in range(5)]
    assert result.document.page_count == 5 and result.document.pages_processed == [0, 1, 2, 3, 4]
    # each call got a PDF of its own pages (at their own positions), never the whole document
    assert [d.page_indices for d in backend.docs] == [[0, 1], [2, 3], [4]]
    assert [d.page_count for d in backend.docs] == [2, 4, 5]
    assert all(d.media_type == "application/pdf" and d.size_bytes < len(_pdf(5)) for d in backend.docs[:2])
    assert run(service.status(status.job_id)).state == "succeeded"


def test_duplicate_messages_and_a_dead_consumer_still_give_every_page_once(rig):
    settings, queue, backend, service, consumer = rig
    status, _ = _submit(service, _pdf(6))
    job_id = status.job_id
    # a consumer takes chunk 0 and dies before finishing it (claimed, never completed, never beats again)
    dead = JobConsumer({"fake": backend}, settings, queue=HandQueue(), background=False)
    kind, args = queue.messages.popleft()
    dead.store.update(job_id, lambda r: r.claim(args[1], dead.id, time.time() - 60, lambda _: True))
    dead.store.leave(dead.id)
    queue.messages.append(("chunk", (job_id, 1)))  # and a duplicate of chunk 1 sits in the queue
    assert deliver_all(queue, consumer) == ["done", "dropped (done)", "done"]
    assert run(service.status(job_id)).state == "running"  # chunk 0 is still held by the dead consumer
    assert consumer.sweep()["chunks"] == 1  # ... which the sweep gives back to the queue
    assert deliver_all(queue, consumer) == ["done"]
    result = run(service.result(job_id))
    assert [p.index for p in result.pages] == list(range(6))  # every page, once, in order
    assert len({p.markdown for p in result.pages}) == 6


def test_cancel_stops_the_job_keeps_its_pages_and_refuses_its_result(rig):
    _, queue, backend, service, consumer = rig
    status, _ = _submit(service, _pdf(8))
    kind, args = queue.messages.popleft()
    assert consumer.run_chunk(*args) == "done"
    calls = backend.ocr.calls
    cancelled = run(service.cancel(status.job_id))
    assert cancelled.state == "cancelled" and cancelled.pages_done == 2
    assert deliver_all(queue, consumer) == [
        "dropped (ended)",
        "dropped (ended)",
    ]  # queued chunks are dropped, no backend call
    assert backend.ocr.calls == calls
    pages = run(service.pages(status.job_id))
    assert [p.index for p in pages.pages] == [0, 1] and pages.state == "cancelled"
    with pytest.raises(OCRError) as e:
        run(service.result(status.job_id))
    assert e.value.code == ErrorCode.JOB_CANCELLED and e.value.status == 409
    assert run(service.cancel(status.job_id)).state == "cancelled"  # cancelling twice is harmless


def test_cancelling_an_ended_job_is_a_conflict_and_unknown_jobs_are_not_found(rig):
    _, queue, _, service, consumer = rig
    status, _ = _submit(service, _pdf(1))
    deliver_all(queue, consumer)
    with pytest.raises(OCRError) as e:
        run(service.cancel(status.job_id))
    assert e.value.code == ErrorCode.JOB_FINISHED and e.value.status == 409
    for bad in ("nope", "../../etc/passwd", "A" * 32, "0" * 31, "0" * 32):
        with pytest.raises(OCRError) as e:
            run(service.status(bad))
        assert e.value.code == ErrorCode.NOT_FOUND
    with pytest.raises(OCRError):
        check_job_id("g" * 32)


def test_a_client_error_fails_the_job_with_it_and_keeps_the_pages_before(rig):
    settings, queue, _, service, _ = rig
    broken = FakeHandle("fake", error=OCRError("invalid_document", "page 3 is damaged"))
    consumer = JobConsumer({"fake": broken}, settings, queue=queue, background=False)
    status, _ = _submit(service, _pdf(4))
    deliver_all(queue, consumer)
    final = run(service.status(status.job_id))
    assert final.state == "failed" and final.error.code == ErrorCode.INVALID_DOCUMENT
    with pytest.raises(OCRError) as e:
        run(service.result(status.job_id))
    assert e.value.code == ErrorCode.NOT_FOUND and "damaged" in e.value.message


def test_the_event_stream_is_in_order_complete_and_resumable(rig):
    _, queue, _, service, consumer = rig
    status, _ = _submit(service, _pdf(3))
    deliver_all(queue, consumer)

    async def read(after: int) -> list[tuple[int | None, str, dict]]:
        stream = await service.events(status.job_id, after, lambda s: s)
        out = []
        async for chunk in stream:
            text = chunk.decode()
            if text.startswith(("retry", ":")):
                continue
            fields = dict(line.split(": ", 1) for line in text.strip().splitlines())
            out.append((int(fields["id"]) if "id" in fields else None, fields["event"], json.loads(fields["data"])))
        return out

    events = run(read(0))
    assert [e[1] for e in events] == ["status", "page", "page", "progress", "page", "progress", "end"]
    assert [e[0] for e in events[1:]] == [1, 2, 3, 4, 5, 6]
    assert sorted(e[2]["page"]["index"] for e in events if e[1] == "page") == [0, 1, 2]
    assert events[-1][2]["state"] == "succeeded" and events[-1][2]["pages_done"] == 3
    resumed = run(read(4))
    assert [(e[0], e[1]) for e in resumed] == [(None, "status"), (5, "progress"), (6, "end")]
    assert [e[1] for e in run(read(6))] == ["status"]  # the end seen already: the stream closes at once
    assert [e[1] for e in run(read(10**6))] == ["status"]


def test_an_idempotency_key_gives_the_same_job_and_refuses_another_request(rig):
    _, queue, _, service, _ = rig
    data = _pdf(2)
    first, replayed = _submit(service, data, tenant="t", idempotency_key="k-1", fingerprint="fp-a")
    again, replayed_again = _submit(service, data, tenant="t", idempotency_key="k-1", fingerprint="fp-a")
    assert again.job_id == first.job_id and not replayed and replayed_again
    assert len(queue.messages) == 1  # dispatched once
    other, _ = _submit(service, data, tenant="someone-else", idempotency_key="k-1", fingerprint="fp-a")
    assert other.job_id != first.job_id  # keys are per tenant
    with pytest.raises(OCRError) as e:
        _submit(service, data, tenant="t", idempotency_key="k-1", fingerprint="fp-b")
    assert e.value.code == ErrorCode.IDEMPOTENCY_KEY_REUSED and e.value.status == 422
    for bad in ("", "x" * 256, "clé", "a\nb"):
        with pytest.raises(OCRError):
            idempotency.check_key(bad)


def test_a_keyed_ocr_runs_once_and_retries_get_its_answer(rig):
    _, _, backend, service, _ = rig
    calls = []

    async def work():
        calls.append(1)
        await asyncio.sleep(0.2)
        doc = open_document(_pdf(1))
        return await backend.ocr.fn(doc, RunRequest(request_id="r", received_at=time.time()))

    async def both():
        kw = {"tenant": "t", "key": "k", "fp": "fp", "timeout_s": 30, "work": work}
        return await asyncio.gather(service.once(**kw), service.once(**kw))

    (a, replay_a), (b, replay_b) = run(both())
    assert len(calls) == 1 and a.markdown == b.markdown and sorted([replay_a, replay_b]) == [False, True]
    with pytest.raises(OCRError) as e:
        run(service.once(tenant="t", key="k", fp="other", timeout_s=5, work=work))
    assert e.value.code == ErrorCode.IDEMPOTENCY_KEY_REUSED


def test_a_keyed_ocr_whose_router_died_is_run_by_the_retry_but_a_living_ones_is_waited_for(rig, monkeypatch):
    """The claim is renewed while its request runs: a long request keeps it, a dead router loses it at once."""
    _, _, backend, service, _ = rig
    monkeypatch.setattr(idempotency, "LEASE_S", 0.3)
    calls = []

    async def work():
        calls.append(1)
        await asyncio.sleep(1.0)  # three leases long: only renewal keeps it from being taken over
        doc = open_document(_pdf(1))
        return await backend.ocr.fn(doc, RunRequest(request_id="r", received_at=time.time()))

    async def both():
        kw = {"tenant": "t", "key": "long", "fp": "fp", "timeout_s": 30, "work": work}
        first = asyncio.create_task(service.once(**kw))
        await asyncio.sleep(0.1)
        return await asyncio.gather(first, service.once(**kw))

    (_, replay_a), (_, replay_b) = run(both())
    assert len(calls) == 1 and [replay_a, replay_b] == [False, True]

    # a router that claimed the key and died: nobody renews its claim
    name = idempotency.record_key("t", "ocr", "dead")
    service.store.put_json(name, {"fp": "fp", "owner": "dead-router", "lease_until": time.time() + 0.3}, 60)
    # run by the retry, not waited for: waiting out its time limit would have raised ``timeout`` instead
    _, replayed = run(service.once(tenant="t", key="dead", fp="fp", timeout_s=30, work=work))
    assert not replayed and len(calls) == 2
    assert service.store.get_json(name)["owner"] != "dead-router"  # the retry took the lapsed claim over


def test_callback_urls_must_name_an_allowed_host_and_bodies_are_signed():
    hosts = ["hooks.example.com", "127.0.0.1:8999"]
    assert check_callback_url("https://hooks.example.com/x?y=1", hosts)
    assert check_callback_url("http://127.0.0.1:8999/done", hosts)
    refused = [
        ("https://evil.example.com/", "not on this server's allow-list"),
        ("http://127.0.0.1:9000/", "not on this server's allow-list"),
        ("file:///etc/passwd", "http:// or https://"),
        ("ftp://hooks.example.com/", "http:// or https://"),
        ("https://user:pw@hooks.example.com/", "credentials"),
        ("https://hooks.example.com:99999/", "not a URL"),
        ("not a url", "http:// or https://"),
    ]
    for url, why in refused:
        with pytest.raises(OCRError) as e:
            check_callback_url(url, hosts)
        assert e.value.code == ErrorCode.INVALID_OPTION and why in e.value.message, url
    with pytest.raises(OCRError) as e:
        check_callback_url("https://hooks.example.com/", [])
    assert "allow-list is empty" in e.value.message
    body = b'{"event":"job.ended"}'
    expected = hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign(body, "s3cret", 1700000000) == f"sha256={expected}"
    with pytest.raises(ValueError):
        JobSettings(callback_hosts=["hooks.example.com"])  # a list without a secret to sign with


def test_a_chunk_is_a_small_document_of_its_own_pages_at_their_own_positions():
    from shared.documents import rasterize_pages

    images = [Image.new("RGB", (300, 200), (i * 6, 255 - i * 6, 128)) for i in range(40)]
    pdf = open_document(samples.multi_page_pdf(images, dpi=72))
    whole = {p.index: p.image.tobytes() for p in rasterize_pages(dataclasses.replace(pdf, page_indices=[30, 31]))}
    part = sub_document(pdf, [30, 31])
    assert part.page_indices == [30, 31] and part.page_count == 32
    assert part.size_bytes < pdf.size_bytes / 5  # 30 placeholders cost next to nothing
    assert {p.index: p.image.tobytes() for p in rasterize_pages(part)} == whole  # the same pixels, same numbers
    answer = run(FakeHandle("f").ocr.fn(part, RunRequest(request_id="r", received_at=0.0)))
    assert [p.index for p in answer.pages] == [30, 31] and answer.pages[0].markdown == "from f page 31"

    frames = [Image.new("L", (40, 30), color=c) for c in (10, 80, 160, 240)]
    buf = io.BytesIO()
    frames[0].save(buf, format="TIFF", save_all=True, append_images=frames[1:], dpi=(200, 200))
    tiff = open_document(buf.getvalue())
    part = sub_document(tiff, [1, 3])
    assert part.media_type == "image/tiff" and part.page_indices == [1, 3]
    rendered = list(rasterize_pages(part))
    assert [(p.index, p.image.getpixel((0, 0)), p.dpi) for p in rendered] == [
        (1, (80, 80, 80), 200.0),
        (3, (240, 240, 240), 200.0),
    ]
    single = open_document(samples.encode(samples.one_column_page()[0]))
    assert sub_document(single, [0]).data is single.data  # nothing to cut


def test_settings_refuse_what_cannot_work():
    for bad in ({"store": "postgres://x"}, {"chunk_pages": 0}, {"window_chunks": 0}, {"stale_s": 5, "heartbeat_s": 5}):
        with pytest.raises(ValueError):
            JobSettings.model_validate(bad)
    s = JobSettings(state_dir="/tmp/x/{app}", queue_name="q-{app}")
    assert s.app_dir("my app/../x") == "/tmp/x/my_app_.._x" and s.queue("ocr") == "q-ocr"
    assert JobSettings(store="redis://h:6379/0").is_redis()


def test_the_embedded_brokers_delivered_messages_are_pruned_after_keep_s(tmp_path):
    """kombu's SQLAlchemy transport keeps every delivered message (invisible) forever: the sweep deletes old ones."""
    import datetime
    import sqlite3

    from orchestrator.jobs.queue import prune_embedded_broker

    settings = JobSettings(state_dir=str(tmp_path / "{app}"), keep_s=3600)
    (tmp_path / "a").mkdir()
    db = sqlite3.connect(tmp_path / "a" / "broker.sqlite3")
    db.execute("CREATE TABLE kombu_message (id INTEGER PRIMARY KEY, visible BOOLEAN, timestamp DATETIME, payload TEXT)")
    old = (datetime.datetime.now() - datetime.timedelta(hours=2)).isoformat(sep=" ")
    new = datetime.datetime.now().isoformat(sep=" ")
    rows = [(0, old, "delivered long ago"), (0, new, "delivered now"), (1, None, "waiting"), (1, old, "waiting too")]
    db.executemany("INSERT INTO kombu_message (visible, timestamp, payload) VALUES (?, ?, ?)", rows)
    db.commit()
    assert prune_embedded_broker(settings, "a", older_than_s=settings.keep_s) == 1
    left = [r[0] for r in db.execute("SELECT payload FROM kombu_message ORDER BY id")]
    assert left == ["delivered now", "waiting", "waiting too"]
    assert prune_embedded_broker(settings, "nothing-here", older_than_s=1) == 0


KILLED_AFTER_FETCH = """
import os, sys
from kombu import Connection
with Connection(sys.argv[1]) as conn:
    message = conn.default_channel.basic_get(sys.argv[2], no_ack=False)
    print(message.headers["id"], flush=True)
    os._exit(1)  # killed before claiming the chunk: no clean close gives the message back
"""


@pytest.mark.parametrize("broker", ["embedded", "redis"])
def test_a_message_fetched_by_a_consumer_killed_before_its_claim_is_queued_again(request, broker, tmp_path):
    """The real brokers: a process fetches a chunk's message and dies before claiming it. The embedded broker
    (kombu's SQLAlchemy transport) keeps that message invisible for ever, Redis until its visibility timeout (11 min
    by default); the sweep finds it gone from the queue and queues the chunk again. A chunk whose message still
    waits is left alone, however long it has waited."""
    import subprocess
    import sys

    from orchestrator.jobs.queue import JobQueue, celery_config

    store = request.getfixturevalue("redis_server").url if broker == "redis" else "embedded"
    settings = JobSettings(
        store=store, state_dir=str(tmp_path / "{app}"), chunk_pages=1, window_chunks=2, heartbeat_s=1, stale_s=5
    )
    queue = JobQueue(settings, None)
    service = JobService(settings, queue=queue)
    consumer = JobConsumer({"fake": FakeHandle("fake")}, settings, queue=queue, background=False)
    job_id = _submit(service, _pdf(3))[0].job_id
    assert queue.waiting() == {f"{job_id}.0", f"{job_id}.1"}
    broker = celery_config(settings, None).adapter_config.broker_url
    fetched = subprocess.run(
        [sys.executable, "-c", KILLED_AFTER_FETCH, broker, settings.queue(None)], capture_output=True, text=True
    )
    assert fetched.returncode == 1 and fetched.stdout.strip() == f"{job_id}.0", fetched.stderr
    assert queue.waiting() == {f"{job_id}.1"}

    def queued_long_ago(r: JobRecord) -> None:
        for chunk in r.chunks[:2]:
            chunk.dispatched_at = time.time() - 60

    consumer.store.update(job_id, queued_long_ago)
    assert consumer.sweep()["chunks"] == 1  # chunk 0 again; chunk 1 still waits in the broker
    assert queue.waiting() == {f"{job_id}.0", f"{job_id}.1"}
    assert consumer.sweep()["chunks"] == 0  # and once queued again it is not sent twice
    assert [consumer.run_chunk(job_id, i) for i in (0, 1)] == ["done", "done"]
    assert consumer.store.get(job_id).order == [0, 1]
    consumer.close()  # while its store is still there


def test_an_idempotency_key_without_a_job_store_runs_the_request_and_says_so():
    from fastapi.testclient import TestClient

    from orchestrator.serving.api import create_api
    from orchestrator.serving.config import RouterSettings
    from orchestrator.serving.router import Router

    client = TestClient(create_api(Router({"a": FakeHandle("a")}, RouterSettings())))
    png = samples.encode(Image.new("RGB", (120, 90), "white"))
    r = client.post("/v1/ocr", files={"file": ("p.png", png)}, data={"backend": "a"}, headers={"Idempotency-Key": "k"})
    assert r.status_code == 200 and any("Idempotency-Key ignored" in w for w in r.json()["warnings"])
    bad = client.post("/v1/ocr", files={"file": ("p.png", png)}, headers={"Idempotency-Key": "k" * 256})
    assert bad.status_code == 400 and "Idempotency-Key" in bad.json()["error"]["message"]
    jobs = client.post("/v1/jobs", files={"file": ("p.png", png)})
    assert jobs.status_code == 404 and "job API is not deployed" in jobs.json()["error"]["message"]


def test_the_callback_is_queued_at_the_end_delivered_signed_and_rechecked_against_the_allow_list(tmp_path):
    from tests.support.callback_receiver import callback_receiver

    with callback_receiver(answers=[500]) as receiver:
        host = f"127.0.0.1:{receiver.port}"
        settings = JobSettings(
            state_dir=str(tmp_path / "{app}"), chunk_pages=2, callback_hosts=[host], callback_secret="s", stale_s=5,
            heartbeat_s=1,
        )  # fmt: skip
        queue = HandQueue()
        service = JobService(settings, queue=queue)
        consumer = JobConsumer({"fake": FakeHandle("fake")}, settings, queue=queue, background=False)
        status, _ = _submit(service, _pdf(2), callback_url=f"{receiver.url}/done")
        assert queue.deliver(consumer) == ["done", "delivered"]  # the last chunk queued the callback; 500, then 200
        assert len(receiver.calls) == 2 and run(service.status(status.job_id)).callback == "delivered"
        body = receiver.calls[-1].body
        stamp = receiver.calls[-1].headers["x-ocrserve-timestamp"]
        assert receiver.calls[-1].headers["x-ocrserve-signature"] == sign(body, "s", int(stamp))

        # the operator took the host off the list after this job was submitted: no POST, the callback fails
        second, _ = _submit(service, _pdf(1), callback_url=f"{receiver.url}/done")
        off = JobConsumer({"fake": FakeHandle("fake")}, settings.model_copy(update={"callback_hosts": ["other"]}),
                          queue=queue, background=False)  # fmt: skip
        assert queue.deliver(off) == ["done", "failed"]
        assert len(receiver.calls) == 2 and run(service.status(second.job_id)).callback == "failed"


def test_a_run_stored_with_flat_output_options_still_loads():
    """Job records written before RunRequest nested its output options (a store outlives an upgrade)."""
    from shared.requests import RunRequest

    run = RunRequest.model_validate({"request_id": "r", "received_at": 1.0, "include_raw": True, "options": {}})
    assert run.output.include_raw and run.output.include_boxes_image
    assert RunRequest.model_validate(run.model_dump()) == run


def test_an_idempotency_key_belongs_to_the_callers_api_key_however_it_is_sent(tmp_path):
    """x-api-key and Authorization: Bearer name the same caller: a retry sent either way gets the first answer."""
    from fastapi.testclient import TestClient

    from orchestrator.serving.api import create_api
    from orchestrator.serving.config import RouterSettings
    from orchestrator.serving.router import Router

    settings = JobSettings(state_dir=str(tmp_path / "{app}"))
    handle = FakeHandle("a")
    router = Router({"a": handle}, RouterSettings(api_key="k"), jobs=JobService(settings, queue=HandQueue()))
    client = TestClient(create_api(router))
    png = samples.encode(Image.new("RGB", (120, 90), "white"))

    def post(auth: dict[str, str]):
        headers = {"Idempotency-Key": "same", **auth}
        return client.post("/v1/ocr", files={"file": ("p.png", png)}, data={"backend": "a"}, headers=headers)

    first, again = post({"Authorization": "Bearer k"}), post({"x-api-key": "k"})
    assert first.status_code == again.status_code == 200
    assert "idempotent-replayed" not in first.headers and again.headers["idempotent-replayed"] == "true"
    assert again.json()["request_id"] == first.json()["request_id"]
