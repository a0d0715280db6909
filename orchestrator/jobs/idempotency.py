"""``Idempotency-Key`` on ``POST /v1/jobs`` and ``POST /v1/ocr``: a retried POST does not do the work twice.

Keys are scoped to the caller (a hash of its API key; every caller is one tenant where no key is configured) and
bound to the request's fingerprint (the document's hash, its name and every option): the same key with another
request is refused (422 ``idempotency_key_reused``), never answered with someone else's result.

- ``POST /v1/jobs``: the key names the job. The first request creates it; a retry (on any router replica, after
  any restart) gets the same job's status (``Idempotent-Replayed: true``). Kept as long as the job's data.
- ``POST /v1/ocr``: the first request runs as usual (straight to the backend, or the cascade) and its answer is
  kept ``idempotency_ttl_s``; a retry while it runs waits for that answer, a later one gets it at once. A client
  error (4xx) is kept too (the same request gets the same refusal); a server-side failure (5xx) is not, so the
  retry runs again. The router running the first request renews its claim every few seconds while it works;
  if it dies, the claim lapses within ``LEASE_S`` and a retry runs the request itself. Cascades are covered the
  same way: the whole answer is what is kept.

Why not run a keyed ``/v1/ocr`` as a job: a synchronous request would then wait in the job queue behind bulk
work (the per-job window keeps it fair, not first), lose ``auto``'s retry on another backend and cascades, and
every client that sends keys on every POST (as a retrying client should) would move its interactive traffic onto
the batch path. The answer record gives the same guarantee to the caller with none of that.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

from orchestrator.jobs.store import JobStore
from shared.errors import HTTP_STATUS, OCRError
from shared.schema import ErrorCode, OCRResponse

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_CHARS = 255
LEASE_S = 10.0  # how long a claim outlives its router's last renewal


def check_key(value: str | None) -> str | None:
    """The header's value if usable, None when absent.

    Raises:
        OCRError: ``invalid_option`` for an empty, over-long or non-printable-ASCII key.
    """
    if value is None:
        return None
    if not value or len(value) > MAX_KEY_CHARS or not value.isascii() or not value.isprintable():
        raise OCRError(
            ErrorCode.INVALID_OPTION,
            f"{HEADER} must be 1 to {MAX_KEY_CHARS} printable ASCII characters",
            accepted={"header": HEADER, "max_chars": MAX_KEY_CHARS},
        )
    return value


def tenant_of(api_key: str | None) -> str:
    """Who a key belongs to: a hash of the caller's API key ('' without one)."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16] if api_key else ""


def fingerprint(endpoint: str, sha256: str, name: str, options: dict[str, Any]) -> str:
    """What makes two requests the same request."""
    text = json.dumps([endpoint, sha256, name, options], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def record_key(tenant: str, kind: str, key: str) -> str:
    return "idem:" + hashlib.sha256(f"{tenant}\x00{kind}\x00{key}".encode()).hexdigest()


def reused(key: str) -> OCRError:
    return OCRError(
        ErrorCode.IDEMPOTENCY_KEY_REUSED,
        f"{HEADER} {key[:40]!r} was used for a different request (another document or other options); "
        "use a new key for a new request",
        accepted={"header": HEADER},
    )


async def run_once(
    store: JobStore,
    *,
    tenant: str,
    key: str,
    fp: str,
    timeout_s: float,
    ttl_s: float,
    me: str,
    work: Callable[[], Awaitable[OCRResponse]],
) -> tuple[OCRResponse, bool]:
    """``work()``'s answer, computed once per (tenant, key); returns (answer, whether it was a replay).

    Raises:
        OCRError: what ``work`` raised (kept for retries if a client error), ``idempotency_key_reused``, or
            ``timeout`` while another request with the key is still running past this one's time limit.
    """
    name = record_key(tenant, "ocr", key)
    deadline = time.monotonic() + timeout_s
    wait = 0.1
    while True:
        now = time.time()
        claim = {"fp": fp, "owner": me, "lease_until": now + LEASE_S}
        if await asyncio.to_thread(store.put_json, name, claim, ttl_s):
            break
        existing = await asyncio.to_thread(store.get_json, name)
        if existing is None:
            continue  # expired between the two calls
        if existing.get("fp") != fp:
            raise reused(key)
        if "answer" in existing:
            raw = await asyncio.to_thread(store.kv.get, existing["answer"])
            if raw is not None:
                return OCRResponse.model_validate_json(zlib.decompress(raw)), True
        if "error" in existing:
            raise OCRError(
                existing["error"]["code"], existing["error"]["message"], accepted=existing["error"].get("accepted")
            )
        if existing.get("lease_until", 0) < now and await asyncio.to_thread(_take_over, store, name, existing, claim):
            break
        if time.monotonic() > deadline:
            raise OCRError(
                ErrorCode.TIMEOUT,
                f"a request with the same {HEADER} is still running; retry later for its answer",
                accepted={"header": HEADER},
            )
        await asyncio.sleep(wait)
        wait = min(wait * 1.5, 1.0)
    renewing = asyncio.create_task(_renew(store, name, me, ttl_s))
    try:
        result = await work()
    except OCRError as e:
        if HTTP_STATUS[e.code] < 500:  # the same request will be refused the same way: keep the refusal
            error = {"code": e.code.value, "message": e.message, "accepted": e.accepted}
            await asyncio.to_thread(store.update_json, name, lambda r: {**(r or claim), "error": error}, ttl_s)
        else:
            await asyncio.to_thread(store.kv.delete, name)
        raise
    except BaseException:
        await asyncio.to_thread(store.kv.delete, name)
        raise
    finally:
        renewing.cancel()
    answer_key = name + ":answer"
    blob = zlib.compress(result.model_dump_json().encode(), 1)
    await asyncio.to_thread(store.kv.put, answer_key, blob, ttl_s)
    await asyncio.to_thread(store.update_json, name, lambda r: {**(r or claim), "answer": answer_key}, ttl_s)
    return result, False


async def _renew(store: JobStore, name: str, me: str, ttl_s: float) -> None:
    """Keep this router's claim alive while its request runs, so that only a dead router's claim lapses."""

    def step(current: dict | None) -> dict | None:
        if current is None or current.get("owner") != me or "answer" in current or "error" in current:
            return None
        return {**current, "lease_until": time.time() + LEASE_S}

    while True:
        await asyncio.sleep(LEASE_S / 3)
        await asyncio.to_thread(store.update_json, name, step, ttl_s)


def _take_over(store: JobStore, name: str, seen: dict, claim: dict) -> bool:
    """Take a lapsed claim (its router died) if nobody changed it since ``seen``."""
    took: list[bool] = []

    def step(current: dict | None) -> dict | None:
        took.clear()
        if current != seen:
            took.append(False)
            return None
        took.append(True)
        return claim

    store.update_json(name, step)
    return bool(took and took[0])
