"""Office, HTML, EPUB and CSV inputs on their worst day, over real HTTP: every hostile document a typed 4xx.

Runs against the ``formats`` application: MinerU's flash tier (the backend that reads these formats) with a short
parse deadline and a memory cap, behind a router with the default limits. The corpus
(:mod:`benchmarks.support.hostile_documents`) is built here, small on disk and hostile when parsed; while it is served a
local HTTP server records every request any component makes, and a canary file's content must appear in no answer.
Resident memory of the router and of the MinerU replica (its parse process included) is read before and after.
"""

from __future__ import annotations

import hashlib
import os
import time

import httpx
import pytest

from shared.processes import tree_rss_mb
from shared.schema import ErrorResponse, OCRResponse

pytestmark = pytest.mark.cluster
pytest.importorskip("mineru", reason="the mineru extra is not installed (scripts/test.sh installs it)")

from benchmarks.support import hostile_documents as hostile  # noqa: E402  (python-docx, python-pptx: the test extra)

PARSE_TIMEOUT_S = 8


@pytest.fixture(scope="module")
def recorder():
    with hostile.recording_server() as served:
        yield served


@pytest.fixture(scope="module")
def canary(tmp_path_factory):
    token = "CANARY-" + hashlib.sha256(os.urandom(16)).hexdigest()[:24]
    path = tmp_path_factory.mktemp("canary") / "secret.txt"
    path.write_text(token)
    return path, token


@pytest.fixture(scope="module")
def client(deploy_app, tmp_path_factory):
    models = tmp_path_factory.mktemp("no-mineru-models")  # flash needs none; anything else fails fast
    url = deploy_app(
        "formats",
        {
            "backends": {
                "mineru": {
                    "engine": "mineru",
                    "engine_config": {
                        "default_tier": "flash",
                        "tiers": ["flash"],
                        "models_dir": str(models),
                        "parse_timeout_s": PARSE_TIMEOUT_S,
                        "parse_timeout_per_page_s": 2,
                        "parse_memory_mb": 2048,
                    },
                    "max_rss_mb": 3072,
                    "deployment": {"max_ongoing_requests": 2, "ray_actor_options": {"num_cpus": 0.3}},
                }
            },
            "router": {"auto_order": ["mineru"], "status_ttl_s": 0},
            "jobs_enabled": False,
        },
    )
    with httpx.Client(base_url=url, timeout=300) as c:
        yield c
    deploy_app.retire("formats")


def _mineru(client) -> dict:
    return {b["name"]: b for b in client.get("/v1/backends").json()["backends"]}["mineru"]


def _router_pid(app: str) -> int | None:
    import psutil

    for p in psutil.process_iter(["pid", "name", "cmdline"]):
        title = " ".join([p.info["name"] or "", *(p.info["cmdline"] or [])])
        if f"ServeReplica:{app}:router" in title:
            return p.info["pid"]
    return None


def _memory(client) -> dict[str, float]:
    pid = _mineru(client)["info"]["pid"]
    router = _router_pid("formats")
    return {"mineru": tree_rss_mb(pid), "router": tree_rss_mb(router) if router else 0.0}


def _good_requests_answer(client) -> None:
    for name, data, text in hostile.good_documents():
        r = client.post("/v1/ocr", files={"file": (name, data)}, data={"backend": "auto"})
        assert r.status_code == 200, (name, r.text[:300])
        assert text in OCRResponse.model_validate(r.json()).markdown, name


def test_backends_list_running_replicas(client):
    mineru = _mineru(client)
    assert mineru["status"] == "ready" and mineru["replicas"] == 1
    assert mineru["info"]["parse_process"]["timeout_s"] == PARSE_TIMEOUT_S


def _serve_corpus(client, cases, token: str) -> list[str]:
    """Send every case; return what was answered other than owed (a 5xx is never owed)."""
    wrong: list[str] = []
    for case in cases:
        r = client.post(
            "/v1/ocr", files={"file": (case.filename, case.data)}, data={"backend": "mineru", **case.fields}
        )
        if r.status_code >= 500 or (r.status_code, r.json().get("error", {}).get("code")) != (case.status, case.code):
            wrong.append(f"{case.id}: {r.status_code} {r.text[:200]}")
            continue
        err = ErrorResponse.model_validate(r.json())
        assert err.error.message and err.request_id == r.headers["x-request-id"]
        assert token not in r.text, case.id
    return wrong


def test_every_hostile_document_is_a_typed_4xx_and_nothing_leaks(client, canary, recorder):
    path, token = canary
    url, hits = recorder
    _good_requests_answer(client)  # warm: memory is measured on a service that has already worked
    before = _memory(client)
    cases = hostile.corpus(canary_path=str(path), canary_url=url)
    assert len(cases) >= 20
    started = time.monotonic()
    wrong = _serve_corpus(client, cases, token)
    took = time.monotonic() - started
    assert not wrong, "\n".join(wrong)
    once = _memory(client)
    assert not _serve_corpus(client, cases, token)  # twice: what the first pass took must not grow again
    twice = _memory(client)
    time.sleep(0.5)
    assert hits == [], hits  # no component fetched any URL the documents named
    print(
        f"\n{len(cases)} hostile documents ({sum(len(c.data) for c in cases) >> 20} MiB) in {took:.1f} s; RSS MiB "
        "before -> after one pass -> after two: "
        + ", ".join(f"{k} {before[k]:.0f} -> {once[k]:.0f} -> {twice[k]:.0f}" for k in before)
    )
    for name in before:
        assert once[name] - before[name] < 150 and twice[name] - once[name] < 50, (name, before, once, twice)
    _good_requests_answer(client)  # and the service answers the next good request


def test_failures_inside_mineru_are_typed(client):
    for case in hostile.parser_failures():  # the router lets these through; MinerU cannot read them
        r = client.post("/v1/ocr", files={"file": (case.filename, case.data)}, data={"backend": "mineru"})
        assert (r.status_code, r.json()["error"]["code"]) == (case.status, case.code), (case.id, r.text[:300])
        assert "MinerU could not read this document" in r.json()["error"]["message"]
    _good_requests_answer(client)


def test_a_parse_past_the_deadline_is_killed_and_the_backend_recovers(client):
    before = _mineru(client)["info"]["parse_process"]
    slow = hostile.streamed_member(  # ~170,000 elements: inside the router's limits, ~20 s of MinerU here
        hostile.docx(["x"]),
        "word/document.xml",
        b"<w:p><w:r><w:t>Words of an ordinary paragraph.</w:t></w:r></w:p>" * 1000,
        50,
        prefix=hostile.word_document("").split("<w:body>")[0].encode() + b"<w:body>",
        suffix=b"</w:body></w:document>",
    )
    r = client.post("/v1/ocr", files={"file": ("slow.docx", slow)}, data={"backend": "mineru"})
    # the deadline ended it (not the request's own time limit: that would be a 504), and the kill is counted below
    assert r.status_code == 413 and r.json()["error"]["code"] == "document_too_complex", r.text[:300]
    assert r.json()["error"]["accepted"]["parse_timeout_s"] == PARSE_TIMEOUT_S
    _good_requests_answer(client)
    after = _mineru(client)["info"]["parse_process"]
    assert after["killed"] == before["killed"] + 1 and after["pid"] != before["pid"]
    with pytest.raises(ProcessLookupError):
        os.kill(before["pid"], 0)  # the old parse process is gone and reaped (same machine as the cluster)


def test_remote_references_are_served_and_never_fetched(client, canary, recorder):
    url, hits = recorder
    seen = len(hits)
    for name, data, text in hostile.remote_reference_documents(url):
        r = client.post("/v1/ocr", files={"file": (name, data)}, data={"backend": "mineru", "include_raw": "true"})
        assert r.status_code == 200, (name, r.text[:300])
        assert text in r.json()["markdown"] and canary[1] not in r.text, name
    time.sleep(0.5)
    assert hits[seen:] == []
