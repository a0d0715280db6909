"""DeepSeek-OCR-2 served through Ray Serve and the router over HTTP, on a tiny random checkpoint.

The checkpoint has the real architecture and processor at toy sizes, saved to disk and loaded by the same
``from_pretrained`` path as real weights, so this proves the serving path (replica start, health, routing,
grounding parse, usage, boxes image) on a CPU. Its text is noise by construction; what is checked is the shape.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from orchestrator.ops import samples
from shared.schema import OCRResponse

pytestmark = pytest.mark.cluster
pytest.importorskip("transformers")
pytest.importorskip("torch")


@pytest.fixture(scope="module")
def deepseek_url(deploy_app, tmp_path_factory) -> Iterator[str]:
    from benchmarks.support.tiny_deepseek import build_tiny_model

    model_dir = build_tiny_model(tmp_path_factory.mktemp("tiny-deepseek-ocr2"))
    yield deploy_app(
        "deepseek",
        {
            "backends": {
                "deepseek-ocr": {
                    "engine": "deepseek",
                    "engine_config": {
                        "engine": "transformers",
                        "model": str(model_dir),
                        "offline": True,
                        "max_new_tokens": 16,
                        "warmup": False,
                    },
                    "deployment": {"ray_actor_options": {"num_cpus": 0.5}},
                },
                "missing-weights": {
                    "engine": "deepseek",
                    "engine_config": {"engine": "transformers", "model": str(model_dir / "nowhere"), "offline": True},
                    "deployment": {"ray_actor_options": {"num_cpus": 0.1}},
                },
            },
            "router": {"auto_order": ["missing-weights", "deepseek-ocr"]},
        },
    )
    deploy_app.retire("deepseek")


def test_tiny_deepseek_answers_a_real_page_in_the_unified_schema(deepseek_url):
    image, _ = samples.one_column_page()
    with httpx.Client(base_url=deepseek_url, timeout=300) as client:
        r = client.post(
            "/v1/ocr",
            files={"file": ("page.png", samples.encode(image))},
            data={"backend": "deepseek-ocr", "options": '{"prompt": "markdown"}', "include_raw": "true"},
        )
    assert r.status_code == 200, r.text
    result = OCRResponse.model_validate(r.json())
    assert result.backend == "deepseek-ocr" and result.model.engine == "transformers"
    page = result.pages[0]
    assert (page.width, page.height) == image.size and page.boxes_image
    assert page.usage.vision_tokens and page.usage.vision_tokens > 0
    assert 0 < page.usage.output_tokens <= 16
    assert result.usage.compression_ratio == pytest.approx(
        result.usage.output_tokens / result.usage.vision_tokens, rel=1e-3
    )
    assert result.source_markdown is not None  # the engine's own text, before clean-up


def test_missing_weights_is_not_ready_with_instructions_and_auto_skips_it(deepseek_url):
    with httpx.Client(base_url=deepseek_url, timeout=300) as client:
        listing = {b["name"]: b for b in client.get("/v1/backends").json()["backends"]}
        assert listing["missing-weights"]["status"] == "unavailable"
        assert "download" in listing["missing-weights"]["detail"]
        assert listing["deepseek-ocr"]["status"] == "ready"
        png = samples.encode(samples.one_column_page()[0])
        named = client.post("/v1/ocr", files={"file": ("p.png", png)}, data={"backend": "missing-weights"})
        assert named.status_code == 503 and named.json()["error"]["code"] == "models_missing"
        assert "Retry-After" in named.headers
        auto = client.post("/v1/ocr", files={"file": ("p.png", png)}, data={"backend": "auto"})
        assert auto.status_code == 200 and auto.json()["backend"] == "deepseek-ocr"
