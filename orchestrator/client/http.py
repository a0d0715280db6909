"""The HTTP client of the service: typed answers (the models of :mod:`shared.schema`), retries on overload.

Long PDFs are sent in chunks of pages so progress can be shown and no single request runs for minutes; the
chunks are merged back into one response. Overload answers (429/503 with ``Retry-After``) are retried a
bounded number of times after the delay the server asked for.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from shared.documents import open_document
from shared.errors import OCRError
from shared.merge import merge_responses
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

RETRY_CODES = {ErrorCode.OVERLOADED, ErrorCode.BACKEND_UNAVAILABLE}
"""Answers worth waiting out (``Retry-After``): a busy or restarting backend. ``models_missing`` also says 503, but
no wait brings the weights: it is answered at once."""


class ServiceError(Exception):
    """The service answered with an ErrorResponse."""

    def __init__(self, status: int, error: ErrorResponse) -> None:
        super().__init__(f"HTTP {status} {error.error.code}: {error.error.message}")
        self.status = status
        self.error = error


class OCRClient:
    """Talks to one deployment of the service over HTTP."""

    def __init__(
        self, base_url: str, *, api_key: str | None = None, timeout_s: float = 600.0, max_retries: int = 5
    ) -> None:
        headers = {"x-api-key": api_key} if api_key else {}
        self.http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout_s, headers=headers)
        self.max_retries = max_retries

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> OCRClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def backends(self) -> BackendList:
        """What is deployed, with each backend's status (``GET /v1/backends``)."""
        return BackendList.model_validate(self._json(self.http.get("/v1/backends")))

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
    ) -> OCRResponse:
        """One request. Raises ServiceError for an error answer (after retrying overload answers)."""
        form: dict[str, str] = {
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
        headers = {"x-request-id": request_id} if request_id else {}
        for attempt in range(self.max_retries + 1):
            r = self.http.post("/v1/ocr", files={"file": (filename, data)}, data=form, headers=headers)
            if attempt < self.max_retries and "retry-after" in r.headers and _error_code(r) in RETRY_CODES:
                time.sleep(min(float(r.headers["retry-after"]), 30.0))
                continue
            return OCRResponse.model_validate(self._json(r))
        raise AssertionError("unreachable")

    def ocr_file(
        self,
        path: Path,
        *,
        chunk_pages: int = 4,
        progress: Callable[[int, int], None] | None = None,
        pages: str | None = None,
        **kwargs: Any,
    ) -> OCRResponse:
        """OCR a local file, ``chunk_pages`` pages per request, calling ``progress(done, total)`` as chunks land."""
        data = path.read_bytes()
        try:
            indices = open_document(data, name=path.name, page_range=pages).page_indices
        except OCRError:
            indices = []  # let the server say what is wrong with it
        if len(indices) <= chunk_pages:
            result = self.ocr_bytes(data, path.name, pages=pages, **kwargs)
            if progress:
                progress(len(result.pages), len(result.pages))
            return result
        parts: list[OCRResponse] = []
        for start in range(0, len(indices), chunk_pages):
            chunk = indices[start : start + chunk_pages]
            spec = ",".join(str(i + 1) for i in chunk)
            parts.append(self.ocr_bytes(data, path.name, pages=spec, **kwargs))
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
            ServiceError: an error answer (after retrying overload answers).
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
        form: dict[str, str] = {
            "backend": backend,
            "include_boxes_image": str(include_boxes_image).lower(),
            "include_raw": str(include_raw).lower(),
        }
        extra = {"pages": pages, "dpi": str(dpi) if dpi else None, "callback_url": callback_url}
        form.update({k: v for k, v in extra.items() if v is not None})
        if options:
            form["options"] = json.dumps(options)
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        r = self._post("/v1/jobs", files={"file": (filename, data)}, data=form, headers=headers)
        return JobStatus.model_validate(self._json(r))

    def job(self, job_id: str) -> JobStatus:
        """A job's status (``GET /v1/jobs/{id}``)."""
        return JobStatus.model_validate(self._json(self.http.get(f"/v1/jobs/{job_id}")))

    def job_pages(self, job_id: str, start: int = 0) -> JobPages:
        """Pages a job has finished, in the order they finished, from position ``start`` on."""
        return JobPages.model_validate(self._json(self.http.get(f"/v1/jobs/{job_id}/pages", params={"start": start})))

    def job_result(self, job_id: str) -> OCRResponse:
        """A succeeded job's whole answer, pages in document order."""
        return OCRResponse.model_validate(self._json(self.http.get(f"/v1/jobs/{job_id}/result")))

    def cancel_job(self, job_id: str) -> JobStatus:
        """Cancel a job (``DELETE /v1/jobs/{id}``): nothing more runs; the pages finished stay readable."""
        return JobStatus.model_validate(self._json(self.http.delete(f"/v1/jobs/{job_id}")))

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

    def _post(self, path: str, **kwargs: Any) -> httpx.Response:
        """POST, waiting out overload answers (``Retry-After``) up to ``max_retries`` times."""
        for attempt in range(self.max_retries + 1):
            r = self.http.post(path, **kwargs)
            if attempt < self.max_retries and "retry-after" in r.headers and _error_code(r) in RETRY_CODES:
                time.sleep(min(float(r.headers["retry-after"]), 30.0))
                continue
            return r
        raise AssertionError("unreachable")

    @staticmethod
    def _json(r: httpx.Response) -> dict[str, Any]:
        try:
            body = r.json()
        except ValueError:
            raise ServiceError(
                r.status_code,
                ErrorResponse.model_validate(
                    {"error": {"code": "internal_error", "message": f"non-JSON answer: {r.text[:200]}"}}
                ),
            ) from None
        if r.status_code >= 400:
            raise ServiceError(r.status_code, ErrorResponse.model_validate(body))
        return body


def _error_code(r: httpx.Response) -> str | None:
    """The ``error.code`` of an error answer, None for anything else."""
    if r.status_code < 400:
        return None
    try:
        return r.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None


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
