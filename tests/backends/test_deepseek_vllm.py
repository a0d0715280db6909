"""What the vLLM runner sends to vLLM, tested without vLLM; and a real-vLLM test that runs only on a GPU box.

The real vLLM on CPU (tiny checkpoints, inside Ray Serve) is exercised by tests/e2e/test_deepseek_vllm_http.py;
version-dependent choices by tests/backends/test_deepseek_vllm_compat.py.
"""

from __future__ import annotations

import asyncio
import os
import threading
from types import SimpleNamespace

import pytest
from PIL import Image

from backends.deepseek import DeepSeekConfig, DeepSeekEngine
from backends.deepseek.modes import V1_MODES, V2_MODES
from backends.deepseek.runner import RunPlan
from backends.deepseek.source import ModelSource
from backends.deepseek.vllm_inputs import (
    PROMPT_TEXT_TOKENS,
    build_requests,
    collect,
    engine_kwargs,
    generation_from_output,
    logits_processor_args,
    sampling_kwargs,
    token_budget,
)
from backends.deepseek.vllm_runner import VLLMRunner
from shared.errors import OCRError
from shared.requests import RunRequest
from tests.support.skip_policy import NEEDS_CUDA

EOS = "<｜end▁of▁sentence｜>"
PROMPT = "<image>\n<|grounding|>Convert the document to markdown."


class NGramStub:
    """Stands in for vLLM's NGramPerReqLogitsProcessor class."""


def test_engine_kwargs_follow_the_recipe():
    cfg = DeepSeekConfig(max_num_seqs=32, gpu_memory_utilization=0.8)
    kw = engine_kwargs(cfg, "/models/DeepSeek-OCR-2", logits_processors=[NGramStub])
    assert kw["model"] == "/models/DeepSeek-OCR-2"
    assert kw["enable_prefix_caching"] is False
    assert kw["mm_processor_cache_gb"] == 0
    assert kw["logits_processors"] == [NGramStub]
    assert (kw["max_num_seqs"], kw["gpu_memory_utilization"], kw["max_model_len"]) == (32, 0.8, 8192)
    assert "load_format" not in kw
    dummy = engine_kwargs(
        DeepSeekConfig(load_format="dummy", allow_random_weights=True, download_dir="/cache"), "org/m"
    )
    assert dummy["load_format"] == "dummy" and dummy["download_dir"] == "/cache" and "logits_processors" not in dummy


def test_sampling_kwargs_and_logits_processor_args():
    kw = sampling_kwargs(DeepSeekConfig(), 8000)
    assert kw == {
        "temperature": 0.0,
        "max_tokens": 8000,
        "skip_special_tokens": False,
        "extra_args": {"ngram_size": 30, "window_size": 90, "whitelist_token_ids": {128821, 128822}},
    }
    assert logits_processor_args(DeepSeekConfig(ngram_guard=False)) is None
    assert "extra_args" not in sampling_kwargs(DeepSeekConfig(ngram_guard=False), 10)


def test_token_budget_keeps_prompt_and_output_inside_the_context():
    spec = V1_MODES["gundam"]
    budget, warning = token_budget(1224, 1584, spec, variant="ocr", max_new_tokens=8192, max_model_len=8192)
    prompt = 16 * 17 + 30 * 21 + 1 + PROMPT_TEXT_TOKENS
    assert budget == 8192 - prompt and "lowered from 8192" in warning
    assert token_budget(1224, 1584, spec, variant="ocr", max_new_tokens=1000, max_model_len=8192) == (1000, None)
    budget, warning = token_budget(
        1224, 1584, V2_MODES["gundam"], variant="ocr2", max_new_tokens=8192, max_model_len=8192
    )
    assert budget == 8192 - (1121 + PROMPT_TEXT_TOKENS) and warning


def test_build_requests_one_per_page_with_unique_ids():
    cfg = DeepSeekConfig()
    images = [Image.new("RGB", (600, 600)), Image.new("RGB", (1224, 1584)), Image.new("RGB", (600, 600))]
    reqs = build_requests(
        images, prompt=PROMPT, spec=V2_MODES["gundam"], variant="ocr2", config=cfg, max_new_tokens=2000
    )
    assert [r.position for r in reqs] == [0, 1, 2]
    assert len({r.request_id for r in reqs}) == 3
    for r, image in zip(reqs, images, strict=True):
        assert r.inputs == {"prompt": PROMPT, "multi_modal_data": {"image": image}}
        assert r.inputs["multi_modal_data"]["image"] is image
        assert r.sampling["max_tokens"] == 2000 and r.sampling["skip_special_tokens"] is False
    again = build_requests(
        images[:1], prompt=PROMPT, spec=V2_MODES["gundam"], variant="ocr2", config=cfg, max_new_tokens=5
    )
    assert again[0].request_id not in {r.request_id for r in reqs}  # unique across calls on one replica


def fake_output(text: str, n_tokens: int, finish: str) -> SimpleNamespace:
    return SimpleNamespace(
        finished=True, outputs=[SimpleNamespace(text=text, token_ids=list(range(n_tokens)), finish_reason=finish)]
    )


def test_collect_restores_page_order_and_counts_tokens():
    cfg = DeepSeekConfig()
    images = [Image.new("RGB", (2000, 3000)), Image.new("RGB", (500, 500))]
    reqs = build_requests(
        images, prompt=PROMPT, spec=V2_MODES["gundam"], variant="ocr2", config=cfg, max_new_tokens=8192
    )
    outputs = {
        reqs[1].request_id: fake_output("b" + EOS, 11, "stop"),
        reqs[0].request_id: fake_output("a", 50, "length"),
    }
    gens = collect(reqs, outputs)
    assert [g.text for g in gens] == ["a", "b" + EOS]
    assert [g.output_tokens for g in gens] == [50, 10]  # the end token is not content
    assert [g.finish_reason for g in gens] == ["length", "stop"]
    assert any("lowered" in w for w in gens[0].warnings)  # the budget note travels with its page
    with pytest.raises(RuntimeError, match=reqs[0].request_id):
        collect(reqs, {reqs[1].request_id: outputs[reqs[1].request_id]})
    assert generation_from_output(fake_output("x", 0, "stop")).output_tokens == 0


def test_guard_can_be_switched_off_per_request_and_not_on():
    assert "extra_args" not in sampling_kwargs(DeepSeekConfig(), 10, ngram_guard=False)
    reqs = build_requests(
        [Image.new("RGB", (64, 64))],
        prompt=PROMPT,
        spec=V2_MODES["gundam"],
        variant="ocr2",
        config=DeepSeekConfig(),
        max_new_tokens=5,
        ngram_guard=False,
    )
    assert "extra_args" not in reqs[0].sampling
    engine = DeepSeekEngine({"warmup": False})
    plan, _ = engine.plan(engine.parse_options({"ngram_guard": False}))
    assert plan.ngram_guard is False and engine.plan(engine.parse_options({}))[0].ngram_guard is True
    off = DeepSeekEngine({"ngram_guard": False, "warmup": False})
    assert off.plan(off.parse_options({}))[0].ngram_guard is False
    with pytest.raises(OCRError) as e:
        off.plan(off.parse_options({"ngram_guard": True}))
    assert e.value.code == "invalid_option" and e.value.accepted == {"ngram_guard": [False]}


def test_vision_tokens_come_from_what_vllm_received():
    image_id = 5
    reqs = build_requests(
        [Image.new("RGB", (440, 622)), Image.new("RGB", (440, 622))],
        prompt=PROMPT,
        spec=V1_MODES["gundam"],
        variant="ocr",
        config=DeepSeekConfig(),
        max_new_tokens=10,
    )
    assert (reqs[0].expected_positions, reqs[0].vision_tokens) == (273, 256)
    agree = fake_output("a", 3, "length")
    agree.prompt_token_ids = [1] + [image_id] * 273 + [9] * 7
    agree.metrics = SimpleNamespace(queued_ts=1.0, scheduled_ts=1.5, first_token_ts=2.0, last_token_ts=3.0)
    drift = fake_output("b", 3, "length")
    drift.prompt_token_ids = [1] + [image_id] * 300
    gens = collect(reqs, {reqs[0].request_id: agree, reqs[1].request_id: drift}, image_token_id=image_id)
    assert (gens[0].image_positions, gens[0].vision_tokens, gens[0].prompt_tokens) == (273, 256, 281)
    assert gens[0].timeline == {"queued_ts": 1.0, "scheduled_ts": 1.5, "first_token_ts": 2.0, "last_token_ts": 3.0}
    assert not any(w.startswith("usage:") for w in gens[0].warnings)
    # a vLLM whose tiling drifted from our geometry: its count is reported, and the page says so
    assert gens[1].vision_tokens == 300 and any(w.startswith("usage:") and "273" in w for w in gens[1].warnings)
    assert collect(reqs[:1], {reqs[0].request_id: fake_output("c", 1, "stop")})[0].vision_tokens is None


class FakeAsyncEngine:
    """Mimics AsyncLLMEngine.generate/abort and counts how many requests are in flight at once.

    With ``batch`` set, no request produces a token until that many are in flight together (a barrier, as a
    continuous batch forms): a runner that sent them one after another would never get past it, so the count
    proves concurrency without timing anything (the barrier's wait is a hang guard).
    """

    def __init__(self, fail_on: str | None = None, batch: int = 1) -> None:
        self.in_flight = 0
        self.max_in_flight = 0
        self.seen: list[tuple[str, dict]] = []
        self.aborted: list[str] = []
        self.fail_on = fail_on
        self.batch = batch
        self._full: asyncio.Event | None = None

    async def generate(self, inputs, params, request_id):
        self.seen.append((request_id, params))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        if self._full is None:
            self._full = asyncio.Event()
        if self.in_flight >= self.batch:
            self._full.set()
        try:
            await asyncio.wait_for(self._full.wait(), timeout=120)
            await asyncio.sleep(0)
            if self.fail_on and request_id.endswith(self.fail_on):
                raise ValueError("engine error")
            yield SimpleNamespace(
                finished=False, outputs=[SimpleNamespace(text="par", token_ids=[1], finish_reason=None)]
            )
            await asyncio.sleep(0.01)
            yield fake_output(f"page {inputs['multi_modal_data']['image'].width}" + EOS, 3, "stop")
        finally:
            self.in_flight -= 1

    async def abort(self, request_id):
        self.aborted.append(request_id)


def runner_with(engine: FakeAsyncEngine) -> VLLMRunner:
    runner = VLLMRunner(DeepSeekConfig(), ModelSource("m", None, True, None), "ocr2")
    runner._start_loop()
    runner._engine = engine
    runner._sampling_cls = dict  # SamplingParams(**kwargs) stand-in: keeps the kwargs for inspection
    return runner


def test_runner_keeps_all_pages_and_concurrent_requests_in_flight_together():
    engine = FakeAsyncEngine(batch=5)  # answers only once 5 pages are in flight at the same time
    runner = runner_with(engine)
    plan = RunPlan(prompt=PROMPT, spec=V2_MODES["gundam"], max_new_tokens=100)
    results: dict[str, list] = {}

    def request(name: str, widths: list[int]) -> None:
        results[name] = runner.generate([Image.new("RGB", (w, 100)) for w in widths], plan)

    try:
        threads = [
            threading.Thread(target=request, args=("a", [101, 102, 103])),
            threading.Thread(target=request, args=("b", [201, 202])),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=180)  # a hang guard: the barrier above fails the requests after 120 s
    finally:
        runner.close()
    assert engine.max_in_flight == 5  # 3 pages of one document + 2 of a concurrent one, batched together
    assert [g.text for g in results["a"]] == [f"page {w}{EOS}" for w in (101, 102, 103)]
    assert [g.text for g in results["b"]] == [f"page {w}{EOS}" for w in (201, 202)]
    params = engine.seen[0][1]
    assert params["temperature"] == 0.0 and params["extra_args"]["whitelist_token_ids"] == {128821, 128822}


def test_runner_aborts_the_rest_when_a_page_fails():
    engine = FakeAsyncEngine(fail_on="-1", batch=3)  # the page fails once all three are running
    runner = runner_with(engine)
    plan = RunPlan(prompt=PROMPT, spec=V2_MODES["gundam"], max_new_tokens=100)
    try:
        with pytest.raises(ValueError, match="engine error"):
            runner.generate([Image.new("RGB", (100, 100))] * 3, plan)
    finally:
        runner.close()
    assert len(engine.aborted) == 2  # the pages still running were aborted, not left to burn the GPU


@pytest.mark.gpu
@pytest.mark.vllm
def test_real_vllm_on_a_dev_pdf():
    """Needs a CUDA GPU, and there vllm and DEEPSEEK_OCR_MODEL (a local DeepSeek-OCR or OCR-2 directory or hub id).

    The only test allowed to skip under CI=true, and only for want of a GPU (tests/support/skip_policy.py): a GPU
    runner without the weights fails it.
    """
    import torch  # installed by scripts/test.sh with vLLM's CPU build

    if not torch.cuda.is_available():
        pytest.skip(NEEDS_CUDA)
    import vllm  # noqa: F401  (a GPU box runs the vllm extra)

    model = os.environ.get("DEEPSEEK_OCR_MODEL")
    if not model:
        pytest.skip("set DEEPSEEK_OCR_MODEL to a DeepSeek-OCR(-2) directory or hub id")

    from backends.deepseek import DeepSeekEngine
    from backends.pipeline import run_document
    from shared.documents import open_document

    engine = DeepSeekEngine({"engine": "vllm", "model": model, "max_model_len": 8192, "gpu_memory_utilization": 0.85})
    engine.start()
    try:
        from orchestrator.ops import samples

        pdf = samples.multi_page_pdf(samples.numbered_pages(3)[0])
        resp = run_document(
            engine, open_document(pdf, name="three_pages.pdf"), RunRequest(request_id="gpu"), backend="deepseek-ocr"
        )
        assert len(resp.pages) == resp.document.page_count
        assert all(p.usage.output_tokens and p.usage.vision_tokens for p in resp.pages)
        assert any(p.blocks for p in resp.pages) and resp.markdown
        assert "<|ref|>" not in resp.markdown
    finally:
        engine.close()
