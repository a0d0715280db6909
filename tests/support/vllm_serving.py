"""What the real-vLLM serving tests share: their markers, a small page, replica options and HTTP helpers.

Kept apart from the tests so that DeepSeek-OCR and DeepSeek-OCR-2 run in separate modules - each deploys its own
application and deletes it when done, so the two full-size vision towers are never in memory together.
"""

from __future__ import annotations

import importlib.util
import json
from typing import Any

import httpx
import pytest

from benchmarks.support.tiny_vllm import CPU_ENV
from orchestrator.ops import samples
from shared.schema import OCRResponse

REQUIRES_VLLM = pytest.mark.skipif(
    importlib.util.find_spec("vllm") is None,
    reason="vllm is not installed (bash scripts/test.sh installs the CPU build; see docs/deepseek.md)",
)
"""Skips a real-vLLM test only where vllm is absent, saying how to get it."""

VLLM_MARKS = [pytest.mark.vllm, pytest.mark.cluster, pytest.mark.slow, REQUIRES_VLLM]
"""``pytestmark`` of a real-vLLM serving module: selected by ``-m vllm``, skipped only where vllm is absent."""

PAGE = samples.one_column_page(width=440)[0]
"""440 x 622 px: no Gundam tiles on either model (<= 640 px), so one vision pass per page."""

TIMEOUT = httpx.Timeout(600.0)


def actor_options(num_cpus: float, env: dict[str, str] | None = None) -> dict[str, Any]:
    """``ray_actor_options`` of a vLLM replica here: a logical CPU share and vLLM's CPU settings (plus ``env``)."""
    return {"num_cpus": num_cpus, "runtime_env": {"env_vars": {**CPU_ENV, **(env or {})}}}


def backend_listing(client: httpx.Client) -> dict[str, dict[str, Any]]:
    """``GET /v1/backends`` keyed by backend name."""
    return {b["name"]: b for b in client.get("/v1/backends").json()["backends"]}


def post_ocr(client: httpx.Client, backend: str, content: bytes, name: str = "page.png", **options: Any) -> OCRResponse:
    """``POST /v1/ocr`` with the raw result included; PDFs at 50 DPI (an A4 page: 413 x 584 px, no tiles).

    Returns:
        The response, validated against the schema (the test fails on any other status).
    """
    data = {"backend": backend, "include_raw": "true", "options": json.dumps(options)}
    if name.endswith(".pdf"):
        data["dpi"] = "50"
    r = client.post("/v1/ocr", files={"file": (name, content)}, data=data)
    assert r.status_code == 200, r.text
    return OCRResponse.model_validate(r.json())
