"""Text into pages (shared.textrender), the token estimate (shared.tokens) and what /v1/render answers with
(orchestrator.serving.render_answer): geometry per mode, wrapping, pagination, vision tokens and compression ratios."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from backends.deepseek.modes import V1_MODES, vision_tokens
from orchestrator.serving.render_answer import mode_costs, render_response
from shared.errors import OCRError
from shared.requests import RenderRequest
from shared.textrender import GEOMETRY, render_text, wrap_line
from shared.tokens import estimate_tokens

TEXT = "\n".join(f"line {i:03d}: the quick brown fox jumps over the lazy dog" for i in range(120))


@pytest.mark.parametrize("mode", list(GEOMETRY))
def test_pages_have_the_mode_geometry_and_keep_every_line(mode):
    r = render_text(TEXT, mode=mode)
    geo = GEOMETRY[mode]
    assert all(p.image.size == (geo.width, geo.height) for p in r.pages)
    assert "\n".join(p.text for p in r.pages).splitlines() == TEXT.splitlines()
    assert r.font_name == "DejaVu Sans Mono" and r.font_size == geo.font_size and r.margin == geo.margin
    assert sum(p.lines for p in r.pages) == 120


def test_gundam_pages_tile_two_by_three_and_small_pages_cost_100_tokens():
    r = render_text("x", mode="gundam")
    assert vision_tokens(*r.pages[0].image.size, V1_MODES["gundam"]) == 6 * 100 + 256
    s = render_text("x", mode="small")
    assert vision_tokens(*s.pages[0].image.size, V1_MODES["small"]) == 100


def test_long_lines_wrap_at_spaces_and_overlong_words_are_cut():
    r = render_text("word " * 200 + "\n" + "y" * 500, mode="tiny")
    lines = "\n".join(p.text for p in r.pages).splitlines()
    assert len(lines) > 2 and any("wrapped" in w for w in r.warnings)
    assert "".join(x for x in lines if set(x) == {"y"}) == "y" * 500


def test_wrap_line_measures_pixels_not_characters():
    from shared.textrender import load_font

    font, _ = load_font("proportional", 20)
    pieces = wrap_line("iiii WWWW " * 20, font, 200)
    assert all(font.getlength(p) <= 200 for p in pieces) and len(pieces) > 1


def test_bad_input_is_refused():
    for kwargs in ({"mode": "huge"}, {"margin": 300}, {"max_pages": 1}):
        with pytest.raises(OCRError) as e:
            render_text(TEXT, **kwargs)
        assert e.value.status == 400
    with pytest.raises(OCRError):
        render_text(" \n\t ")
    r = render_text("a\x00b\x07c")
    assert r.pages[0].text == "abc" and "control characters were dropped" in r.warnings


def test_proportional_font_and_dpi():
    r = render_text("Hello world", mode="base", font="proportional", font_size=30, margin=10, dpi=300)
    assert r.font_name.startswith("Aileron") and r.font_size == 30 and r.margin == 10
    assert r.pages[0].image.info["dpi"] == (300, 300)


def test_token_estimate_follows_its_documented_rule():
    assert estimate_tokens("") == 0
    assert estimate_tokens("the") == 1 and estimate_tokens("replicas") == 2  # ceil(letters / 4)
    assert estimate_tokens("123456") == 2 and estimate_tokens("1234567") == 3  # numbers in threes
    assert estimate_tokens("a, b.") == 4  # one per symbol
    prose = "Ray Serve runs each model in its own replica and scales them apart from one another."
    assert 0.15 < estimate_tokens(prose) / len(prose) < 0.35  # near four characters per token


def test_render_response_figures():
    req = RenderRequest(text=TEXT, mode="small")
    r = render_text(TEXT, mode="small")
    answer = render_response(
        req, r, request_id="x", text_tokens=1000, page_tokens=[1] * len(r.pages), tokenizer="t", warnings=["w"]
    )
    costs = {(c.model, c.mode): c for c in answer.modes}
    small = costs[("DeepSeek-OCR", "small")]
    assert small.per_page == [100] * len(r.pages) and small.vision_tokens == 100 * len(r.pages)
    assert small.compression_ratio == round(1000 / small.vision_tokens, 3)
    assert set(costs) >= {("DeepSeek-OCR-2", "gundam"), ("DeepSeek-OCR-2", "base"), ("DeepSeek-OCR", "tiny")}
    png = Image.open(io.BytesIO(base64.b64decode(answer.pages[0].png or "")))
    assert png.size == (640, 640) and round(png.info["dpi"][0]) == 144
    assert answer.warnings[-1] == "w" and answer.tokenizer == "t"
    assert mode_costs(r, 0)[0].compression_ratio is None
