"""Answers encoded once: pydantic-core writes the JSON bytes of the response model straight into the body.

A route that returns a model lets FastAPI validate it again against ``response_model`` and then serialise it;
for an OCR answer with boxes images (megabytes of base64) that is real work done twice for nothing, since the
model was built and validated by our own code. Routes keep ``response_model=`` for the OpenAPI document and return
:func:`json_response` instead; the bytes are the same FastAPI would have sent (``by_alias``, every field).
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel
from starlette.responses import Response

from orchestrator.serving.timing import phase


class ModelResponse(Response):
    media_type = "application/json"


def json_response(model: BaseModel, *, status_code: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """``model`` as an ``application/json`` response, encoded in one pass (timed as ``encode``)."""
    with phase("encode"):
        body = model.__pydantic_serializer__.to_json(model, by_alias=True)
    return ModelResponse(body, status_code=status_code, headers=headers)
