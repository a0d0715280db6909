"""The HTTP client of the service: typed answers (the models of :mod:`shared.schema`), retries on overload.

Long PDFs are sent in chunks of pages so progress can be shown and no single request runs for minutes; the
chunks are merged back into one response. Overload answers (429/503 with ``Retry-After``) are retried a
bounded number of times after the delay the server asked for.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from shared.documents import open_document
from shared.errors import OCRError
from shared.merge import merge_responses
from shared.schema import BackendList, ErrorCode, ErrorResponse, ExtractResponse, OCRResponse, RenderResponse

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
