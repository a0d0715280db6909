"""DeepSeek-OCR-2 (``DeepseekOCR2ForCausalLM``) on the real vLLM engine, in a Ray Serve replica, over HTTP.

Its own module and application, deployed after the DeepSeek-OCR one is gone and deleted when done: the OCR-2
vision encoder (SAM ViT-B + a Qwen2-style encoder at full size) takes ~3.5 GB in vLLM's worker on a CPU, and the
two engines together would crowd a small machine. Cost: the engine starts in ~45 s, a page takes ~20 s.
"""

from __future__ import annotations

import httpx
import pytest

from backends.deepseek.modes import V2_MODES, placeholder_tokens
from benchmarks.support.tiny_vllm import build_tiny_vllm_model, tiny_engine_config
from orchestrator.ops import samples
from tests.support.vllm_serving import PAGE, TIMEOUT, VLLM_MARKS, actor_options, backend_listing, post_ocr

pytestmark = VLLM_MARKS

APP = "deepseek-ocr2-vllm"


@pytest.fixture(scope="module")
def ocr2_url(deploy_app, tmp_path_factory):
    ocr2 = build_tiny_vllm_model(tmp_path_factory.mktemp("tiny-vllm") / "ocr2", variant="ocr2")
    url = deploy_app(
        APP,
        {
            "backends": {
                "deepseek-ocr2": {
                    "engine": "deepseek",
                    "engine_config": tiny_engine_config(ocr2, "ocr2"),
                    "deployment": {"ray_actor_options": actor_options(0.5)},
                },
            },
        },
    )
    yield url
    deploy_app.retire(APP)


def test_ocr2_page_is_served_by_vllm_with_usage_from_what_vllm_received(ocr2_url):
    with httpx.Client(base_url=ocr2_url, timeout=TIMEOUT) as client:
        result = post_ocr(client, "deepseek-ocr2", samples.encode(PAGE), max_new_tokens=8)
        info = backend_listing(client)["deepseek-ocr2"]["info"]
    assert result.model.version == "DeepSeek-OCR-2 (random weights)" and result.model.engine == "vllm"
    assert result.model.device == "cpu" and info["variant"] == "ocr2" and info["random_weights"] is True
    page, raw = result.pages[0], result.raw_result["pages"][0]
    assert page.boxes_image and (page.width, page.height) == PAGE.size
    # OCR-2 has no newline positions: 16 x 16 queries + one view separator = 257 positions = 256 vision tokens
    assert raw["image_positions"] == placeholder_tokens(*PAGE.size, V2_MODES["gundam"], variant="ocr2") == 257
    assert page.usage.vision_tokens == 256 and 0 < page.usage.output_tokens == raw["output_tokens"] <= 8
    assert result.usage.compression_ratio == pytest.approx(page.usage.output_tokens / 256, rel=1e-3)
    # the same processor/runner choice as for OCR v1: vLLM's DeepSeek module serves both architectures
    assert info["logits_processors"] == ["vllm.model_executor.models.deepseek_ocr.NGramPerReqLogitsProcessor"]
    assert info["runner_env"] == {"VLLM_USE_V2_MODEL_RUNNER": "0"}
