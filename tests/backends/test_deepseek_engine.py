"""DeepSeekEngine's own logic with a fake runner: plans, page results, usage, warnings, health, weights checks."""

from __future__ import annotations

import io
import json
import sys

import pytest
from PIL import Image

from backends.deepseek import DeepSeekEngine
from backends.deepseek.modes import ModeSpec, vision_tokens
from backends.deepseek.runner import Generation, RunPlan
from backends.deepseek.source import resolve_source
from backends.pipeline import run_document
from orchestrator.ops import samples
from shared.documents import PageImage, open_document
from shared.errors import OCRError
from shared.requests import OutputOptions, RunRequest
from shared.schema import OCRResponse

EOS = "<｜end▁of▁sentence｜>"


class FakeRunner:
    """Records what it is asked and answers a fixed grounded page."""

    name = "vllm"

    def __init__(self, text: str | None = None, finish_reason: str = "stop") -> None:
        self.calls: list[tuple[int, RunPlan]] = []
        self.text = text or (
            "<|ref|>title<|/ref|><|det|>[[0, 0, 999, 100]]<|/det|>\n# Heading\n"
            "<|ref|>text<|/ref|><|det|>[[0, 120, 499, 300]]<|/det|>\nBody text here.\n" + EOS
        )
        self.finish_reason = finish_reason

    def load(self) -> None:
        pass

    def adapt(self, spec: ModeSpec) -> ModeSpec:
        return spec

    def generate(self, images, plan):
        self.calls.append((len(images), plan))
        return [Generation(text=self.text, output_tokens=40, finish_reason=self.finish_reason) for _ in images]

    def info(self):
        return {"fake": True}

    def device(self):
        return "cuda:0"

    def close(self):
        pass


def engine_with(runner: FakeRunner, **config) -> DeepSeekEngine:
    engine = DeepSeekEngine({"engine": "vllm", "warmup": False, **config}, runner=runner)
    engine.start()
    return engine


def png(size=(600, 800)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, "white").save(buf, format="PNG")
    return buf.getvalue()


def test_run_document_with_fake_runner_gives_schema_response():
    runner = FakeRunner()
    engine = engine_with(runner)
    doc = open_document(png((1224, 1584)), name="page.png")
    resp = run_document(
        engine,
        doc,
        RunRequest(request_id="r1", output=OutputOptions(include_raw=True), options={"mode": "gundam"}),
        backend="deepseek-ocr",
    )
    OCRResponse.model_validate(resp.model_dump())
    (page,) = resp.pages
    assert page.markdown == "# Heading\n\nBody text here."
    assert [b.type for b in page.blocks] == ["title", "text"]
    assert page.blocks[1].bbox == pytest.approx([0, 120 / 999 * 1584, 499 / 999 * 1224, 300 / 999 * 1584], abs=0.01)
    assert page.usage.vision_tokens == 6 * 144 + 256  # OCR-2 on vLLM: 2 x 3 tiles of 768 for a letter page
    assert page.usage.output_tokens == 40
    assert page.usage.compression_ratio == round(40 / 1120, 4)
    assert resp.usage.vision_tokens == 1120 and resp.usage.output_tokens == 40
    assert page.boxes_image  # drawn by the runner from our blocks
    assert resp.raw_result["pages"][0]["finish_reason"] == "stop"
    assert EOS in resp.source_markdown  # the engine's own text, before clean-up
    assert resp.model.engine == "vllm" and resp.model.version == "DeepSeek-OCR-2"


def test_pdf_pages_reach_the_runner_as_one_batch():
    runner = FakeRunner()
    engine = engine_with(runner)
    pdf = samples.multi_page_pdf(samples.numbered_pages(3)[0])  # generated: runs without ../shared
    doc = open_document(pdf, name="three_pages.pdf", dpi=72)
    resp = run_document(engine, doc, RunRequest(request_id="r2"), backend="deepseek-ocr")
    assert doc.page_count > 1
    assert [n for n, _ in runner.calls] == [doc.page_count]  # one call with every page
    assert [p.index for p in resp.pages] == list(range(doc.page_count))


def test_unhonoured_mode_is_reported_not_ignored():
    engine = engine_with(FakeRunner())
    doc = open_document(png(), name="p.png")
    resp = run_document(engine, doc, RunRequest(request_id="r3", options={"mode": "tiny"}), backend="deepseek-ocr")
    assert any("'tiny'" in w and "gundam" in w for w in resp.warnings)
    resp = run_document(engine, doc, RunRequest(request_id="r4", options={"mode": "gundam"}), backend="deepseek-ocr")
    assert resp.warnings == []


def test_plan_carries_prompt_mode_and_budget():
    runner = FakeRunner()
    engine = engine_with(runner, variant="ocr", max_new_tokens=512)
    doc = open_document(png(), name="p.png")
    run_document(
        engine, doc, RunRequest(request_id="r", options={"prompt": "locate", "locate_text": "Total"}), backend="d"
    )
    plan = runner.calls[0][1]
    assert plan.prompt == "<image>\nLocate <|ref|>Total<|/ref|> in the image."
    assert (plan.spec.name, plan.spec.tile_size, plan.max_new_tokens) == ("gundam", 640, 512)


def test_truncated_page_is_flagged_in_page_warnings():
    runner = FakeRunner(text="<|ref|>text<|/ref|><|det|>[[0, 0, 10, 10]]<|/det|>\nabc", finish_reason="length")
    engine = engine_with(runner)
    resp = run_document(engine, open_document(png(), name="p.png"), RunRequest(request_id="r"), backend="d")
    assert any(w.startswith("truncated:") for w in resp.pages[0].warnings)


def test_page_usage_falls_back_to_the_mode_formula():
    from backends.deepseek.engine import page_result
    from backends.deepseek.modes import V1_MODES

    page = PageImage(index=2, image=Image.new("RGB", (2000, 1000)), dpi=144.0)
    plan = RunPlan(prompt="<image>\nFree OCR.", spec=V1_MODES["gundam"], max_new_tokens=10)
    result = page_result(page, Generation(text="hello" + EOS, output_tokens=912, finish_reason="stop"), plan)
    assert result.usage.vision_tokens == vision_tokens(2000, 1000, V1_MODES["gundam"]) == 456
    assert result.usage.compression_ratio == 2.0
    assert (result.index, result.dpi, result.markdown, result.blocks) == (2, 144.0, "hello", [])


def test_health_before_and_after_start():
    """What the engine itself decides about its health (the runner's own facts - device, library versions,
    attention - are checked with the real runners: test_deepseek_hf.py, tests/e2e/test_deepseek_vllm_http.py)."""
    engine = DeepSeekEngine({"engine": "vllm", "warmup": False}, runner=None)
    health = engine.health()
    assert not health.ready and health.detail == "not started" and health.model.device is None
    health = engine_with(FakeRunner(), variant="ocr", max_new_tokens=300).health()
    assert health.ready and health.detail is None
    assert (health.model.version, health.model.engine, health.model.id) == (
        "DeepSeek-OCR",
        "vllm",
        "deepseek-ai/DeepSeek-OCR",
    )
    assert health.info["variant"] == "ocr" and health.info["modes_honoured"] == ["gundam"]  # vLLM runs Gundam only
    assert health.info["max_new_tokens"] == 300 and engine.capabilities().extracts is True
    ocr2 = engine_with(FakeRunner()).health()
    assert ocr2.model.version == "DeepSeek-OCR-2" and ocr2.model.id == "deepseek-ai/DeepSeek-OCR-2"


def test_missing_weights_make_start_fail_and_health_explain(tmp_path):
    empty = tmp_path / "DeepSeek-OCR-2"
    empty.mkdir()
    engine = DeepSeekEngine({"engine": "transformers", "model": str(empty)})
    with pytest.raises(OCRError) as e:
        engine.start()
    assert e.value.code == "models_missing" and e.value.status == 503
    assert "hf download deepseek-community/DeepSeek-OCR-2 --local-dir" in e.value.message
    health = engine.health()
    assert not health.ready and "hf download" in health.detail
    with pytest.raises(OCRError) as run_error:  # requests get the same answer, not a crash
        engine.run(open_document(png(), name="p.png"), [], engine.parse_options({}))
    assert run_error.value.code == "models_missing"


def test_v1_checkpoint_found_on_disk_is_refused_on_transformers(tmp_path):
    model = tmp_path / "weights"
    model.mkdir()
    (model / "config.json").write_text(
        json.dumps({"architectures": ["DeepseekOCRForCausalLM"], "model_type": "deepseek_vl_v2"})
    )
    (model / "model.safetensors").write_bytes(b"")
    engine = DeepSeekEngine({"engine": "transformers", "model": str(model)})
    with pytest.raises(OCRError) as e:
        engine.start()
    assert e.value.code == "backend_unavailable" and "engine: vllm" in e.value.message
    assert engine.variant == "ocr"


def test_vllm_engine_without_vllm_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # as on a machine without vllm, installed here or not
    model = tmp_path / "DeepSeek-OCR"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"architectures": ["DeepseekOCRForCausalLM"]}))
    (model / "model.safetensors").write_bytes(b"")
    engine = DeepSeekEngine({"engine": "vllm", "model": str(model)})
    with pytest.raises(OCRError) as e:
        engine.start()
    assert e.value.code == "backend_unavailable" and "pip install 'ocrserve[vllm]'" in e.value.message
    assert engine.variant == "ocr"  # read from config.json
    assert not engine.health().ready


# --- weights resolution ---------------------------------------------------------------------------------------


def test_resolve_source_local_dir(tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    with pytest.raises(OCRError, match="no config.json"):
        resolve_source(str(model), offline=True, default_hub_id="org/x")
    (model / "config.json").write_text('{"model_type": "deepseek_ocr2"}')
    with pytest.raises(OCRError, match="no weights"):
        resolve_source(str(model), offline=True, default_hub_id="org/x")
    dummy = resolve_source(str(model), offline=True, default_hub_id="org/x", need_weights=False)
    assert dummy.local_files_only and dummy.hf_config == {"model_type": "deepseek_ocr2"}
    (model / "model.safetensors").write_bytes(b"")
    src = resolve_source(str(model), offline=False, default_hub_id="org/x")
    assert src.ref == str(model) and src.local_files_only and src.hub_id is None
    with pytest.raises(OCRError, match="does not exist"):
        resolve_source(str(tmp_path / "nope"), offline=False, default_hub_id="org/x")


def test_resolve_source_hub_id_online_and_offline(tmp_path):
    online = resolve_source("deepseek-ai/DeepSeek-OCR", offline=False, default_hub_id="x/y")
    assert (online.ref, online.local_files_only) == ("deepseek-ai/DeepSeek-OCR", False)
    cache = tmp_path / "hub"
    with pytest.raises(OCRError) as e:
        resolve_source("deepseek-ai/DeepSeek-OCR", offline=True, default_hub_id="x/y", download_dir=str(cache))
    assert e.value.code == "models_missing" and "hf download deepseek-ai/DeepSeek-OCR" in e.value.message
    # a filled HF cache (the layout huggingface_hub writes) is found offline and loaded from its snapshot
    snap = cache / "models--deepseek-ai--DeepSeek-OCR" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (cache / "models--deepseek-ai--DeepSeek-OCR" / "refs").mkdir()
    (cache / "models--deepseek-ai--DeepSeek-OCR" / "refs" / "main").write_text("abc123")
    (snap / "config.json").write_text('{"architectures": ["DeepseekOCRForCausalLM"]}')
    with pytest.raises(OCRError, match="no weights"):
        resolve_source("deepseek-ai/DeepSeek-OCR", offline=True, default_hub_id="x/y", download_dir=str(cache))
    (snap / "model-00001-of-000001.safetensors").write_bytes(b"")
    src = resolve_source("deepseek-ai/DeepSeek-OCR", offline=True, default_hub_id="x/y", download_dir=str(cache))
    assert (
        src.ref == str(snap) and src.local_files_only and src.hf_config["architectures"] == ["DeepseekOCRForCausalLM"]
    )


def test_dead_engine_reports_unready():
    class DeadRunner(FakeRunner):
        def info(self):
            return {"engine_dead": True}

    health = engine_with(DeadRunner()).health()
    assert not health.ready and "stopped working" in health.detail


def test_no_missing_weights_answer_offers_random_weights_as_the_fix(tmp_path):
    """Every ``models_missing`` path says what to download; none suggests ``load_format: dummy`` (random weights
    would turn the 503 into a ready backend answering noise)."""
    from backends.deepseek.source import ModelSource, check_tokenizer
    from backends.deepseek.vllm_errors import classify_load_error

    answers: list[OCRError] = []

    def refused(call, *args, **kwargs) -> None:
        with pytest.raises(OCRError) as e:
            call(*args, **kwargs)
        answers.append(e.value)

    model = tmp_path / "m"
    refused(resolve_source, str(model), offline=True, default_hub_id="org/x")  # no directory
    model.mkdir()
    refused(resolve_source, str(model), offline=True, default_hub_id="org/x")  # no config.json
    (model / "config.json").write_text("{}")
    refused(resolve_source, str(model), offline=True, default_hub_id="org/x")  # no weights
    refused(resolve_source, "org/not-cached", offline=True, default_hub_id="org/x", download_dir=str(tmp_path / "c"))
    refused(check_tokenizer, ModelSource(str(model), None, True, {}), "org/x")  # no tokenizer files
    answers.append(classify_load_error(OSError("model.safetensors not found"), ref=str(model), hint="hf download x"))
    assert {a.code for a in answers} == {"models_missing"} and len(answers) == 6
    for answer in answers:
        assert "download" in answer.message and "dummy" not in answer.message and "random" not in answer.message


def test_random_weights_are_reported_in_health_and_in_every_answer():
    engine = engine_with(FakeRunner(), load_format="dummy", allow_random_weights=True)
    health = engine.health()
    assert health.ready and health.info["random_weights"] is True
    assert health.model.version == "DeepSeek-OCR-2 (random weights)"
    resp = run_document(engine, open_document(png(), name="p.png"), RunRequest(request_id="r"), backend="d")
    assert resp.model.version == "DeepSeek-OCR-2 (random weights)"
    real = engine_with(FakeRunner())
    assert real.health().info["random_weights"] is False and real.model_info().version == "DeepSeek-OCR-2"
