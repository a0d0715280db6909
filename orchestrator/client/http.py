"""The HTTP client of the service: typed answers (the models of :mod:`shared.schema`), retries on overload.

Long PDFs are sent in chunks of pages so progress can be shown and no single request runs for minutes; the
chunks are merged back into one response. Overload answers (429/503 with ``Retry-After``) are retried a
bounded number of times after the delay the server asked for.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from shared.chunking import chunk_response
from shared.documents import open_document
from shared.errors import OCRError
from shared.merge import merge_responses
from shared.openai_api import ChatCompletion, ChatCompletionChunk
from shared.requests import ChunkingMode, ChunkingOptions
from shared.schema import BackendList, ErrorCode, ErrorResponse, ExtractResponse, OCRResponse, RenderResponse
from shared.tokens import BUNDLED_TOKENIZERS, bundled_counter

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
        their markdown (or the shape the prompt asks for, see :mod:`orchestrator.serving.openai_prompts`).

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
