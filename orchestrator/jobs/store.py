"""The durable job store: job records, each document stored once, chunk results, live consumers.

What lives where (keys of :mod:`.kv`, under a per-application prefix in Redis or in one SQLite file):

=========================  =========================================================================
``job:<id>``               the :class:`~orchestrator.jobs.records.JobRecord` (JSON)
``doc:<id>``               the document's bytes, once; deleted when the job ends
``result:<id>:<n>:<tok>``  chunk ``n``'s answer (zlib'd JSON); ``tok`` is per run, so a second run of a
                           chunk never overwrites the first: the record names the one that counts
``idem:<hash>``            an Idempotency-Key's job or answer (:mod:`.idempotency`)
hash ``active``            ids of jobs the consumers still have work for (the sweeper's list)
hash ``consumers``         consumer id → last heartbeat (epoch seconds)
=========================  =========================================================================

Ended jobs and their results expire ``keep_s`` after the end. Neither router nor consumer replicas keep job state
of their own: any number of each, on any node that reaches the store.
"""

from __future__ import annotations

import json
import logging
import uuid
import zlib
from collections.abc import Callable
from typing import TypeVar

from orchestrator.jobs.kv import KV, RedisKV, SQLiteKV
from orchestrator.jobs.records import JobRecord
from orchestrator.jobs.settings import EMBEDDED, JobSettings
from shared.schema import OCRResponse

logger = logging.getLogger("ray.serve")

T = TypeVar("T")
ACTIVE = "active"
ORPHAN_RESULT_S = 7 * 24 * 3600.0
"""A stored answer that no record came to name (its consumer died between the two writes) goes after this; the
record's own results are given ``keep_s`` from the job's end instead."""
CONSUMERS = "consumers"


class Missing:
    """What :meth:`JobStore.update` answers for a job that is not (or no longer) there."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING = Missing()


def _job(job_id: str) -> str:
    return f"job:{job_id}"


def _doc(job_id: str) -> str:
    return f"doc:{job_id}"


class JobStore:
    """Job records and their data over a :class:`~orchestrator.jobs.kv.KV`."""

    def __init__(self, kv: KV, settings: JobSettings) -> None:
        self.kv = kv
        self.settings = settings

    @classmethod
    def open(cls, settings: JobSettings, app: str | None) -> JobStore:
        """The store ``settings`` name, for Serve application ``app``."""
        url = settings.store_url()
        if url == EMBEDDED:
            kv: KV = SQLiteKV(f"{settings.app_dir(app)}/jobs.sqlite3")
        else:
            redis_kv = RedisKV(url, settings.redis_prefix(app))
            redis_kv.check()
            kv = redis_kv
        return cls(kv, settings)

    # --- jobs ------------------------------------------------------------------------------------------------

    def create(self, record: JobRecord, document: bytes) -> bool:
        """Store a new job and its document; False (nothing written) when a job with this id exists already."""
        if not self.kv.add(_job(record.job_id), record.model_dump_json(exclude_defaults=True).encode()):
            return False
        self.kv.put(_doc(record.job_id), document)
        self.kv.hset(ACTIVE, record.job_id, str(record.created_at))
        return True

    def get(self, job_id: str) -> JobRecord | None:
        raw = self.kv.get(_job(job_id))
        return None if raw is None else JobRecord.model_validate_json(raw)

    def update(self, job_id: str, fn: Callable[[JobRecord], T]) -> T | Missing:
        """Apply ``fn`` to the job's record atomically and store what it made of it; ``MISSING`` if no such job.

        ``fn`` may run more than once (Redis retries when another writer got in first): keep it a pure function of
        the record. When the change ended the job, its document is dropped and its data set to expire.
        """
        ended_now: list[JobRecord] = []

        def step(raw: bytes | None) -> tuple[bytes | None, T | Missing]:
            ended_now.clear()
            if raw is None:
                return None, MISSING
            record = JobRecord.model_validate_json(raw)
            was_ended = record.ended
            answer = fn(record)
            if record.ended and not was_ended:
                ended_now.append(record)
            return record.model_dump_json(exclude_defaults=True).encode(), answer

        answer = self.kv.update(_job(job_id), step)
        for record in ended_now:
            self.settle_ended(record)
        return answer

    def settle_ended(self, record: JobRecord) -> None:
        """A job ended: its document goes, its record and results expire ``keep_s`` from now, and it leaves the
        sweeper's list once nothing is left to do (its callback). Safe to repeat."""
        self.kv.delete(_doc(record.job_id))
        keys = [_job(record.job_id), *(c.result_key for c in record.chunks if c.result_key)]
        self.kv.expire(keys, self.settings.keep_s)
        if not record.needs_sweeping:
            self.kv.hdel(ACTIVE, record.job_id)

    def settled(self, record: JobRecord) -> None:
        """The consumers have nothing left to do for this job (ended, callback delivered or given up)."""
        if not record.needs_sweeping:
            self.kv.hdel(ACTIVE, record.job_id)

    def active(self) -> list[str]:
        """Ids of the jobs the consumers still have work for."""
        return list(self.kv.hgetall(ACTIVE))

    def forget_active(self, job_id: str) -> None:
        self.kv.hdel(ACTIVE, job_id)

    def document(self, job_id: str) -> bytes | None:
        return self.kv.get(_doc(job_id))

    # --- chunk results ---------------------------------------------------------------------------------------

    def put_result(self, job_id: str, index: int, result: OCRResponse) -> str:
        """Store one run's answer for chunk ``index``; returns its key, for :meth:`JobRecord.complete`."""
        key = f"result:{job_id}:{index}:{uuid.uuid4().hex[:12]}"
        self.kv.put(
            key, zlib.compress(result.model_dump_json().encode(), 1), ttl_s=self.settings.keep_s + ORPHAN_RESULT_S
        )
        return key

    def results(self, keys: list[str]) -> list[OCRResponse | None]:
        """The answers stored under ``keys`` (None for any that expired)."""
        raws = self.kv.get_many(keys)
        return [None if r is None else OCRResponse.model_validate_json(zlib.decompress(r)) for r in raws]

    def drop_result(self, key: str) -> None:
        """A run's answer that did not count (the chunk was done by another run, or the job ended first)."""
        self.kv.delete(key)

    # --- consumers -------------------------------------------------------------------------------------------

    def heartbeat(self, consumer: str, now: float) -> None:
        self.kv.hset(CONSUMERS, consumer, repr(now))

    def leave(self, consumer: str) -> None:
        self.kv.hdel(CONSUMERS, consumer)

    def liveness(self, now: float) -> Callable[[str], bool]:
        """A test of whether a consumer id beat within ``stale_s`` (read once, now); forgets long-gone ones."""
        beats = {k: float(v) for k, v in self.kv.hgetall(CONSUMERS).items()}
        stale = self.settings.stale_s
        gone = [k for k, t in beats.items() if now - t > max(stale * 20, 3600)]
        if gone:
            self.kv.hdel(CONSUMERS, *gone)
        return lambda consumer: now - beats.get(consumer, float("-inf")) <= stale

    # --- idempotency records ---------------------------------------------------------------------------------

    def put_json(self, key: str, value: dict, ttl_s: float) -> bool:
        """Store ``value`` under ``key`` unless something is there; returns whether it was stored."""
        return self.kv.add(key, json.dumps(value).encode(), ttl_s=ttl_s)

    def get_json(self, key: str) -> dict | None:
        raw = self.kv.get(key)
        return None if raw is None else json.loads(raw)

    def update_json(self, key: str, fn: Callable[[dict | None], dict | None], ttl_s: float | None = None) -> None:
        def step(raw: bytes | None) -> tuple[bytes | None, None]:
            new = fn(None if raw is None else json.loads(raw))
            return (None if new is None else json.dumps(new).encode()), None

        self.kv.update(key, step, ttl_s=ttl_s)

    def close(self) -> None:
        self.kv.close()
