"""OpenAI's chat-completions API over the router: ``POST /v1/chat/completions`` and ``GET /v1/models``.

Each image of the user message is one document sent through the router's own OCR path (:meth:`Router.ocr`: the
same validation, limits, backend choice, cascades, metrics and time limits as ``POST /v1/ocr``); the answers are
written as one chat completion (:mod:`shared.openai_api`), with the prompt turned into backend options by
:mod:`shared.chat_prompts`. Every error leaves in OpenAI's shape (``{"error": {...}}``) with this
project's status code, the API key included (``Authorization: Bearer`` as OpenAI clients send it, or
``x-api-key``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError
from starlette.responses import Response

from orchestrator.serving.api.deps import REQUEST_ID_HEADER, check_api_key, serve_request_id
from orchestrator.serving.api.responses import json_response
from orchestrator.serving.selection import AUTO
from shared.chat_prompts import plan_prompt
from shared.errors import RETRY_AFTER_S, OCRError, validation_problems
from shared.openai_api import (
    ChatCompletion,
    ChatCompletionRequest,
    ChatRequestError,
    ModelList,
    completion,
    model_list,
    openai_error,
    read_messages,
    sse,
    stream_chunks,
)
from shared.requests import OCROptions
from shared.schema import Capabilities, ErrorCode
from shared.tokens import bundled_counter

logger = logging.getLogger("ray.serve")

CREATED = int(time.time())
"""The models' ``created`` time: when this router replica started (the models are its deployed backends)."""

BODY_SLACK_BYTES = 1 << 20
"""What a chat body may hold beyond its images' base64 (messages, fields)."""


def model_names(router: Any) -> list[str]:
    """What a chat request can name as ``model``: ``auto``, the backends, then the cascades."""
    return [AUTO, *router.backends, *router.settings.cascades]


def models(router: Any) -> ModelList:
    """``GET /v1/models``."""
    return model_list(model_names(router), created=CREATED)


async def prompt_capabilities(router: Any, model: str) -> Capabilities | None:
    """What the prompt is planned for: the backend's capabilities; a cascade's or ``auto``'s only when every backend
    it may use declares the same prompt handling (else None: a prompt-less engine may answer, so only the prompts
    OCR clients send pass)."""
    cascade = router.settings.cascades.get(model)
    names = [cascade.first, cascade.then] if cascade else router.auto_rule() if model == AUTO else [model]
    statuses = await router.statuses()
    caps = [statuses[n].capabilities if n in statuses else None for n in names]
    keys = {
        None if c is None else (tuple(sorted(c.prompts.items())), c.custom_prompt, c.token_limit_option) for c in caps
    }
    return caps[0] if len(keys) == 1 else None


def parse_request(body: bytes) -> ChatCompletionRequest:
    """The request, its validation errors as one ``invalid_option`` naming the first field at fault."""
    try:
        return ChatCompletionRequest.model_validate_json(body)
    except ValidationError as e:
        loc = e.errors()[0]["loc"] if e.errors() else ()
        param = ".".join(str(p) for p in loc) or None
        message = f"bad request: {validation_problems(e)}"
        raise ChatRequestError(ErrorCode.INVALID_OPTION, message, param=param) from None


async def chat(router: Any, request: ChatCompletionRequest, rid: str) -> ChatCompletion:
    """One chat completion: each image through :meth:`Router.ocr` (all at once), the answers as one message.

    Raises:
        OCRError: every error of the request (a :class:`ChatRequestError` where a request field is at fault).
    """
    names = model_names(router)
    if request.model not in names:
        raise ChatRequestError(
            ErrorCode.UNKNOWN_BACKEND,
            f"no model named {request.model!r}: models are this service's backends and cascades (GET /v1/models)",
            param="model",
            accepted=names,
        )
    limits = router.settings.limits
    pages = read_messages(request, max_bytes=limits.max_bytes, max_images=limits.max_pages)
    capabilities = await prompt_capabilities(router, request.model)
    plan = plan_prompt(pages.prompt, capabilities=capabilities, backend=request.model, max_tokens=request.token_limit())
    pages.ignored.extend(plan.ignored)
    opts = OCROptions(backend=request.model, options=plan.options, include_boxes_image=False)
    answers = await asyncio.gather(
        *(
            router.ocr(image.data, image.name, opts, rid if i == 0 else f"{rid}:{i}")
            for i, image in enumerate(pages.images)
        )
    )
    return completion(
        answers,
        model=request.model,
        chat=pages,
        answer_format=plan.answer_format,
        counter=bundled_counter(),
        created=int(time.time()),
        completion_id=f"chatcmpl-{rid}",
    )


def error_response(error: OCRError, rid: str) -> JSONResponse:
    """``error`` in OpenAI's shape, with this project's status and headers."""
    status, body = openai_error(error, request_id=rid)
    headers = {} if serve_request_id() else {REQUEST_ID_HEADER: rid}
    if error.code in RETRY_AFTER_S:
        headers["Retry-After"] = str(RETRY_AFTER_S[error.code])
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The body, refused past ``max_bytes`` (the images' limit as base64, plus slack) before it is all read."""
    limit = max_bytes * 4 // 3 + BODY_SLACK_BYTES
    declared = request.headers.get("content-length")
    too_large = OCRError(
        ErrorCode.DOCUMENT_TOO_LARGE,
        f"the request is over {limit} bytes; images may be at most {max_bytes} bytes",
        accepted={"max_bytes": max_bytes},
    )
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > limit:
            raise too_large
    return bytes(body)


async def chat_response(request: Request, router: Any, rid: str) -> Response:
    """``POST /v1/chat/completions``: JSON, or server-sent events when the request says ``stream``.

    The pages are read before the stream starts, so every error - the engine's too - is an HTTP error status;
    the stream then hands the answer on a paragraph at a time and ends with ``data: [DONE]``.
    """
    try:
        await check_api_key(request)
        parsed = parse_request(await read_body(request, router.settings.limits.max_bytes))
        answer = await chat(router, parsed, rid)
    except OCRError as e:
        logger.info("request %s (chat) failed: %s", rid, e)
        return error_response(e, rid)
    except Exception as e:  # a server fault: hidden unless debugging, as on every route
        logger.exception("request %s (chat): unexpected error", rid)
        debug = router.settings.debug_errors
        message = f"{type(e).__name__}: {e}" if debug else "internal error"
        return error_response(OCRError(ErrorCode.INTERNAL_ERROR, message), rid)
    if not parsed.stream:
        return json_response(answer)
    include_usage = bool(parsed.stream_options and parsed.stream_options.include_usage)
    events = sse(stream_chunks(answer, include_usage=include_usage))
    return StreamingResponse(events, media_type="text/event-stream", headers={"cache-control": "no-cache"})


async def models_response(request: Request, router: Any, rid: str) -> Response:
    """``GET /v1/models`` (behind the API key, in OpenAI's error shape)."""
    try:
        await check_api_key(request)
    except OCRError as e:
        return error_response(e, rid)
    return json_response(models(router))
