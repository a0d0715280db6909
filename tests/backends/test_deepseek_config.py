"""Modes, vision-token arithmetic, prompt presets, options and config validation (no model needed)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from backends.deepseek import DeepSeekConfig, DeepSeekEngine, DeepSeekOptions
from backends.deepseek.config import env_offline, variant_from_hf_config, variant_from_name
from backends.deepseek.modes import (
    V1_MODES,
    V2_MODES,
    placeholder_tokens,
    resolve_mode,
    tile_grid,
    vision_tokens,
    with_geometry,
)
from backends.deepseek.prompts import build_prompt, is_grounded
from shared.errors import OCRError

# --- modes and vision tokens ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "tokens"), [("tiny", 64), ("small", 100), ("base", 256), ("large", 400)])
def test_v1_fixed_modes_token_counts(mode, tokens):
    # the model card's table: Tiny 64, Small 100, Base 256, Large 400, whatever the page shape
    assert vision_tokens(1224, 1584, V1_MODES[mode]) == tokens
    assert vision_tokens(300, 200, V1_MODES[mode]) == tokens


def test_gundam_tiles_follow_aspect_ratio():
    gundam = V1_MODES["gundam"]
    assert tile_grid(640, 640, gundam) == (0, 0)  # no larger than one tile: global view only
    assert vision_tokens(640, 600, gundam) == 256
    assert tile_grid(1224, 1584, gundam) == (2, 3)  # portrait letter page -> 2 x 3
    assert vision_tokens(1224, 1584, gundam) == 6 * 100 + 256
    assert tile_grid(2000, 1000, gundam) == (2, 1)
    assert vision_tokens(2000, 1000, gundam) == 2 * 100 + 256
    ocr2 = V2_MODES["gundam"]
    assert vision_tokens(1224, 1584, ocr2) == 6 * 144 + 256
    assert vision_tokens(700, 760, ocr2) == 256  # <= 768 on both sides: no tiles


def test_tile_grid_matches_transformers():
    from transformers.models.deepseek_ocr2.image_processing_pil_deepseek_ocr2 import get_optimal_tiled_canvas

    spec = V2_MODES["gundam"]
    for w, h in [
        (800, 600),
        (1224, 1584),
        (3000, 800),
        (800, 3000),
        (1536, 768),
        (2304, 1536),
        (1000, 1001),
        (5000, 100),
    ]:
        expected = get_optimal_tiled_canvas((h, w), (768, 768), 2, 6)
        assert tile_grid(w, h, spec) == tuple(expected), (w, h)


def test_placeholder_tokens_match_vllm_formulas():
    # vLLM deepseek_ocr get_num_image_tokens: h*(w+1) global rows with newlines, tile rows with newlines, +1
    g = V1_MODES["gundam"]
    assert placeholder_tokens(600, 600, g, variant="ocr") == 16 * 17 + 1
    assert placeholder_tokens(1224, 1584, g, variant="ocr") == 16 * 17 + (3 * 10) * (2 * 10 + 1) + 1
    # deepseek_ocr2: global + tiles + separator, no newlines
    assert placeholder_tokens(1224, 1584, V2_MODES["gundam"], variant="ocr2") == 256 + 6 * 144 + 1


def test_resolve_mode_warns_whenever_it_substitutes():
    spec, warnings = resolve_mode("gundam", variant="ocr", engine="vllm")
    assert spec.name == "gundam" and spec.tile_size == 640 and warnings == []
    spec, warnings = resolve_mode("tiny", variant="ocr", engine="vllm")
    assert spec.name == "gundam" and len(warnings) == 1 and "'tiny'" in warnings[0] and "vLLM" in warnings[0]
    spec, warnings = resolve_mode("base", variant="ocr2", engine="vllm")
    assert spec.tile_size == 768 and warnings
    spec, warnings = resolve_mode("base", variant="ocr2", engine="transformers")
    assert spec.name == "base" and spec.tile_size is None and warnings == []
    spec, warnings = resolve_mode("small", variant="ocr2", engine="transformers")
    assert spec.name == "base" and "ran 'base'" in warnings[0]
    spec, warnings = resolve_mode("large", variant="ocr2", engine="transformers")
    assert spec.name == "gundam" and warnings


def test_with_geometry_rescales_to_a_checkpoint():
    tiny = with_geometry(V2_MODES["gundam"], base_size=128, tile_size=96, patch_size=2, downsample_ratio=4)
    assert (tiny.global_tokens, tiny.tile_tokens) == (256, 144)
    assert vision_tokens(300, 200, tiny) == 256 + 6 * 144


# --- prompts and options -------------------------------------------------------------------------------------


def test_prompt_presets():
    assert build_prompt("markdown") == "<image>\n<|grounding|>Convert the document to markdown."
    assert build_prompt("ocr") == "<image>\n<|grounding|>OCR this image."
    assert build_prompt("free") == "<image>\nFree OCR."
    assert build_prompt("figure") == "<image>\nParse the figure."
    assert build_prompt("describe") == "<image>\nDescribe this image in detail."
    assert build_prompt("locate", locate_text="Total due") == "<image>\nLocate <|ref|>Total due<|/ref|> in the image."
    assert build_prompt("custom", custom_prompt="Read the stamp.") == "<image>\nRead the stamp."
    assert build_prompt("custom", custom_prompt="<image>\nRead it.") == "<image>\nRead it."
    assert is_grounded(build_prompt("markdown")) and is_grounded(build_prompt("locate", locate_text="x"))
    assert not is_grounded(build_prompt("free"))


@pytest.mark.parametrize(
    "options",
    [
        {"prompt": "locate"},
        {"prompt": "locate", "locate_text": "   "},
        {"prompt": "locate", "locate_text": "a<|/ref|>b"},
        {"prompt": "custom"},
        {"prompt": "custom", "custom_prompt": "<image> <image> twice"},
        {"prompt": "markdown", "locate_text": "x"},
        {"prompt": "free", "custom_prompt": "x"},
        {"mode": "huge"},
        {"prompt": "poem"},
        {"max_new_tokens": 0},
        {"temperature": 0.7},
    ],
)
def test_bad_option_combinations_are_invalid_option(options):
    engine = DeepSeekEngine({"engine": "transformers", "model": "/nonexistent"})
    with pytest.raises(OCRError) as e:
        engine.parse_options(options)
    assert e.value.code == "invalid_option" and e.value.status == 400
    assert "mode" in e.value.accepted and "prompt" in e.value.accepted  # says what is accepted


def test_options_defaults_and_prompt_text():
    opts = DeepSeekOptions()
    assert (opts.mode, opts.prompt) == ("gundam", "markdown")
    assert opts.prompt_text() == "<image>\n<|grounding|>Convert the document to markdown."
    assert (
        DeepSeekOptions(prompt="locate", locate_text="Invoice")
        .prompt_text()
        .endswith("<|ref|>Invoice<|/ref|> in the image.")
    )


def test_token_budget_above_limit_is_refused():
    engine = DeepSeekEngine(
        {"engine": "transformers", "model": "/x", "max_new_tokens": 64, "max_new_tokens_limit": 128}
    )
    plan, _ = engine.plan(engine.parse_options({}))
    assert plan.max_new_tokens == 64
    plan, _ = engine.plan(engine.parse_options({"max_new_tokens": 100}))
    assert plan.max_new_tokens == 100
    with pytest.raises(OCRError) as e:
        engine.plan(engine.parse_options({"max_new_tokens": 129}))
    assert e.value.code == "invalid_option"


# --- config ---------------------------------------------------------------------------------------------------


def test_config_defaults_and_model_choice():
    cfg = DeepSeekConfig()
    assert (cfg.engine, cfg.model_ref(), cfg.batch_pages) == ("vllm", "deepseek-ai/DeepSeek-OCR-2", 64)
    assert cfg.whitelist_token_ids == (128821, 128822)
    assert DeepSeekConfig(engine="transformers").model_ref() == "deepseek-community/DeepSeek-OCR-2"
    assert DeepSeekConfig(variant="ocr").model_ref() == "deepseek-ai/DeepSeek-OCR"
    assert DeepSeekEngine({"batch_pages": 16}).batch_pages == 16


@pytest.mark.parametrize(
    "config",
    [
        {"engine": "transformers", "variant": "ocr"},
        {"engine": "transformers", "model": "deepseek-ai/DeepSeek-OCR"},
    ],
)
def test_v1_on_transformers_is_refused_naming_vllm(config):
    with pytest.raises(ValidationError) as e:
        DeepSeekConfig(**config)
    assert "engine: vllm" in str(e.value) and "transformers<=4.47" in str(e.value)


def test_config_is_strict():
    with pytest.raises(ValidationError):
        DeepSeekConfig(engin="vllm")
    with pytest.raises(ValidationError):
        DeepSeekConfig(max_new_tokens=9000, max_new_tokens_limit=8192)
    for name, field in DeepSeekConfig.model_fields.items():
        assert field.description, name
    for name, field in DeepSeekOptions.model_fields.items():
        assert field.description, name


def test_variant_detection():
    assert variant_from_name("deepseek-ai/DeepSeek-OCR-2") == "ocr2"
    assert variant_from_name("/models/deepseek-ocr2") == "ocr2"
    assert variant_from_name("deepseek-ai/DeepSeek-OCR") == "ocr"
    assert variant_from_name("/models/weights") is None
    assert variant_from_hf_config({"model_type": "deepseek_ocr2"}) == "ocr2"
    assert (
        variant_from_hf_config({"architectures": ["DeepseekOCR2ForCausalLM"], "model_type": "deepseek_vl_v2"}) == "ocr2"
    )
    assert variant_from_hf_config({"architectures": ["DeepseekOCRForCausalLM"]}) == "ocr"


def test_offline_follows_the_environment(monkeypatch):
    assert env_offline({"HF_HUB_OFFLINE": "1"}) and env_offline({"TRANSFORMERS_OFFLINE": "true"})
    assert not env_offline({"HF_HUB_OFFLINE": "0"}) and not env_offline({})
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert DeepSeekConfig().is_offline()
    assert not DeepSeekConfig(offline=False).is_offline()


# --- refused when the application is built ------------------------------------------------------------------------


def _checkpoint(path, config: dict):
    import json

    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config))
    return path


def test_native_ocr2_layout_on_vllm_is_refused_naming_the_fix(tmp_path):
    native = _checkpoint(
        tmp_path / "weights", {"model_type": "deepseek_ocr2", "architectures": ["DeepseekOcr2ForConditionalGeneration"]}
    )
    with pytest.raises(ValidationError) as e:
        DeepSeekConfig(engine="vllm", model=str(native))
    message = str(e.value)
    assert "transformers' native layout" in message and "deepseek-ai/DeepSeek-OCR-2" in message
    assert "engine: transformers" in message
    assert DeepSeekConfig(engine="transformers", model=str(native)).model == str(native)  # its own engine takes it
    deepseek_layout = _checkpoint(
        tmp_path / "ds", {"model_type": "deepseek_vl_v2", "architectures": ["DeepseekOCR2ForCausalLM"]}
    )
    assert DeepSeekConfig(engine="vllm", model=str(deepseek_layout)).model == str(deepseek_layout)
    # a directory that is not there yet (mounted on the GPU nodes only) is left to the replica's start
    assert DeepSeekConfig(engine="vllm", model=str(tmp_path / "later")).model


def test_context_too_small_for_one_page_is_refused_on_vllm(tmp_path):
    from backends.deepseek.config import min_model_len

    assert (min_model_len("ocr"), min_model_len("ocr2")) == (966, 1154)
    with pytest.raises(ValidationError, match="max_model_len >= 1154"):
        DeepSeekConfig(engine="vllm", variant="ocr2", max_model_len=1100)
    with pytest.raises(ValidationError, match="max_model_len >= 1154"):
        DeepSeekConfig(engine="vllm", max_model_len=1100)  # the default model is DeepSeek-OCR-2
    v2_dir = _checkpoint(tmp_path / "m", {"model_type": "deepseek_vl_v2", "architectures": ["DeepseekOCR2ForCausalLM"]})
    with pytest.raises(ValidationError, match="DeepSeek-OCR-2 on vLLM"):
        DeepSeekConfig(engine="vllm", model=str(v2_dir), max_model_len=1100)  # variant read from config.json
    assert DeepSeekConfig(engine="vllm", variant="ocr", max_model_len=1100).max_model_len == 1100
    assert DeepSeekConfig(engine="transformers", max_model_len=1100).max_model_len == 1100  # not a vLLM setting


def test_build_app_fails_at_once_on_what_vllm_cannot_serve(tmp_path):
    """``serve run`` builds the app first: the engine_config check fails it before any replica starts."""
    from orchestrator.builder import build_app

    native = _checkpoint(tmp_path / "native", {"model_type": "deepseek_ocr2"})
    for engine_config, words in (
        ({"engine": "vllm", "model": str(native)}, "transformers' native layout"),
        ({"engine": "vllm", "variant": "ocr2", "max_model_len": 1024}, "max_model_len >= 1154"),
    ):
        with pytest.raises(ValueError, match=words):
            build_app({"backends": {"deepseek-ocr": {"engine": "deepseek", "engine_config": engine_config}}})
