"""A job's end-of-job callback: which URLs are allowed, how the POST is signed, and one delivery attempt.

The service never reaches a host a client names unless the operator listed it: ``jobs.callback_hosts`` (empty by
default, so every ``callback_url`` is refused at submit). Redirects are never followed (a 3xx is a failed
delivery), so an allowed host cannot bounce the POST elsewhere.

The body is JSON ``{"event": "job.ended", "job": JobStatus}``. Headers: ``X-OCRServe-Event: job.ended``,
``X-OCRServe-Delivery: <job id>`` (the same on every retry: receivers dedupe on it; delivery is at least once),
``X-OCRServe-Timestamp: <unix seconds>`` and ``X-OCRServe-Signature: sha256=<hex>``, the HMAC-SHA256 with the
configured secret of ``<timestamp>.<body>`` — so a receiver checks the body and refuses an old replay::

    expected = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    ok = hmac.compare_digest(signature, "sha256=" + expected) and abs(time.time() - int(timestamp)) < 300
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from urllib.parse import urlsplit

from shared.errors import OCRError
from shared.schema import ErrorCode, JobStatus

SIGNATURE_HEADER = "X-OCRServe-Signature"
TIMESTAMP_HEADER = "X-OCRServe-Timestamp"
EVENT = "job.ended"
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
"""Answers worth another try; any other non-2xx (and every 3xx: never followed) is final."""


class CallbackFailed(Exception):
    """One delivery attempt failed; ``final`` when another try cannot help."""

    def __init__(self, message: str, *, final: bool) -> None:
        super().__init__(message)
        self.final = final


def check_callback_url(url: str, allowed_hosts: list[str]) -> str:
    """``url`` if a job may call it back; else the 400 that says why.

    Raises:
        OCRError: ``invalid_option`` for anything but an http(s) URL with a host and no credentials, or a host (and
            port) not on the allow-list.
    """
    if not allowed_hosts:
        raise OCRError(
            ErrorCode.INVALID_OPTION,
            "callbacks are off on this server: its jobs.callback_hosts allow-list is empty",
            accepted={"callback_hosts": []},
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise OCRError(ErrorCode.INVALID_OPTION, f"callback_url is not a URL ({e})") from None
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host or not url.isascii() or not url.isprintable():
        raise OCRError(
            ErrorCode.INVALID_OPTION,
            "callback_url must be an http:// or https:// URL with a host",
            accepted={"schemes": ["http", "https"], "callback_hosts": allowed_hosts},
        )
    if parts.username is not None or parts.password is not None:
        raise OCRError(ErrorCode.INVALID_OPTION, "callback_url must not carry credentials (user:password@)")
    default_port = 443 if parts.scheme == "https" else 80
    candidates = {host, f"{host}:{port or default_port}"}
    if not candidates & set(allowed_hosts):
        raise OCRError(
            ErrorCode.INVALID_OPTION,
            f"callback host {host}:{port or default_port} is not on this server's allow-list (jobs.callback_hosts)",
            accepted={"callback_hosts": allowed_hosts},
        )
    return url


def callback_body(status: JobStatus) -> bytes:
    return json.dumps({"event": EVENT, "job": status.model_dump(mode="json")}, separators=(",", ":")).encode()


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """The ``X-OCRServe-Signature`` value of ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def deliver(url: str, body: bytes, *, job_id: str, secret: str, timeout_s: float) -> None:
    """POST ``body`` to ``url`` once, signed; returns on a 2xx.

    Raises:
        CallbackFailed: anything else (``final`` for answers another try cannot change).
    """
    import httpx

    timestamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "user-agent": "ocrserve-callback",
        "X-OCRServe-Event": EVENT,
        "X-OCRServe-Delivery": job_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(body, secret, timestamp),
    }
    try:
        with httpx.Client(timeout=timeout_s, follow_redirects=False, trust_env=False) as http:
            r = http.post(url, content=body, headers=headers)
    except httpx.HTTPError as e:
        raise CallbackFailed(f"{type(e).__name__}: {e}"[:300], final=False) from None
    if 200 <= r.status_code < 300:
        return
    final = r.status_code not in RETRY_STATUSES
    what = "a redirect (not followed)" if 300 <= r.status_code < 400 else f"HTTP {r.status_code}"
    raise CallbackFailed(f"the receiver answered {what}", final=final)
