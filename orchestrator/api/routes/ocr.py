"""``POST /v1/ocr``: one document, one backend, the unified response.

Takes a multipart upload (``file`` plus form fields) or a JSON body with the document base64-encoded. Never a
server-side path or a URL: the service reads only what the client sends.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.datastructures import UploadFile

from orchestrator.api.deps import RequestIdDep, RouterDep, check_api_key
from shared.errors import OCRError
from shared.requests import OCRJSONRequest, OCROptions, parse_options
from shared.schema import ErrorResponse, OCRResponse

router = APIRouter(prefix="/v1", tags=["ocr"], dependencies=[Depends(check_api_key)])

FORM_FIELDS = tuple(OCROptions.model_fields)
MULTIPART_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["file"],
    "properties": {
        "file": {"type": "string", "format": "binary", "description": "The document (PDF, PNG, JPEG, TIFF, WebP, BMP...)."},
        **{
            name: {"type": "string", "description": field.description}
            for name, field in OCROptions.model_fields.items()
        },
    },
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": what}
    for code, what in {
        400: "Bad option, page range or empty upload",
        401: "Missing or wrong API key",
        404: "Unknown backend",
        413: "Upload, page count or page size over the limits",
        415: "Not a document type the backend reads",
        422: "Unreadable, truncated or encrypted document",
        503: "Backend overloaded, unavailable or missing its models (see Retry-After)",
        504: "Timed out",
    }.items()
}


@router.post(
    "/ocr",
    response_model=OCRResponse,
    responses=ERROR_RESPONSES,
    summary="OCR one document with one backend",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {"schema": MULTIPART_SCHEMA},
                "application/json": {"schema": OCRJSONRequest.model_json_schema(ref_template="#/components/schemas/{model}")},
            },
        }
    },
)
async def ocr(request: Request, svc: RouterDep, rid: RequestIdDep) -> OCRResponse:
    data, filename, opts = await read_upload(request, max_bytes=svc.settings.limits.max_bytes)
    return await svc.ocr(data, filename, opts, rid)


async def read_upload(request: Request, *, max_bytes: int) -> tuple[bytes, str, OCROptions]:
    """The document bytes, its display name and the options, from either body kind.

    Raises:
        OCRError: too large (413, checked on Content-Length before reading), malformed body or options (400).
    """
    declared = request.headers.get("content-length")
    # base64 and multipart framing add overhead; refuse early what cannot fit however it is framed
    if declared and declared.isdigit() and int(declared) > max_bytes * 4 // 3 + 1024 * 1024:
        raise OCRError(
            "document_too_large", f"the request is {declared} bytes; documents may be at most {max_bytes} bytes",
            accepted={"max_bytes": max_bytes},
        )
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        return await _read_json(request, max_bytes)
    if content_type.startswith("multipart/form-data"):
        return await _read_multipart(request, max_bytes)
    raise OCRError(
        "unsupported_media_type",
        f"request body must be multipart/form-data or application/json, not {content_type or 'missing'}",
        accepted=["multipart/form-data", "application/json"],
    )


async def _read_multipart(request: Request, max_bytes: int) -> tuple[bytes, str, OCROptions]:
    try:
        form = await request.form(max_files=1, max_fields=len(FORM_FIELDS) + 2)
    except Exception as e:  # starlette raises plain exceptions for malformed or oversized forms
        raise OCRError("invalid_option", f"cannot read the multipart form: {e}") from None
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise OCRError("invalid_option", "the form has no 'file' part", accepted=["file"] + list(FORM_FIELDS))
    unknown = sorted(set(form.keys()) - set(FORM_FIELDS) - {"file"})
    if unknown:
        raise OCRError("invalid_option", f"unknown form fields {unknown}", accepted=["file"] + list(FORM_FIELDS))
    data = await upload.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise OCRError(
            "document_too_large", f"the upload is over the {max_bytes}-byte limit", accepted={"max_bytes": max_bytes}
        )
    fields = {k: form.get(k) for k in FORM_FIELDS if isinstance(form.get(k), str)}
    return data, _display_name(upload.filename), parse_options(**fields)


async def _read_json(request: Request, max_bytes: int) -> tuple[bytes, str, OCROptions]:
    try:
        body = json.loads(await request.body())
        req = OCRJSONRequest.model_validate(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise OCRError("invalid_option", f"the body is not valid JSON: {e}") from None
    except Exception as e:
        raise OCRError(
            "invalid_option", f"bad JSON request: {e}",
            accepted={n: f.description for n, f in OCRJSONRequest.model_fields.items()},
        ) from None
    try:
        data = base64.b64decode(req.file_base64, validate=True)
    except (binascii.Error, ValueError) as e:
        raise OCRError("invalid_option", f"file_base64 is not valid base64: {e}") from None
    if len(data) > max_bytes:
        raise OCRError(
            "document_too_large", f"the document is {len(data)} bytes; the limit is {max_bytes}",
            accepted={"max_bytes": max_bytes},
        )
    opts = OCROptions.model_validate(req.model_dump(exclude={"file_base64", "filename"}))
    return data, _display_name(req.filename), opts


def _display_name(name: str | None) -> str:
    """The client's file name for display: no directories, no control characters, bounded length."""
    if not name:
        return "document"
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(ch for ch in base if ch.isprintable())[:200]
    return cleaned or "document"
