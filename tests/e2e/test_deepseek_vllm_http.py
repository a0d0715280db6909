"""DeepSeek-OCR on the real vLLM engine, in a Ray Serve replica, behind the router, over HTTP.

The checkpoints are DeepSeek's own layout at toy decoder size with vLLM's dummy weights
(:mod:`benchmarks.support.tiny_vllm`); everything else is the production path: vLLM's model classes, its image
processor and Gundam tiling, its scheduler, its logits-processor plumbing, its CPU kernels. The text is noise by
construction; what is checked is what vLLM received and did (image positions, token counts, the n-gram guard,
pages batched together, start-up failures classified), and the production cascade (serve_config.yaml's: RapidOCR
first, DeepSeek-OCR for the pages that need it) with both real engines, and the token metrics in Prometheus.

Cost on a 2-core machine (see docs/deepseek.md): the engine starts in ~1 min; a page costs ~10 s, almost all of it
the full-size vision towers. One application for the whole module, deleted at the end so the rest of the session
gets the memory back (DeepSeek-OCR-2 has its own module, test_deepseek_ocr2_vllm_http.py, so the two engines
are never up together).
"""

from __future__ import annotations

import base64
import threading
from importlib.metadata import version

import httpx
import pytest
from PIL import Image

from backends.deepseek.modes import V1_MODES, placeholder_tokens, vision_tokens
from backends.deepseek.ngram import banned_next_tokens
from benchmarks.support.tiny_vllm import EOS, build_tiny_vllm_model, tiny_engine_config
from orchestrator.ops import samples
from orchestrator.ops.local import REPO_CONFIG, load_config
from shared.schema import OCRResponse
from tests.conftest import METRICS_PORT
from tests.support.signals import scrape, until
from tests.support.vllm_serving import PAGE, TIMEOUT, VLLM_MARKS, actor_options, backend_listing, post_ocr

pytestmark = VLLM_MARKS

APP = "deepseek-vllm"

ENGINE_CORE_FAILS = {"VLLM_CPU_OMP_THREADS_BIND": "60-61", "VLLM_ENABLE_V1_MULTIPROCESSING": "1"}
"""OpenMP pinned to CPU cores a small machine does not have: vLLM's CPU worker (its multiprocessing executor, the
one that binds threads; CPU_ENV otherwise runs the model in the engine core) fails as the engine core starts,
before the model is loaded (cheap). Where cores 60-61 exist, or on a GPU build, the KV cache asked of the same
backend (4 TiB) fails the engine core instead, after loading the model."""


PRODUCTION_CASCADE = load_config(REPO_CONFIG).applications[0].args["router"]["cascades"]["cascade"]
"""serve_config.yaml's cascade: RapidOCR first, DeepSeek-OCR for the pages its default rules pick."""


@pytest.fixture(scope="module")
def vllm_url(deploy_app, tmp_path_factory):
    assert (PRODUCTION_CASCADE["first"], PRODUCTION_CASCADE["then"]) == ("rapidocr", "deepseek-ocr")
    ocr = build_tiny_vllm_model(tmp_path_factory.mktemp("tiny-vllm") / "ocr", variant="ocr")
    url = deploy_app(
        APP,
        {
            "backends": {
                "deepseek-ocr": {
                    "engine": "deepseek",
                    "engine_config": tiny_engine_config(ocr, "ocr"),
                    "deployment": {"max_ongoing_requests": 8, "ray_actor_options": actor_options(0.5)},
                },
                "engine-core-fails": {
                    "engine": "deepseek",
                    "engine_config": tiny_engine_config(ocr, "ocr", kv_cache_memory_gb=4096),
                    "deployment": {"ray_actor_options": actor_options(0.05, ENGINE_CORE_FAILS)},
                },
                "rapidocr": {"engine": "rapidocr", "deployment": {"ray_actor_options": {"num_cpus": 0.3}}},
            },
            "router": {"auto_order": ["deepseek-ocr"], "cascades": {"cascade": PRODUCTION_CASCADE}},
        },
    )
    yield url
    deploy_app.retire(APP)  # the engine holds a few GB: give them back to the rest of the session


TOKEN_METRICS = {
    "vision": "ray_ocrserve_vision_tokens_total",
    "output": "ray_ocrserve_output_tokens_total",
    "ratios": "ray_ocrserve_compression_ratio_count",
}
"""The metrics only an engine with tokens moves (tests/e2e/test_signals.py checks every other one)."""


GUARD_TOKENS = 64
"""Room for a loop to show: a random decoder settles into a cycle within a few tokens, and a repeated 30-gram
needs the cycle plus 30 tokens."""

MINE = {"application": APP, "backend": "deepseek-ocr"}


@pytest.fixture(scope="module")
def page_read(vllm_url) -> tuple[OCRResponse, dict[str, float]]:
    """One guarded read of PAGE (``GUARD_TOKENS`` at most), and the token metrics just before it.

    A page costs ~10 s of vision towers on this machine, so the tests that need "a default read of PAGE" share
    this one: the v1 read's usage, the guarded side of the n-gram test, the answer the OpenAI route must equal.
    """
    scraped = scrape(METRICS_PORT)
    before = {k: scraped.total(n, **MINE) for k, n in TOKEN_METRICS.items()}
    with httpx.Client(base_url=vllm_url, timeout=TIMEOUT) as client:
        result = post_ocr(client, "deepseek-ocr", samples.encode(PAGE), max_new_tokens=GUARD_TOKENS)
    return result, before


def test_ocr_v1_page_is_served_by_vllm_with_usage_from_what_vllm_received(vllm_url, page_read):
    result, before = page_read
    with httpx.Client(base_url=vllm_url, timeout=TIMEOUT) as client:
        listing = backend_listing(client)
    assert result.backend == "deepseek-ocr" and result.model.engine == "vllm"
    assert result.model.device == "cpu"  # vLLM's own platform
    assert result.model.version == "DeepSeek-OCR (random weights)"  # load_format: dummy, and it says so
    page, raw = result.pages[0], result.raw_result["pages"][0]
    assert (page.width, page.height) == PAGE.size and page.boxes_image
    # vLLM expanded <image> into 16 x (16 + 1) + 1 = 273 positions: our geometry agrees, so usage reports the
    # paper's 256 vision tokens (the newline and separator positions are not vision tokens)
    spec = V1_MODES["gundam"]
    assert raw["image_positions"] == placeholder_tokens(*PAGE.size, spec, variant="ocr") == 273
    assert page.usage.vision_tokens == vision_tokens(*PAGE.size, spec) == 256
    assert raw["prompt_tokens"] > raw["image_positions"]
    assert 0 < page.usage.output_tokens == raw["output_tokens"] <= GUARD_TOKENS
    assert not any(w.startswith("usage:") for w in page.warnings)
    info = listing["deepseek-ocr"]["info"]
    assert listing["deepseek-ocr"]["status"] == "ready" and info["random_weights"] is True
    assert listing["deepseek-ocr"]["model"]["version"] == "DeepSeek-OCR (random weights)"
    dist = info["vllm_distribution"]
    assert dist in ("vllm", "vllm-cpu") and info["vllm"] == version(dist).split("+")[0]
    assert info["vllm_version_tested"] is True
    assert info["model_runner"] == "v1" and info["v2_model_runner_in_use"] is False
    assert info["runner_env"] == {"VLLM_USE_V2_MODEL_RUNNER": "0"}
    assert info["logits_processors"] == ["vllm.model_executor.models.deepseek_ocr.NGramPerReqLogitsProcessor"]
    # Prometheus: the token metrics grow by at least what this answer reports
    grown = {"vision": result.usage.vision_tokens, "output": result.usage.output_tokens, "ratios": 1}
    assert result.usage.compression_ratio and grown["output"]
    until(
        lambda: all(scrape(METRICS_PORT).total(n, **MINE) >= before[k] + grown[k] for k, n in TOKEN_METRICS.items()),
        "token metrics grown by this answer's tokens",
    )


def repeats_an_ngram(tokens: list[str], n: int, window: int) -> bool:
    """Whether some token completes an n-gram already seen within ``window`` (what the guard forbids)."""
    return any(
        tokens[i] in banned_next_tokens(tokens[:i], ngram_size=n, window_size=window) for i in range(len(tokens))
    )


def test_ngram_guard_is_applied_by_vllm(vllm_url, page_read):
    """The deployment's guard (n=30, window 90, vLLM's NGramPerReqLogitsProcessor) changes real decoding.

    The random decoder loops (a two-token cycle) when nothing stops it - shown by the same request with the guard
    off - so the guarded answer can only be free of repeated 30-grams if vLLM applied the processor.
    """
    guarded, _ = page_read
    with httpx.Client(base_url=vllm_url, timeout=TIMEOUT) as client:
        free = post_ocr(client, "deepseek-ocr", samples.encode(PAGE), max_new_tokens=GUARD_TOKENS, ngram_guard=False)
    on, off = (r.raw_result["pages"][0] for r in (guarded, free))
    # the tiny tokenizer decodes one word per token; the end token, if any, is not counted in output_tokens
    on_tokens, off_tokens = ([w for w in page["text"].split() if w != EOS] for page in (on, off))
    assert len(on_tokens) == on["output_tokens"] and len(off_tokens) == off["output_tokens"]
    assert guarded.raw_result["ngram_guard"] is True and free.raw_result["ngram_guard"] is False
    assert repeats_an_ngram(off_tokens, 30, 90), "premise: without the guard the tiny model loops"
    assert not repeats_an_ngram(on_tokens, 30, 90), "the guard did not act: vLLM ignored the logits processor"
    assert on_tokens[:30] == off_tokens[:30] and on_tokens != off_tokens  # same decoding until the guard bites


def test_pdf_pages_and_a_concurrent_request_run_in_one_vllm_batch(vllm_url):
    """A 2-page PDF and a concurrent 1-page request: vLLM's own bookkeeping shows all three pages running at once."""
    pdf = samples.multi_page_pdf(samples.numbered_pages(2)[0])
    results: dict[str, OCRResponse] = {}

    def send(key: str, content: bytes, name: str) -> None:
        with httpx.Client(base_url=vllm_url, timeout=TIMEOUT) as client:
            results[key] = post_ocr(client, "deepseek-ocr", content, name, max_new_tokens=16)

    threads = [
        threading.Thread(target=send, args=("pdf", pdf, "two.pdf")),
        threading.Thread(target=send, args=("png", samples.encode(PAGE), "page.png")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert set(results) == {"pdf", "png"}
    assert [p.index for p in results["pdf"].pages] == [0, 1]
    timelines = [p["engine_timeline"] for r in results.values() for p in r.raw_result["pages"]]
    assert len(timelines) == 3
    # every page was scheduled before any of them produced its last token: they ran in one continuous batch
    assert max(t["scheduled_ts"] for t in timelines) < min(t["last_token_ts"] for t in timelines)
    with httpx.Client(base_url=vllm_url, timeout=TIMEOUT) as client:
        scheduler = backend_listing(client)["deepseek-ocr"]["info"]["scheduler"]
    assert scheduler["peak_running"] >= 3  # the scheduler's own count of running requests


def test_an_engine_core_that_fails_is_classified_and_its_replica_stays_up(vllm_url):
    """vLLM's engine core dies while starting (RuntimeError in the replica): ``backend_unavailable`` naming the
    cause's whereabouts, the replica up, 503 with Retry-After, and ``auto`` never picks it."""
    with httpx.Client(base_url=vllm_url, timeout=TIMEOUT) as client:
        listing = backend_listing(client)
        failed = listing["engine-core-fails"]
        assert failed["status"] == "unavailable", failed
        assert "engine core failed to start" in failed["detail"] and "replica log" in failed["detail"]
        r = client.post(
            "/v1/ocr", files={"file": ("p.png", samples.encode(PAGE))}, data={"backend": "engine-core-fails"}
        )
        assert r.status_code == 503 and "Retry-After" in r.headers
        assert r.json()["error"]["code"] == "backend_unavailable"


def test_the_production_cascade_keeps_what_rapidocr_reads_and_sends_the_rest_to_vllm(vllm_url):
    """A text page RapidOCR reads with confidence stays RapidOCR's; a page where it finds no text goes to
    DeepSeek-OCR on vLLM - both real engines, the rules as serve_config.yaml ships them."""
    page, _ = samples.one_column_page(width=440)  # at 150 DPI: 440 x 622 px, no Gundam tiles
    pdf = samples.multi_page_pdf([page, Image.new("RGB", page.size, "white")], dpi=150)
    with httpx.Client(base_url=vllm_url, timeout=TIMEOUT) as client:
        r = client.post(
            "/v1/ocr",
            files={"file": ("mixed.pdf", pdf)},
            data={"backend": "cascade", "dpi": "150", "include_raw": "true"},
        )
    assert r.status_code == 200, r.text[:500]
    result = OCRResponse.model_validate(r.json())
    assert result.backend == "cascade" and [p.backend for p in result.pages] == ["rapidocr", "deepseek-ocr"]
    kept, escalated = result.pages
    assert "Serving OCR" in kept.markdown and kept.usage.vision_tokens is None  # RapidOCR counts no tokens
    [escalation] = result.escalations
    assert (escalation.page, escalation.rules) == (1, ["no_text"])
    assert (escalation.from_backend, escalation.to_backend, escalation.answered_by) == (
        "rapidocr",
        "deepseek-ocr",
        "deepseek-ocr",
    )
    # the escalated page is vLLM's: its image positions as vLLM received them, its own token count
    assert (escalated.width, escalated.height) == page.size
    assert escalated.usage.vision_tokens == vision_tokens(*page.size, V1_MODES["gundam"]) == 256
    assert escalated.usage.output_tokens and result.usage.vision_tokens == 256
    assert result.usage.compute is not None and result.usage.compute.cpu_seconds > 0  # both replicas charged
    totals = {
        "escalated": ("ray_ocrserve_cascade_pages_total", {"policy": "cascade", "outcome": "escalated"}),
        "kept": ("ray_ocrserve_cascade_pages_total", {"policy": "cascade", "outcome": "kept"}),
        "no_text": ("ray_ocrserve_escalations_total", {"policy": "cascade", "rule": "no_text"}),
    }
    until(
        lambda: all(scrape(METRICS_PORT).total(n, application=APP, **labels) >= 1 for n, labels in totals.values()),
        "the cascade's pages counted in Prometheus",
    )


def test_openai_client_reads_a_page_through_vllm_plain_and_streamed_with_the_engines_tokens(vllm_url, page_read):
    """POST /v1/chat/completions with the official ``openai`` client: the DeepSeek backend takes the chat's text
    as its prompt (any text; RapidOCR beside it refuses a prompt it does not know), ``max_tokens`` caps vLLM's
    generation, and ``usage`` is the engine's own token counts."""
    openai = pytest.importorskip("openai", reason="the openai client is in the test extra")
    png = samples.encode(PAGE)
    same, _ = page_read  # POST /v1/ocr's answer for the same page, guard on, GUARD_TOKENS at most
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(png).decode()}}
    with openai.OpenAI(base_url=f"{vllm_url}/v1", api_key="unused", max_retries=0, timeout=600) as client:
        messages = [{"role": "user", "content": [image]}]
        answer = client.chat.completions.create(model="deepseek-ocr", messages=messages, max_tokens=GUARD_TOKENS)
        assert answer.choices[0].message.content == same.markdown
        assert answer.model_extra["ocrserve"]["usage_source"] == "engine"
        assert answer.usage.prompt_tokens == same.usage.vision_tokens == 256
        assert (
            answer.usage.completion_tokens == same.usage.output_tokens
            and 0 < answer.usage.completion_tokens <= GUARD_TOKENS
        )
        assert answer.choices[0].finish_reason in ("stop", "length")

        stream = client.chat.completions.create(
            model="deepseek-ocr",
            messages=messages,
            max_tokens=GUARD_TOKENS,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == same.markdown
        assert chunks[-1].usage.total_tokens == answer.usage.total_tokens

        custom = [{"role": "user", "content": [image, {"type": "text", "text": "<image>\nParse the figure."}]}]
        figure = client.chat.completions.create(model="deepseek-ocr", messages=custom, max_tokens=8)
        assert figure.model_extra["ocrserve"]["backends"] == ["deepseek-ocr"] and figure.usage.completion_tokens <= 8
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(model="rapidocr", messages=custom)
        assert refused.value.param == "messages" and "takes no prompt" in refused.value.message
