"""Settings of the job API (``jobs:`` in the app's args). Light on purpose: the app config imports it.

One field says where jobs live, ``store``: ``embedded`` (the default: SQLite files under ``state_dir``, one
machine, nothing else installed) or a Redis URL that every node reaches (a cluster). The same choice gives the
queue's broker (Celery over kombu's SQLAlchemy transport, or Redis) and the job store (:mod:`.store`), so the two
can never disagree about where a job is. ``{app}`` in ``state_dir`` and ``queue_name`` is replaced by the Serve
application's name in each replica, so two applications on one cluster never share jobs.
"""

from __future__ import annotations

import os
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

EMBEDDED = "embedded"
APP_PLACEHOLDER = "{app}"


def default_state_dir() -> str:
    """The user's state directory (``$XDG_STATE_HOME``, else ``~/.local/state``), which outlives a reboot, unlike
    the temp dir; created ``0700`` by the store."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "ocrserve", "jobs", APP_PLACEHOLDER)


def safe_app_name(app: str | None) -> str:
    """An application name fit for a file name, a Redis key and a queue name."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", app or "default")[:100] or "default"


class JobSettings(BaseModel):
    """How jobs are stored, queued, cut into chunks, recovered, and announced."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    store: str = Field(
        default=EMBEDDED,
        description="Where jobs, their documents, chunk results and the queue live: 'embedded' (SQLite files under "
        "state_dir; one machine; survives restarts) or a redis:// or rediss:// URL every node reaches (a cluster; "
        "run Redis with appendonly yes). 'env:NAME' reads the value from environment variable NAME in each replica "
        "(a URL with a password from a secret).",
    )
    state_dir: str = Field(
        default_factory=default_state_dir,
        description="Embedded store: directory of the SQLite files ({app} is the Serve application's name); created "
        "0700, files 0600, since they hold documents and their text.",
    )
    queue_name: str = Field(
        default=f"ocrserve-jobs-{APP_PLACEHOLDER}",
        description="Name of the Celery queue the chunks go through ({app}: the Serve application's name).",
    )
    chunk_pages: int = Field(default=8, gt=0, description="Pages sent to the backend per call (one chunk).")
    window_chunks: int = Field(
        default=4,
        gt=0,
        description="Chunks of one job queued or running at once. Fan-out per job, and fairness: a job submitted "
        "behind a long one waits for at most this many of its chunks per running long job.",
    )
    chunk_timeout_s: float = Field(default=600.0, gt=0, description="Time limit of one chunk's backend call.")
    chunk_attempts: int = Field(
        default=3,
        ge=1,
        le=20,
        description="Tries of a chunk whose backend was overloaded, unavailable or timed out, with backoff; then the "
        "job fails with that error. A client error (bad page, unreadable document) fails the job at once.",
    )
    keep_s: float = Field(default=24 * 3600.0, gt=0, description="How long ended jobs and their results are kept.")
    heartbeat_s: float = Field(default=5.0, gt=0, description="How often a consumer replica says it is alive.")
    stale_s: float = Field(
        default=30.0,
        gt=0,
        description="A consumer silent this long is gone: its chunks are queued again (a killed replica's work).",
    )
    sweep_s: float = Field(
        default=10.0, gt=0, description="How often each consumer looks for chunks to queue again (and at start)."
    )
    queue_poll_s: float = Field(
        default=10.0,
        gt=0,
        description="How often the consumers' autoscaling policy reads the queue's length (Redis store).",
    )
    events_poll_s: float = Field(
        default=0.5,
        gt=0,
        le=10,
        description="How often an open event stream (GET /v1/jobs/{id}/events) looks for news.",
    )
    callback_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts a job's callback_url may name ('host' or 'host:port'); empty: callbacks refused at submit. "
        "Redirects are never followed.",
    )
    callback_secret: SecretStr | None = Field(
        default=None, description="Key of the HMAC-SHA256 signature of every callback (required with callback_hosts)."
    )
    callback_attempts: int = Field(default=5, ge=1, le=20, description="Tries of a callback, with backoff (≤ 60 s).")
    callback_timeout_s: float = Field(default=10.0, gt=0, description="Time limit of one callback POST.")
    idempotency_ttl_s: float = Field(
        default=3600.0,
        gt=0,
        description="How long the answer of a POST /v1/ocr sent with an Idempotency-Key is kept for its retries "
        "(a job's key lives as long as the job).",
    )

    @field_validator("store")
    @classmethod
    def _store_kind(cls, v: str) -> str:
        if v == EMBEDDED or v.startswith(("redis://", "rediss://", "env:")):
            return v
        raise ValueError(f"store must be 'embedded', a redis:// or rediss:// URL, or env:NAME, not {v!r}")

    @field_validator("callback_hosts")
    @classmethod
    def _hosts(cls, v: list[str]) -> list[str]:
        out = []
        for host in v:
            h = host.strip().lower()
            if not re.fullmatch(r"[a-z0-9.\-\[\]:]+", h) or "/" in h or "@" in h:
                raise ValueError(f"callback_hosts entry {host!r} is not a host or host:port")
            out.append(h)
        return out

    @model_validator(mode="after")
    def _secret_with_hosts(self) -> JobSettings:
        if self.callback_hosts and self.callback_secret is None:
            raise ValueError("callback_hosts needs callback_secret: every callback is signed")
        if self.stale_s <= 2 * self.heartbeat_s:
            raise ValueError("stale_s must be more than twice heartbeat_s, or live consumers look gone")
        return self

    def store_url(self) -> str:
        """``store`` with ``env:NAME`` resolved (in the replica that asks)."""
        if self.store.startswith("env:"):
            name = self.store[4:]
            value = os.environ.get(name, "")
            if not value:
                raise RuntimeError(f"jobs.store names environment variable {name}, which is not set here")
            return value
        return self.store

    def is_redis(self) -> bool:
        """Whether jobs live in Redis (only knowable in a replica when ``store`` is ``env:NAME``)."""
        return self.store_url() != EMBEDDED

    def app_dir(self, app: str | None) -> str:
        return self.state_dir.replace(APP_PLACEHOLDER, safe_app_name(app))

    def queue(self, app: str | None) -> str:
        return self.queue_name.replace(APP_PLACEHOLDER, safe_app_name(app))

    def redis_prefix(self, app: str | None) -> str:
        return f"ocrserve:{safe_app_name(app)}:"

    def describe(self) -> dict[str, Any]:
        """What the job API runs on, for logs (no secrets)."""
        store = self.store if self.store in (EMBEDDED,) or self.store.startswith("env:") else "redis"
        return {"store": store, "chunk_pages": self.chunk_pages, "window_chunks": self.window_chunks}
