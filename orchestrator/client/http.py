"""The HTTP client of the service: typed answers (the models of :mod:`shared.schema`), bounded retries.

Long PDFs are sent in chunks of pages so progress can be shown and no single request runs for minutes; the
chunks are merged back into one response.

Retries (:meth:`OCRClient._send`, every call goes through it), at most ``max_retries`` times per call:

- answers worth waiting out: an ``ErrorResponse`` whose code is in :data:`RETRY_CODES` and that carries
  ``Retry-After`` (a busy backend, a router replica restarting, a proxy's deadline), after the delay it names; and
  a 429/502/503/504 that is not JSON (a proxy or balancer in front that is not the service's), after that delay or a
  growing one;
- a connection that broke or was refused before any answer (HAProxy closes a client's connection without an answer
  when the router replica dies under its request), after a growing delay.

A ``GET`` is always retried. A ``POST`` is retried only when it carries an ``Idempotency-Key`` header, and every
``POST`` this client sends carries one: a fresh UUID per logical call (each chunk of a chunked document is its own
call), the same on each retry of that call, or the caller's own (``idempotency_key=``). The service answers a
keyed ``POST /v1/ocr`` or ``POST /v1/jobs`` it has already seen with the same answer or job instead of running it
again, so a retry after a lost answer never does the work twice; the other ``POST`` routes (compare, extract,
render) compute an answer from the upload alone and are safe to repeat. Any answer that is not the JSON expected is
raised as :class:`ServiceError`, never as a decoding error.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError

from shared.chunking import chunk_response
from shared.documents import open_document
from shared.errors import OCRError
from shared.merge import merge_responses
from shared.openai_api import ChatCompletion, ChatCompletionChunk
from shared.requests import ChunkingMode, ChunkingOptions
from shared.schema import (
    BackendList,
    ErrorCode,
    ErrorResponse,
    ExtractResponse,
    JobPageEvent,
    JobPages,
    JobStatus,
    OCRResponse,
    PageResult,
    RenderResponse,
)
from shared.tokens import BUNDLED_TOKENIZERS, bundled_counter

IDEMPOTENCY_HEADER = "Idempotency-Key"
"""The header that makes a ``POST`` safe to send again: the service runs one call per key."""

RETRY_CODES = {ErrorCode.OVERLOADED, ErrorCode.BACKEND_UNAVAILABLE, ErrorCode.TIMEOUT}
"""Error answers worth waiting out when they carry ``Retry-After``: a busy or restarting backend or router, a proxy's
deadline. ``models_missing`` also says 503, but no wait brings the weights; the router's own ``timeout`` (a request
that ran past its time) carries no ``Retry-After`` and is not sent again."""

RETRY_STATUSES = {429, 502, 503, 504}
"""Statuses that a proxy in front of the service answers for a moment's trouble, retried when the body is not the
service's JSON."""

RETRY_TRANSPORT_ERRORS = (httpx.NetworkError, httpx.RemoteProtocolError, httpx.ConnectTimeout)
"""Connections refused, reset or closed without an answer: retried. A read time-out (the client's ``timeout_s``
passed while the service worked) is not."""

MAX_WAIT_S = 30.0
"""The longest single wait between two tries, whatever ``Retry-After`` says."""

FALLBACK_CODES = {
    408: ErrorCode.TIMEOUT,
    404: ErrorCode.NOT_FOUND,
    429: ErrorCode.OVERLOADED,
    502: ErrorCode.BACKEND_UNAVAILABLE,
    503: ErrorCode.BACKEND_UNAVAILABLE,
    504: ErrorCode.TIMEOUT,
}
"""The code a :class:`ServiceError` gets for an answer that is not an ``ErrorResponse`` (``internal_error`` else)."""


class ServiceError(Exception):
    """The service answered with an ErrorResponse."""

    def __init__(self, status: int, error: ErrorResponse) -> None:
        super().__init__(f"HTTP {status} {error.error.code}: {error.error.message}")
        self.status = status
        self.error = error


class OCRClient:
    """Talks to one deployment of the service over HTTP.

    Args:
        base_url: The service, e.g. ``http://127.0.0.1:8000``.
        api_key: Sent as ``x-api-key`` when the service has ``router.api_key``.
        timeout_s: How long one try may wait for its answer.
        max_retries: Tries after the first, per call (see the module's docstring for what is retried).
    """

    def __init__(
        self, base_url: str, *, api_key: str | None = None, timeout_s: float = 600.0, max_retries: int = 5
    ) -> None:
        headers = {"x-api-key": api_key} if api_key else {}
        self.http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout_s, headers=headers)
        self.max_retries = max_retries
        self.sleep: Callable[[float], None] = time.sleep
        """How the client waits between tries (tests replace it)."""

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> OCRClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def backends(self) -> BackendList:
        """What is deployed, with each backend's status (``GET /v1/backends``)."""
        return BackendList.model_validate(self._json(self._get("/v1/backends")))

    def ocr(
        self,
        document: Path | bytes,
        *,
        filename: str | None = None,
        backend: str = "auto",
        pages: str | None = None,
        dpi: float | None = None,
        options: dict[str, Any] | None = None,
        include_boxes_image: bool = True,
        include_raw: bool = False,
        chunking: ChunkingMode = "none",
        chunk_tokens: int | None = None,
        chunk_overlap: int | None = None,
        tokenizer: str | None = None,
        request_id: str | None = None,
    ) -> OCRResponse:
        """OCR a document in one request (``POST /v1/ocr``), with chunks for a retrieval index when asked.

        Args:
            document: A path or the document's bytes.
            filename: Display name (default: the path's name, or ``document``).
            chunking: ``none``, ``layout`` or ``tokens`` (see :class:`shared.requests.ChunkingOptions`); the answer's
                ``chunks`` and ``chunking`` say what came back.
            chunk_tokens: Most tokens per chunk (server default 512).
            chunk_overlap: tokens mode: tokens repeated from the previous chunk.
            tokenizer: ``cl100k_base``, ``o200k_base`` or ``backend:<name>``.

        Raises:
            ValueError: chunking options that do not hold together (checked before sending).
            ServiceError: an error answer (after retrying overload answers).
        """
        data = document.read_bytes() if isinstance(document, Path) else document
        name = filename or (document.name if isinstance(document, Path) else "document")
        form = ocr_form(
            backend=backend, pages=pages, dpi=dpi, options=options, include_boxes_image=include_boxes_image,
            include_raw=include_raw,
        )  # fmt: skip
        form.update(
            chunking_form(chunking, chunk_tokens=chunk_tokens, chunk_overlap=chunk_overlap, tokenizer=tokenizer)
        )
        headers = {"x-request-id": request_id} if request_id else {}
        r = self._post("/v1/ocr", files={"file": (name, data)}, data=form, headers=headers)
        return OCRResponse.model_validate(self._json(r))

    def ocr_chunks(
        self,
        path: Path,
        chunking: ChunkingOptions,
        *,
        chunk_pages: int = 4,
        progress: Callable[[int, int], None] | None = None,
        pages: str | None = None,
        **kwargs: Any,
    ) -> OCRResponse:
        """OCR a local file with chunks: one request when its pages fit in ``chunk_pages`` (the server cuts the
        chunks), else ``chunk_pages`` at a time merged here and cut here (:mod:`shared.chunking`: chunks are
        computable from a response alone; a section may span the requests' page boundaries).

        Raises:
            ValueError: ``backend:<name>`` tokenizers on a document sent in several requests (only the server can
                reach a backend's tokenizer: raise ``chunk_pages``).
            ServiceError: an error answer.
        """
        try:
            count = len(open_document(path.read_bytes(), name=path.name, page_range=pages).page_indices)
        except OCRError:
            count = 0  # let the server say what is wrong with it
        if count <= chunk_pages:
            result = self.ocr(
                path, pages=pages, chunking=chunking.chunking, chunk_tokens=chunking.chunk_tokens,
                chunk_overlap=chunking.chunk_overlap, tokenizer=chunking.tokenizer, **kwargs,
            )  # fmt: skip
            if progress:
                progress(len(result.pages), len(result.pages))
            return result
        if chunking.tokenizer not in BUNDLED_TOKENIZERS:
            raise ValueError(
                f"tokenizer {chunking.tokenizer!r} is the server's: send the document in one request "
                f"(chunk_pages >= {count}) or use one of {', '.join(BUNDLED_TOKENIZERS)}"
            )
        result = self.ocr_file(path, chunk_pages=chunk_pages, progress=progress, pages=pages, **kwargs)
        cut = chunk_response(result, chunking, bundled_counter(chunking.tokenizer))
        if cut is not None:
            result.chunks, result.chunking = cut
        return result

    def chat(
        self,
        images: bytes | Path | Sequence[bytes | Path],
        *,
        model: str = "auto",
        prompt: str = "",
        media_type: str = "image/png",
        max_tokens: int | None = None,
    ) -> ChatCompletion:
        """Pages through the OpenAI-compatible endpoint (``POST /v1/chat/completions``): the answer's content is
        their markdown (or the shape the prompt asks for, see :mod:`shared.chat_prompts`).

        Args:
            images: One page or several, as bytes or paths (sent inline as data URLs; the server fetches nothing).
            model: A backend or cascade name (``GET /v1/models``), or ``auto``.
            prompt: The text part: any prompt for DeepSeek backends, a known OCR prompt for the others.
            media_type: What the data URLs declare (the server detects the type from the bytes anyway).
            max_tokens: DeepSeek backends: cap on generated tokens.

        Raises:
            ServiceError: an error answer (OpenAI's error shape, read back into this project's).
        """
        body = chat_body(images, model=model, prompt=prompt, media_type=media_type, max_tokens=max_tokens)
        r = self._post("/v1/chat/completions", json=body, headers=self._bearer())
        if r.status_code >= 400:
            raise openai_service_error(r)
        return ChatCompletion.model_validate(r.json())

    def chat_stream(
        self,
        images: bytes | Path | Sequence[bytes | Path],
        *,
        model: str = "auto",
        prompt: str = "",
        media_type: str = "image/png",
        max_tokens: int | None = None,
        include_usage: bool = True,
    ) -> Iterator[ChatCompletionChunk]:
        """:meth:`chat` as a stream: the server-sent chunks as they arrive (the last one with the usage).

        Raises:
            ServiceError: an error answer, before or during the stream.
        """
        body = chat_body(images, model=model, prompt=prompt, media_type=media_type, max_tokens=max_tokens)
        body.update(stream=True, stream_options={"include_usage": include_usage})
        with self.http.stream("POST", "/v1/chat/completions", json=body, headers=self._bearer()) as r:
            if r.status_code >= 400:
                r.read()
                raise openai_service_error(r)
            for line in r.iter_lines():
                if not line.startswith("data: "):
                    continue
                payload = line[len("data: ") :]
                if payload.strip() == "[DONE]":
                    return
                event = json.loads(payload)
                if "error" in event:
                    raise openai_service_error(httpx.Response(500, json=event))
                yield ChatCompletionChunk.model_validate(event)

    def _bearer(self) -> dict[str, str]:
        """The API key as OpenAI clients send it too (``Authorization: Bearer``)."""
        key = self.http.headers.get("x-api-key")
        return {"authorization": f"Bearer {key}"} if key else {}

    def ocr_bytes(
        self,
        data: bytes,
        filename: str,
        *,
        backend: str = "auto",
        pages: str | None = None,
        dpi: float | None = None,
        options: dict[str, Any] | None = None,
        include_boxes_image: bool = True,
        include_raw: bool = False,
        request_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> OCRResponse:
        """One request (``POST /v1/ocr``), retried as the module's docstring says.

        Args:
            idempotency_key: The call's ``Idempotency-Key`` (default: a fresh UUID): the same key for the same call
                sent again later, e.g. after this process restarted, gets the service's first answer.

        Raises:
            ServiceError: an error answer, or one that is not the JSON expected (after the retries).
            httpx.TransportError: no answer at all (after the retries).
        """
        form = ocr_form(
            backend=backend,
            pages=pages,
            dpi=dpi,
            options=options,
            include_boxes_image=include_boxes_image,
            include_raw=include_raw,
        )
        headers = {"x-request-id": request_id} if request_id else {}
        r = self._post(
            "/v1/ocr", files={"file": (filename, data)}, data=form, headers=headers, idempotency_key=idempotency_key
        )
        return OCRResponse.model_validate(self._json(r))

    def ocr_file(
        self,
        path: Path,
        *,
        chunk_pages: int = 4,
        progress: Callable[[int, int], None] | None = None,
        pages: str | None = None,
        idempotency_key: str | None = None,
        **kwargs: Any,
    ) -> OCRResponse:
        """OCR a local file, ``chunk_pages`` pages per request, calling ``progress(done, total)`` as chunks land.

        Each chunk is a call of its own: with ``idempotency_key``, chunk ``1,2,3`` is sent as ``KEY:1,2,3``."""
        data = path.read_bytes()
        try:
            indices = open_document(data, name=path.name, page_range=pages).page_indices
        except OCRError:
            indices = []  # let the server say what is wrong with it
        if len(indices) <= chunk_pages:
            result = self.ocr_bytes(data, path.name, pages=pages, idempotency_key=idempotency_key, **kwargs)
            if progress:
                progress(len(result.pages), len(result.pages))
            return result
        parts: list[OCRResponse] = []
        for start in range(0, len(indices), chunk_pages):
            chunk = indices[start : start + chunk_pages]
            spec = ",".join(str(i + 1) for i in chunk)
            key = f"{idempotency_key}:{spec}" if idempotency_key else None
            parts.append(self.ocr_bytes(data, path.name, pages=spec, idempotency_key=key, **kwargs))
            if progress:
                progress(min(start + chunk_pages, len(indices)), len(indices))
        return merge_responses(parts)

    def extract(
        self,
        data: bytes,
        filename: str,
        *,
        json_schema: dict[str, Any] | None = None,
        preset: str | None = None,
        backend: str | None = None,
        scope: str = "document",
        prompt: str | None = None,
        include_markdown: bool = True,
        pages: str | None = None,
        dpi: float | None = None,
        options: dict[str, Any] | None = None,
        request_id: str | None = None,
    ) -> ExtractResponse:
        """Fields of a document as JSON constrained to ``json_schema`` or a shipped ``preset`` (``POST /v1/extract``).

        Raises:
            ServiceError: an error answer (after the retries).
        """
        form: dict[str, str] = {"scope": scope, "include_markdown": str(include_markdown).lower()}
        fields = {"preset": preset, "backend": backend, "prompt": prompt, "pages": pages}
        form.update({k: v for k, v in fields.items() if v is not None})
        if json_schema is not None:
            form["json_schema"] = json.dumps(json_schema)
        if dpi:
            form["dpi"] = str(dpi)
        if options:
            form["options"] = json.dumps(options)
        headers = {"x-request-id": request_id} if request_id else {}
        r = self._post("/v1/extract", files={"file": (filename, data)}, data=form, headers=headers)
        return ExtractResponse.model_validate(self._json(r))

    def render(
        self,
        text: str,
        *,
        mode: str = "small",
        font: str = "monospace",
        font_size_px: int | None = None,
        margin_px: int | None = None,
        dpi: float = 144.0,
        backend: str | None = None,
        include_images: bool = True,
        max_pages: int = 50,
    ) -> RenderResponse:
        """Text drawn into pages for a DeepSeek mode, with vision and text tokens (``POST /v1/render``).

        Raises:
            ServiceError: an error answer.
        """
        body: dict[str, Any] = {
            "text": text,
            "mode": mode,
            "font": font,
            "dpi": dpi,
            "include_images": include_images,
            "max_pages": max_pages,
        }
        extra = {"font_size_px": font_size_px, "margin_px": margin_px, "backend": backend}
        body.update({k: v for k, v in extra.items() if v is not None})
        return RenderResponse.model_validate(self._json(self._post("/v1/render", json=body)))

    # --- the job API (long and bulk documents) -------------------------------------------------------------

    def submit_job(
        self,
        data: bytes,
        filename: str,
        *,
        backend: str = "auto",
        pages: str | None = None,
        dpi: float | None = None,
        options: dict[str, Any] | None = None,
        include_boxes_image: bool = True,
        include_raw: bool = False,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> JobStatus:
        """Submit a document as a job (``POST /v1/jobs``); returns at once with its status.

        ``idempotency_key`` makes a retried submit the same job (the service remembers the key with the job).

        Raises:
            ServiceError: an error answer (after retrying overload answers).
        """
        form = ocr_form(
            backend=backend,
            pages=pages,
            dpi=dpi,
            options=options,
            include_boxes_image=include_boxes_image,
            include_raw=include_raw,
        )
        if callback_url:
            form["callback_url"] = callback_url
        r = self._post("/v1/jobs", files={"file": (filename, data)}, data=form, idempotency_key=idempotency_key)
        return JobStatus.model_validate(self._json(r))

    def job(self, job_id: str) -> JobStatus:
        """A job's status (``GET /v1/jobs/{id}``)."""
        return JobStatus.model_validate(self._json(self._get(f"/v1/jobs/{job_id}")))

    def job_pages(self, job_id: str, start: int = 0) -> JobPages:
        """Pages a job has finished, in the order they finished, from position ``start`` on."""
        return JobPages.model_validate(self._json(self._get(f"/v1/jobs/{job_id}/pages", params={"start": start})))

    def job_result(self, job_id: str) -> OCRResponse:
        """A succeeded job's whole answer, pages in document order."""
        return OCRResponse.model_validate(self._json(self._get(f"/v1/jobs/{job_id}/result")))

    def cancel_job(self, job_id: str) -> JobStatus:
        """Cancel a job (``DELETE /v1/jobs/{id}``): nothing more runs; the pages finished stay readable."""
        return JobStatus.model_validate(self._json(self._send("DELETE", f"/v1/jobs/{job_id}", retry=True)))

    def job_events(self, job_id: str, *, last_event_id: int | None = None, reconnects: int = 5) -> Iterator[JobEvent]:
        """The job's server-sent events until its ``end`` (``GET /v1/jobs/{id}/events``), reconnecting with
        ``Last-Event-ID`` when the stream breaks, so no event is missed or seen twice.

        Raises:
            ServiceError: an error answer (an unknown job: 404).
            httpx.HTTPError: the stream broke more than ``reconnects`` times in a row.
        """
        last = last_event_id
        failures = 0
        while True:
            headers = {"Last-Event-ID": str(last)} if last is not None else {}
            try:
                with self.http.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers, timeout=None) as r:
                    if r.status_code >= 400:
                        r.read()
                        self._json(r)  # raises ServiceError
                    for event in _parse_sse(r.iter_lines()):
                        failures = 0
                        if event.id is not None:
                            last = event.id
                        yield event
                        if event.event == "end":
                            return
            except httpx.HTTPError:
                failures += 1
                if failures > reconnects:
                    raise
                time.sleep(min(2.0**failures, 30.0))

    def run_job(
        self,
        data: bytes,
        filename: str,
        *,
        progress: Callable[[int, int], None] | None = None,
        on_page: Callable[[PageResult], None] | None = None,
        poll_s: float = 1.0,
        **submit: Any,
    ) -> OCRResponse:
        """Submit a job, follow it (server-sent events; polling its status where events are not served), and
        return its result. ``progress(done, total)`` after each chunk; ``on_page(page)`` as each page finishes.

        Raises:
            ServiceError: an error answer, or the job failed or was cancelled (its error, or ``job_cancelled``).
        """
        status = self.submit_job(data, filename, **submit)
        if progress:
            progress(status.pages_done, status.pages_total)
        try:
            for event in self.job_events(status.job_id):
                if isinstance(event.data, JobPageEvent) and on_page:
                    on_page(event.data.page)
                elif isinstance(event.data, JobStatus):
                    status = event.data
                    if progress:
                        progress(status.pages_done, status.pages_total)
        except ServiceError as e:
            if e.status != 404 or e.error.error.code != "not_found" or "events" not in str(e):
                raise
            while status.state in ("queued", "running"):  # a service without the events route: poll
                time.sleep(poll_s)
                status = self.job(status.job_id)
                if progress:
                    progress(status.pages_done, status.pages_total)
        if status.state != "succeeded":
            status = self.job(status.job_id)
        return self.job_result(status.job_id)  # the service's own answer for a failed or cancelled job

    def _get(self, path: str, **kwargs: Any) -> httpx.Response:
        """GET ``path``: always safe to send again, retried as the module's docstring says."""
        return self._send("GET", path, retry=True, **kwargs)

    def _post(self, path: str, *, idempotency_key: str | None = None, **kwargs: Any) -> httpx.Response:
        """POST ``path`` with an ``Idempotency-Key`` (``idempotency_key``, or a fresh UUID for this call) kept on
        every try, so it is retried as the module's docstring says."""
        headers = {**kwargs.pop("headers", {}), IDEMPOTENCY_HEADER: idempotency_key or str(uuid.uuid4())}
        return self._send("POST", path, retry=True, headers=headers, **kwargs)

    def _send(self, method: str, path: str, *, retry: bool, **kwargs: Any) -> httpx.Response:
        """One call: the answer of its last try.

        Args:
            retry: Whether the call may be sent again (a GET or DELETE, a POST with an ``Idempotency-Key``); without
                it the first answer, or the first transport error, is final.

        Raises:
            httpx.TransportError: the last try got no answer.
        """
        if retry and method not in ("GET", "DELETE") and IDEMPOTENCY_HEADER not in kwargs.get("headers", {}):
            raise ValueError(f"a {method} is sent again only with an {IDEMPOTENCY_HEADER} header")
        for attempt in range(self.max_retries + 1):
            last = not retry or attempt == self.max_retries
            try:
                r = self.http.request(method, path, **kwargs)
            except RETRY_TRANSPORT_ERRORS:
                if last:
                    raise
                self.sleep(_backoff_s(attempt))
                continue
            wait = _retry_wait_s(r, attempt)
            if last or wait is None:
                return r
            self.sleep(wait)
        raise AssertionError("unreachable")

    @staticmethod
    def _json(r: httpx.Response) -> dict[str, Any]:
        """The answer's JSON object; :class:`ServiceError` for an error answer or one that is not a JSON object."""
        try:
            body = r.json()
        except ValueError:
            body = None
        if r.status_code < 400 and isinstance(body, dict):
            return body
        error = _as_error_response(body)
        if error is not None:
            raise ServiceError(r.status_code, error)
        code = FALLBACK_CODES.get(r.status_code, ErrorCode.INTERNAL_ERROR)
        kind = r.headers.get("content-type") or "no content type"
        message = f"not the service's answer (HTTP {r.status_code}, {kind}): {r.text[:200]!r}"
        error = ErrorResponse.model_validate({"error": {"code": code, "message": message}})
        raise ServiceError(r.status_code, error)


def _as_error_response(body: Any) -> ErrorResponse | None:
    """``body`` as the API's ``ErrorResponse``, None when it is not one."""
    try:
        return ErrorResponse.model_validate(body) if isinstance(body, dict) else None
    except ValidationError:
        return None


def _error_code(r: httpx.Response) -> str | None:
    """The ``error.code`` of an error answer in the API's shape, None for anything else."""
    if r.status_code < 400:
        return None
    try:
        return r.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None


def ocr_form(
    *,
    backend: str,
    pages: str | None,
    dpi: float | None,
    options: dict[str, Any] | None,
    include_boxes_image: bool,
    include_raw: bool,
) -> dict[str, str]:
    """The form fields of ``POST /v1/ocr`` (multipart), absent values left out."""
    form = {
        "backend": backend,
        "include_boxes_image": str(include_boxes_image).lower(),
        "include_raw": str(include_raw).lower(),
    }
    if pages:
        form["pages"] = pages
    if dpi:
        form["dpi"] = str(dpi)
    if options:
        form["options"] = json.dumps(options)
    return form


def chunking_form(
    chunking: str, *, chunk_tokens: int | None, chunk_overlap: int | None, tokenizer: str | None
) -> dict[str, str]:
    """The chunking form fields (none for ``chunking: none``), checked with the server's own model first.

    Raises:
        ValueError: options that do not hold together (pydantic's ValidationError).
    """
    fields = {
        "chunking": chunking,
        "chunk_tokens": chunk_tokens,
        "chunk_overlap": chunk_overlap,
        "tokenizer": tokenizer,
    }
    given = {k: v for k, v in fields.items() if v is not None}
    ChunkingOptions.model_validate(given)
    if chunking == "none":
        return {}
    return {k: str(v) for k, v in given.items()}


def _data_url(image: bytes | Path, media_type: str) -> str:
    data = image.read_bytes() if isinstance(image, Path) else image
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def chat_body(
    images: bytes | Path | Sequence[bytes | Path], *, model: str, prompt: str, media_type: str, max_tokens: int | None
) -> dict[str, Any]:
    """OpenAI's chat request for pages: one user message, the text part first, then each page as a data URL."""
    pages = [images] if isinstance(images, bytes | Path) else list(images)
    content: list[dict[str, Any]] = [{"type": "text", "text": prompt}] if prompt else []
    content += [{"type": "image_url", "image_url": {"url": _data_url(p, media_type)}} for p in pages]
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": content}]}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    return body


def openai_service_error(r: httpx.Response) -> ServiceError:
    """An OpenAI-shaped error answer as this client's ServiceError (the code read back into an ErrorCode)."""
    try:
        error = r.json()["error"]
        code = {"model_not_found": "unknown_backend"}.get(error.get("code"), error.get("code"))
        detail = {
            "code": code if code in ErrorCode._value2member_map_ else "internal_error",
            "message": error["message"],
        }
    except (ValueError, KeyError, TypeError):
        detail = {"code": "internal_error", "message": f"non-JSON answer: {r.text[:200]}"}
    return ServiceError(r.status_code, ErrorResponse.model_validate({"error": detail}))


def _retry_wait_s(r: httpx.Response, attempt: int) -> float | None:
    """Seconds to wait before sending the call again after answer ``r``, or None when ``r`` is final."""
    if r.status_code not in RETRY_STATUSES:
        return None
    code = _error_code(r)
    after = _retry_after_s(r)
    if code is not None:  # the service's own answer: waited out only where it says when to come back
        return after if after is not None and code in RETRY_CODES else None
    return after if after is not None else _backoff_s(attempt)


def _retry_after_s(r: httpx.Response) -> float | None:
    """The answer's ``Retry-After`` in seconds (delay form), capped at :data:`MAX_WAIT_S`; None when absent."""
    value = r.headers.get("retry-after")
    if value is None:
        return None
    try:
        return min(max(float(value), 0.0), MAX_WAIT_S)
    except ValueError:  # an HTTP date: wait a moment instead of parsing clocks
        return 1.0


def _backoff_s(attempt: int) -> float:
    """A growing wait for a try that got no answer, or no ``Retry-After``: 0.5 s, 1 s, 2 s... up to 8 s."""
    return min(0.5 * 2**attempt, 8.0)


@dataclass(frozen=True)
class JobEvent:
    """One server-sent event of a job: ``status`` / ``progress`` / ``end`` carry a :class:`JobStatus`, ``page`` a
    :class:`JobPageEvent`; ``id`` is what to resume after (None for ``status``)."""

    id: int | None
    event: str
    data: JobStatus | JobPageEvent


def _parse_sse(lines: Iterable[str]) -> Iterator[JobEvent]:
    """Events from the lines of a text/event-stream (comments and ``retry:`` skipped)."""
    fields: dict[str, str] = {}
    for line in lines:
        if line == "":
            if "event" in fields and "data" in fields:
                kind = fields["event"]
                model = JobPageEvent if kind == "page" else JobStatus
                data = model.model_validate_json(fields["data"])
                yield JobEvent(int(fields["id"]) if fields.get("id", "").isdigit() else None, kind, data)
            fields = {}
        elif not line.startswith(":"):
            key, _, value = line.partition(":")
            fields[key] = value[1:] if value.startswith(" ") else value
