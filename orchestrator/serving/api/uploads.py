"""Reading a document and its options from a request: multipart upload or JSON with base64.

Never a server-side path or a URL: the service reads only what the client sends. Oversized bodies are refused
from Content-Length before they are read.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel
from starlette.datastructures import UploadFile

from orchestrator.serving.timing import phase
from shared.errors import OCRError
from shared.requests import Base64File, parse_options

M = TypeVar("M", bound=BaseModel)


def multipart_schema(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI schema of the multipart form for ``model``'s fields plus ``file``."""
    return {
        "type": "object",
        "required": ["file"],
        "properties": {
            "file": {
                "type": "string",
                "format": "binary",
                "description": "The document (PDF, PNG, JPEG, TIFF, WebP, BMP...).",
            },
            **{name: {"type": "string", "description": f.description} for name, f in model.model_fields.items()},
        },
    }


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON schema with its nested models written in place: a schema given to a route by hand
    (``openapi_extra``) is not registered under the document's components, so a ``$ref`` to its ``$defs`` would
    point nowhere in the OpenAPI document."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any, depth: int = 0) -> Any:
        if depth > 32:
            raise ValueError(f"{model.__name__}'s schema is recursive")
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                rest = {k: v for k, v in node.items() if k != "$ref"}
                return {**inline(defs[ref.removeprefix("#/$defs/")], depth + 1), **inline(rest, depth + 1)}
            return {k: inline(v, depth + 1) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v, depth + 1) for v in node]
        return node

    out: dict[str, Any] = inline(schema)
    return out


def request_body(model: type[BaseModel], json_model: type[Base64File]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {"schema": multipart_schema(model)},
                "application/json": {
                    "schema": json_model.model_json_schema(ref_template="#/components/schemas/{model}")
                },
            },
        }
    }


async def read_upload(
    request: Request, *, max_bytes: int, model: type[M], json_model: type[Base64File]
) -> tuple[bytes, str, M]:
    """The document bytes, its display name and the options, from either body kind.

    Raises:
        OCRError: too large (413, checked on Content-Length before reading), malformed body or options (400).
    """
    with phase("read"):
        return await _read_upload(request, max_bytes=max_bytes, model=model, json_model=json_model)


async def _read_upload(
    request: Request, *, max_bytes: int, model: type[M], json_model: type[Base64File]
) -> tuple[bytes, str, M]:
    declared = request.headers.get("content-length")
    # base64 and multipart framing add overhead; refuse early what cannot fit however it is framed
    if declared and declared.isdigit() and int(declared) > max_bytes * 4 // 3 + 1024 * 1024:
        raise OCRError(
            "document_too_large",
            f"the request is {declared} bytes; documents may be at most {max_bytes} bytes",
            accepted={"max_bytes": max_bytes},
        )
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        return await _read_json(request, max_bytes, model, json_model)
    if content_type.startswith("multipart/form-data"):
        return await _read_multipart(request, max_bytes, model)
    raise OCRError(
        "unsupported_media_type",
        f"request body must be multipart/form-data or application/json, not {content_type or 'missing'}",
        accepted=["multipart/form-data", "application/json"],
    )


async def _read_multipart(request: Request, max_bytes: int, model: type[M]) -> tuple[bytes, str, M]:
    fields_allowed = tuple(model.model_fields)
    try:
        form = await request.form(max_files=1, max_fields=len(fields_allowed) + 2)
    except Exception as e:  # starlette raises plain exceptions for malformed or oversized forms
        raise OCRError("invalid_option", f"cannot read the multipart form: {e}") from None
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise OCRError("invalid_option", "the form has no 'file' part", accepted=["file"] + list(fields_allowed))
    unknown = sorted(set(form.keys()) - set(fields_allowed) - {"file"})
    if unknown:
        raise OCRError("invalid_option", f"unknown form fields {unknown}", accepted=["file"] + list(fields_allowed))
    data = await upload.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise OCRError(
            "document_too_large", f"the upload is over the {max_bytes}-byte limit", accepted={"max_bytes": max_bytes}
        )
    fields = {k: form.get(k) for k in fields_allowed if isinstance(form.get(k), str)}
    return data, _display_name(upload.filename), parse_options(model, **fields)


async def _read_json(
    request: Request, max_bytes: int, model: type[M], json_model: type[Base64File]
) -> tuple[bytes, str, M]:
    try:
        body = json.loads(await request.body())
        req = json_model.model_validate(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise OCRError("invalid_option", f"the body is not valid JSON: {e}") from None
    except Exception as e:
        raise OCRError(
            "invalid_option",
            f"bad JSON request: {e}",
            accepted={n: f.description for n, f in json_model.model_fields.items()},
        ) from None
    try:
        data = base64.b64decode(req.file_base64, validate=True)
    except (binascii.Error, ValueError) as e:
        raise OCRError("invalid_option", f"file_base64 is not valid base64: {e}") from None
    if len(data) > max_bytes:
        raise OCRError(
            "document_too_large",
            f"the document is {len(data)} bytes; the limit is {max_bytes}",
            accepted={"max_bytes": max_bytes},
        )
    opts = model.model_validate(req.model_dump(exclude={"file_base64", "filename"}))
    return data, _display_name(req.filename), opts


def _display_name(name: str | None) -> str:
    """The client's file name for display: no directories, no control characters, bounded length."""
    if not name:
        return "document"
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(ch for ch in base if ch.isprintable())[:200]
    return cleaned or "document"
