"""Fixtures shared by the suite: where the dev data is, and one real local Ray cluster per test session.

The cluster is started once (it costs ~10 s) and every end-to-end test deploys its own application on it under
its own route prefix, then talks to it over real HTTP through Serve's proxy.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.support.fake_engine import FAKE
from tests.support.serve_apps import (  # the hooks: applications and the cluster go down once no test needs them
    Apps,
    pytest_collection_finish,  # noqa: F401
    pytest_runtest_teardown,  # noqa: F401
    retire_after_last_use,
)

pytest_plugins = ["tests.support.skip_policy"]  # under CI=true, a skip fails unless its reason is allowed there

REPO = Path(__file__).resolve().parents[1]
DEV_DATA = REPO.parent / "shared" / "data" / "dev"

# Ray >= 2.59 turns token auth on for new local clusters; say so explicitly so every process agrees.
os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")


def dev_file(relative: str) -> Path:
    """A file of ../shared/data/dev, or a skip when this clone has no ../shared beside it (CI has it: a skip there
    fails the run, see tests/support/skip_policy.py)."""
    path = DEV_DATA / relative
    if not path.is_file():
        pytest.skip(f"dev data not present ({path}); runs where ../shared/data/dev exists")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


METRICS_PORT = _free_port()


@pytest.fixture(scope="session")
def serve_url() -> Iterator[str]:
    """Base URL of Serve's HTTP proxy on a session-wide local Ray cluster (Prometheus on METRICS_PORT)."""
    import ray
    from ray import serve

    port = _free_port()
    ray.init(
        _metrics_export_port=METRICS_PORT,
        # metrics reach the scrape within a second instead of Ray's default ten: tests that wait for them wait less
        _system_config={"metrics_report_interval_ms": 1000},
        num_cpus=16,  # logical: replicas ask for fractions, the 2 real cores are shared
        object_store_memory=300 * 1024 * 1024,
        include_dashboard=False,
        namespace="serve",
        log_to_driver=False,
    )
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        if ray.is_initialized():  # else it went down after the last test that needed it (tests/support/serve_apps.py)
            serve.shutdown()
            ray.shutdown()


@pytest.fixture(scope="session")
def deploy_app(serve_url: str, tmp_path_factory) -> Iterator[Apps]:
    """``deploy_app(name, args) -> base_url``: run ``build_app(args)`` as application ``name`` at ``/name``;
    ``deploy_app.retire(name)`` takes it down (a module's application, at the module's end).

    Each application's jobs live in this session's own temp dir (unless its args say where), so test sessions
    running side by side on one machine never share a job store or queue."""
    apps = Apps(serve_url, tmp_path_factory.mktemp("jobs"))
    yield apps
    apps.close()  # what is still up goes down with serve_url's serve.shutdown()


AGREEMENT_BLOCKS = [
    {"type": "title", "text": "Quarterly report", "box": [0.1, 0.05, 0.9, 0.1]},
    {"type": "text", "text": "Revenue grew by twelve percent in the third quarter.", "box": [0.1, 0.15, 0.9, 0.3]},
    {"type": "text", "text": "Costs stayed flat across all regions.", "box": [0.1, 0.35, 0.9, 0.5]},
]
EDITED_BLOCK = {
    "type": "text",
    "text": "Profits collapsed after the merger fell through.",
    "box": [0.1, 0.35, 0.9, 0.5],
}
"""Two stand-in backends that read the same page identically but for the third block (block agreement tests)."""


@pytest.fixture(scope="session")
def rapidocr_url(deploy_app) -> str:
    """An application with RapidOCR (tuned and package-default settings) and fake engines behind one router."""
    return deploy_app(
        "cpu",
        {
            "backends": {
                "rapidocr": {"engine": "rapidocr", "deployment": {"ray_actor_options": {"num_cpus": 0.5}}},
                "rapidocr-default": {
                    "engine": "rapidocr",
                    "engine_config": {"params": {}},
                    "deployment": {"ray_actor_options": {"num_cpus": 0.5}},
                },
                "fake": {"engine": FAKE, "deployment": {"ray_actor_options": {"num_cpus": 0.1}}},
                "truth": {
                    "engine": FAKE,
                    "engine_config": {"blocks": AGREEMENT_BLOCKS},
                    "deployment": {"ray_actor_options": {"num_cpus": 0.05}},
                },
                "edited": {
                    "engine": FAKE,
                    "engine_config": {"blocks": [*AGREEMENT_BLOCKS[:2], EDITED_BLOCK]},
                    "deployment": {"ray_actor_options": {"num_cpus": 0.05}},
                },
            },
            "router": {"auto_order": ["rapidocr", "rapidocr-default", "fake"]},
            "allow_custom_engines": True,  # the fake engines
        },
    )


STRICT_KEY = "test-key"


@pytest.fixture(scope="session")
def strict_gates(tmp_path_factory) -> Path:
    """Where the ``strict`` app's 'slow' and 'steady' fake backends look for the gates their 'hold' option names."""
    return tmp_path_factory.mktemp("strict-gates")


@pytest.fixture(scope="session")
def strict_url(deploy_app, strict_gates) -> str:
    """An application with tight limits, an API key, a small-queue backend and crashable backends."""
    tiny = {"ray_actor_options": {"num_cpus": 0.05}}
    gates = {"gate_dir": str(strict_gates)}
    return deploy_app(
        "strict",
        {
            "backends": {
                "rapidocr": {"engine": "rapidocr", "deployment": {"ray_actor_options": {"num_cpus": 0.3}}},
                "slow": {
                    "engine": FAKE,
                    "engine_config": gates,
                    "deployment": {**tiny, "max_ongoing_requests": 1, "max_queued_requests": 1},
                },
                "fragile": {
                    "engine": FAKE,
                    "deployment": {**tiny, "health_check_period_s": 1, "health_check_timeout_s": 5},
                },
                "steady": {"engine": FAKE, "engine_config": {"crashable": False, **gates}, "deployment": tiny},
            },
            "router": {
                "api_key": STRICT_KEY,
                "auto_order": ["fragile", "steady"],
                "limits": {
                    "max_bytes": 3_000_000,
                    "max_pages": 20,
                    "max_job_pages": 100,
                    "max_pixels_per_page": 40_000_000,
                },
                "max_request_timeout_s": 60,
                "status_ttl_s": 0,
            },
            "jobs": {"chunk_pages": 2, "window_chunks": 1},  # one chunk at a time: progress is seen between
            "allow_custom_engines": True,  # the fake engines
        },
    )


SIGNALS_APP = "signals"


@pytest.fixture(scope="session")
def signals_gates(tmp_path_factory) -> Path:
    """Where the ``signals`` app's gated fake backend looks for its gates (tests.support.signals.Gate)."""
    return tmp_path_factory.mktemp("gates")


@pytest.fixture(scope="session")
def signals_url(deploy_app, signals_gates) -> str:
    """Fake engines only, wired to make every router signal happen on demand: a shadow pair whose shadow ('twin')
    holds each read behind the gate ``shadow``, a backend that refuses everything as an engine without its models
    does, a cascade that keeps its pages and one that escalates them, and ``debug_errors`` on."""
    tiny = {"ray_actor_options": {"num_cpus": 0.05}}
    return deploy_app(
        SIGNALS_APP,
        {
            "backends": {
                "fake": {"engine": FAKE, "deployment": tiny},
                "twin": {
                    "engine": FAKE,
                    "engine_config": {"gate_dir": str(signals_gates)},
                    "default_options": {"hold": "shadow"},
                    "deployment": tiny,
                },
                "refuser": {"engine": FAKE, "engine_config": {"refuse": "models_missing"}, "deployment": tiny},
            },
            "router": {
                "auto_order": ["fake"],
                "cascades": {
                    "keeps": {"first": "fake", "then": "refuser"},
                    "escalates": {"first": "refuser", "then": "fake"},
                },
                "shadow": {"fraction": 1.0, "pairs": {"fake": "twin"}, "max_in_flight": 2, "backoff_s": 5},
                "debug_errors": True,
            },
            "jobs_enabled": False,
            "allow_custom_engines": True,  # the fake engines
        },
    )


# the session applications go down after the last test that uses them (tests/support/serve_apps.py)
retire_after_last_use("rapidocr_url", "cpu")
retire_after_last_use("strict_url", "strict")
retire_after_last_use("signals_url", SIGNALS_APP)
