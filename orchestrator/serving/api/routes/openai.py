"""OpenAI-compatible routes: ``POST /v1/chat/completions`` (pages as image parts) and ``GET /v1/models``.

The work is :mod:`orchestrator.serving.openai_service`; errors (the API key's too) leave in OpenAI's shape, so
the key is checked there rather than by this router's dependencies.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from orchestrator.serving import openai_service
from orchestrator.serving.api.deps import RequestIdDep, RouterDep
from shared.openai_api import ChatCompletion, ModelList, OpenAIError

router = APIRouter(prefix="/v1", tags=["openai"])

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": OpenAIError, "description": what}
    for code, what in {400: "Bad request", 401: "Missing or wrong API key", 404: "Unknown model",
                       413: "Image over the limits", 503: "Backend unavailable"}.items()
}  # fmt: skip


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses=ERRORS,
    summary="OpenAI chat completions: the user message's images OCRed by the backend or cascade named as model",
)
async def chat_completions(request: Request, svc: RouterDep, rid: RequestIdDep) -> Response:
    return await openai_service.chat_response(request, svc, rid)


@router.get("/models", response_model=ModelList, responses=ERRORS, summary="Backends and cascades, as models")
async def models(request: Request, svc: RouterDep, rid: RequestIdDep) -> Response:
    return await openai_service.models_response(request, svc, rid)
