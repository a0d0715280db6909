"""OpenAI-compatible routes: ``POST /v1/chat/completions`` (pages as image parts) and ``GET /v1/models``.

The work is :mod:`orchestrator.serving.openai_service`; errors (the API key's too) leave in OpenAI's shape, so
the key is checked there rather than by this router's dependencies.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from orchestrator.serving import openai_service
from orchestrator.serving.api.deps import RequestIdDep, RouterDep
from orchestrator.serving.api.errors import BACKEND_ERRORS, DOCUMENT_ERRORS, documented
from orchestrator.serving.api.uploads import inline_schema
from shared.openai_api import ChatCompletion, ChatCompletionRequest, ModelList, OpenAIError

router = APIRouter(prefix="/v1", tags=["openai"])

CHAT_ERRORS = documented(*DOCUMENT_ERRORS, *BACKEND_ERRORS, model=OpenAIError)
"""A chat request's pages go through the OCR path: its errors are those of ``/v1/ocr`` (unknown model is
``unknown_backend``), each in OpenAI's shape."""


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses=CHAT_ERRORS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": inline_schema(ChatCompletionRequest)}},
        }
    },
    summary="OpenAI chat completions: the user message's images OCRed by the backend or cascade named as model",
)
async def chat_completions(request: Request, svc: RouterDep, rid: RequestIdDep) -> Response:
    return await openai_service.chat_response(request, svc, rid)


@router.get(
    "/models",
    response_model=ModelList,
    responses=documented(model=OpenAIError),
    summary="Backends and cascades, as models",
)
async def models(request: Request, svc: RouterDep, rid: RequestIdDep) -> Response:
    return await openai_service.models_response(request, svc, rid)
