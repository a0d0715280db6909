"""The transformers engine end to end on a tiny random DeepSeek-OCR-2, loaded like real weights.

On a CPU here and in CI; on a machine with a CUDA GPU the engine (``device: auto``) takes the GPU, in bfloat16, and
the assertions below expect exactly that (device, attention) rather than the CPU's answers.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from PIL import Image

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import backends.deepseek.hf_runner as hf_engine  # noqa: E402
from backends.deepseek import DeepSeekEngine  # noqa: E402
from backends.deepseek.config import DeepSeekConfig  # noqa: E402
from backends.deepseek.hf_generate import flash_attention_status  # noqa: E402
from backends.deepseek.hf_runner import HFRunner, _ngram_guard, choose_attention, images_kwargs  # noqa: E402
from backends.deepseek.modes import V2_MODES, vision_tokens  # noqa: E402
from backends.deepseek.runner import RunPlan  # noqa: E402
from backends.deepseek.source import resolve_source  # noqa: E402
from backends.pipeline import run_document  # noqa: E402
from benchmarks.support.tiny_deepseek import build_tiny_model  # noqa: E402
from orchestrator.ops import samples  # noqa: E402
from shared.documents import open_document  # noqa: E402
from shared.errors import OCRError  # noqa: E402
from shared.requests import OutputOptions, RunRequest  # noqa: E402
from shared.schema import OCRResponse  # noqa: E402

CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"
"""Where ``device: auto`` puts the model on this machine."""


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-deepseek-ocr2"))


@pytest.fixture(scope="module")
def engine(tiny_dir):
    # the same configuration a deployment would use for real weights in a local directory, offline
    eng = DeepSeekEngine({"engine": "transformers", "model": str(tiny_dir), "offline": True, "max_new_tokens": 12})
    eng.start()
    yield eng
    eng.close()


def png(size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, "white").save(buf, format="PNG")
    return buf.getvalue()


def test_tiny_model_is_deterministic_offline_and_reused(tmp_path, tiny_dir):
    files = {p.name for p in tiny_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "processor_config.json"} <= files
    other = build_tiny_model(tmp_path / "again")
    digest = lambda d: hashlib.sha256((d / "model.safetensors").read_bytes()).hexdigest()  # noqa: E731
    assert digest(other) == digest(tiny_dir)  # seeded: same weights every time
    stamp = (other / "model.safetensors").stat().st_mtime_ns
    build_tiny_model(other)
    assert (other / "model.safetensors").stat().st_mtime_ns == stamp  # reused, not rebuilt


def test_run_document_on_a_real_page(engine):
    image, _ = samples.one_column_page()  # generated: runs without ../shared
    data = samples.encode(image)
    doc = open_document(data, name="page.png")
    resp = run_document(
        engine, doc, RunRequest(request_id="hf-1", output=OutputOptions(include_raw=True)), backend="deepseek-ocr"
    )
    OCRResponse.model_validate(resp.model_dump(mode="json"))
    (page,) = resp.pages
    assert (page.width, page.height) == image.size
    # vision tokens counted from the processor's real placeholders equal the mode formula (tiny geometry)
    spec = engine._runner.adapt(V2_MODES["gundam"])
    assert page.usage.vision_tokens == vision_tokens(page.width, page.height, spec) == 256 + 6 * 144
    assert 1 <= page.usage.output_tokens <= 12
    assert page.usage.compression_ratio == round(page.usage.output_tokens / page.usage.vision_tokens, 4)
    assert resp.usage.vision_tokens == page.usage.vision_tokens
    assert resp.model.engine == "transformers" and resp.model.device == DEVICE
    assert resp.raw_result["prompt"] == "<image>\n<|grounding|>Convert the document to markdown."
    assert page.boxes_image is not None


def test_finish_reason_and_truncation_warning_agree(engine):
    # a 64 px page comes back without an end token within 6 tokens on this seed; phototest stops at once
    for size in [(64, 64), (300, 200)]:
        resp = run_document(
            engine,
            open_document(png(size), name="p.png"),
            RunRequest(request_id="t", output=OutputOptions(include_raw=True), options={"max_new_tokens": 6}),
            backend="d",
        )
        raw = resp.raw_result["pages"][0]
        truncated = any(w.startswith("truncated:") for w in resp.pages[0].warnings)
        assert truncated == (raw["finish_reason"] == "length")
        if truncated:
            assert raw["output_tokens"] == 6
        assert "<｜end▁of▁sentence｜>" not in resp.markdown


def test_pdf_pages_go_through_in_one_call(engine, monkeypatch):
    calls = []
    original = engine._runner.generate
    monkeypatch.setattr(
        engine._runner, "generate", lambda images, plan: calls.append(len(images)) or original(images, plan)
    )
    pdf = samples.multi_page_pdf(samples.numbered_pages(3)[0])  # generated: runs without ../shared
    doc = open_document(pdf, name="three_pages.pdf", dpi=36, page_range="1-2")
    resp = run_document(
        engine, doc, RunRequest(request_id="pdf", options={"max_new_tokens": 4}), backend="deepseek-ocr"
    )
    assert calls == [2]
    assert [p.index for p in resp.pages] == [0, 1]
    assert all(p.usage.vision_tokens == 256 + 6 * 144 for p in resp.pages)  # every page tiled 2 x 3 (portrait)


def test_base_mode_runs_without_tiles_and_unknown_modes_warn(engine):
    doc = open_document(png((300, 200)), name="p.png")
    resp = run_document(
        engine, doc, RunRequest(request_id="b", options={"mode": "base", "max_new_tokens": 2}), backend="d"
    )
    assert resp.pages[0].usage.vision_tokens == 256 and resp.warnings == []
    resp = run_document(
        engine, doc, RunRequest(request_id="s", options={"mode": "small", "max_new_tokens": 2}), backend="d"
    )
    assert resp.pages[0].usage.vision_tokens == 256
    assert resp.warnings and "'small'" in resp.warnings[0]


def test_health_reports_engine_and_attention(engine):
    health = engine.health()
    assert health.ready and health.detail is None
    assert health.model.version == "DeepSeek-OCR-2" and health.model.engine == "transformers"
    # CPU: sdpa throughout, float32. CUDA: bfloat16, and flash attention on the decoder where flash-attn imports.
    decoder = "flash_attention_2" if CUDA and flash_attention_status()[0] else "sdpa"
    assert health.info["attn_implementation"] == {"decoder": decoder, "vision": "sdpa"}
    assert health.info["dtype"] == ("bfloat16" if CUDA else "float32")
    assert health.info["flash_attn"] == flash_attention_status()[1]
    assert health.info["transformers"].startswith("5.") and health.info["variant"] == "ocr2"
    assert health.info["modes_honoured"] == ["gundam", "base"]


def test_per_submodel_attention_dict_is_accepted(tiny_dir):
    # the same mechanism puts flash_attention_2 on the decoder only on a GPU; eager stands in for it here
    cfg = DeepSeekConfig(engine="transformers", model=str(tiny_dir), attn_implementation="eager")
    runner = HFRunner(cfg, resolve_source(str(tiny_dir), offline=True, default_hub_id="x/y"))
    runner.load()
    assert runner.info()["attn_implementation"] == {"decoder": "eager", "vision": "eager"}
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(
        tiny_dir,
        local_files_only=True,
        attn_implementation={"": "sdpa", "vision_config": "sdpa", "text_config": "eager"},
    )
    assert model.config.text_config._attn_implementation == "eager"
    assert model.config.vision_config._attn_implementation == "sdpa"


def test_choose_attention():
    arg, report = choose_attention("auto", cuda=True, flash_available=True, dtype="bfloat16")
    assert arg == {"": "sdpa", "vision_config": "sdpa", "text_config": "flash_attention_2"}
    assert report == {"decoder": "flash_attention_2", "vision": "sdpa"}
    cpu = choose_attention("auto", cuda=False, flash_available=True, dtype="float32")
    assert cpu == ("sdpa", {"decoder": "sdpa", "vision": "sdpa"})
    arg, report = choose_attention("flash_attention_2", cuda=True, flash_available=False, dtype="bfloat16")
    assert arg == "sdpa" and "not installed" in report["note"]
    # flash-attn runs in half precision only: float32 on CUDA gets sdpa (transformers would load it, then every
    # batch would fail in the kernel)
    assert choose_attention("auto", cuda=True, flash_available=True, dtype="float32")[0] == "sdpa"
    arg, report = choose_attention("flash_attention_2", cuda=True, flash_available=True, dtype="float32")
    assert arg == "sdpa" and "float32" in report["note"]


def test_flash_attention_counts_only_when_it_imports(tmp_path, monkeypatch):
    """A flash-attn wheel built for another torch is on disk (find_spec finds it) but fails to import."""
    package = tmp_path / "flash_attn"
    package.mkdir()
    symbol = "flash_attn_2_cuda.cpython-311-x86_64-linux-gnu.so: undefined symbol: _ZN3c104cuda9SetDevice"
    (package / "__init__.py").write_text(f"raise ImportError({symbol!r})")
    monkeypatch.syspath_prepend(str(tmp_path))
    flash_attention_status.cache_clear()
    try:
        available, reason = flash_attention_status()
        assert not available and "undefined symbol" in reason
        arg, report = choose_attention(
            "flash_attention_2", cuda=True, flash_available=available, dtype="bfloat16", flash_reason=reason
        )
        assert arg == "sdpa" and "undefined symbol" in report["note"]
    finally:
        flash_attention_status.cache_clear()


def test_config_refuses_flash_in_float32_and_tensor_parallel_transformers():
    with pytest.raises(ValueError, match="float16/bfloat16"):
        DeepSeekConfig(engine="transformers", attn_implementation="flash_attention_2", dtype="float32")
    with pytest.raises(ValueError, match="vllm only"):
        DeepSeekConfig(engine="transformers", tensor_parallel_size=2)
    assert DeepSeekConfig(engine="vllm", tensor_parallel_size=2).devices_per_replica() == 2
    assert DeepSeekConfig(engine="transformers").devices_per_replica() == 1


def test_a_device_the_replica_cannot_see_is_refused():
    """Under Ray a replica with one GPU sees it as cuda:0; cuda:1 would fail at the first tensor moved there."""
    assert hf_engine.resolve_device("auto", cuda_available=False) == "cpu"
    assert hf_engine.resolve_device("cuda:0", cuda_available=True, device_count=1) == "cuda:0"
    with pytest.raises(OCRError) as e:
        hf_engine.resolve_device("cuda:1", cuda_available=True, device_count=1)
    assert e.value.code == "backend_unavailable" and "cuda:0" in e.value.message and "device: auto" in e.value.message
    assert hf_engine.resolve_device("cuda:1", cuda_available=True, device_count=2) == "cuda:1"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), "backend_unavailable"),
        (RuntimeError("CUDA error: no kernel image is available for execution on the device"), "backend_unavailable"),
        (ValueError("DeepseekOcr2 does not support an attention implementation through torch"), "backend_unavailable"),
        (ValueError("Unrecognized model in /models/x. Should have a `model_type` key"), "models_missing"),
        (OSError("/models/x does not appear to have a file named config.json"), "models_missing"),
    ],
)
def test_load_failures_are_typed_and_the_engine_stays_down_cleanly(tiny_dir, monkeypatch, error, code):
    """Only OSError used to be caught: a CUDA OOM or transformers' ValueError escaped start() and Serve restarted
    the replica in a loop. Each is now the answer the replica gives while it stays up."""

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(hf_engine, "load_pretrained", fail)
    eng = DeepSeekEngine({"engine": "transformers", "model": str(tiny_dir), "offline": True, "warmup": False})
    with pytest.raises(OCRError) as e:
        eng.start()
    assert e.value.code == code and type(error).__name__ in e.value.message
    health = eng.health()
    assert not health.ready and eng._runner is None


def test_a_corrupt_weights_file_is_models_missing_not_a_crash(tiny_dir, tmp_path):
    from deployments.backend import BackendDeployment

    broken = tmp_path / "broken"
    broken.mkdir()
    for f in tiny_dir.iterdir():
        data = f.read_bytes()
        (broken / f.name).write_bytes(data[: len(data) // 2] if f.name == "model.safetensors" else data)
    dep = BackendDeployment(
        {"name": "d", "engine": "deepseek", "engine_config": {"engine": "transformers", "model": str(broken)}}
    )
    assert dep.start_error is not None and dep.start_error.code == "models_missing"
    assert "SafetensorError" in dep.start_error.message


def test_ngram_guard_logits_processor_bans_the_repeat():
    cfg = DeepSeekConfig(ngram_size=3, window_size=10, whitelist_token_ids=(7,))
    guard = _ngram_guard(prompt_len=2, config=cfg)
    # prompt [9, 9], generated [1, 2, 3, 1, 2]: completing "1 2 3" again is banned; whitelisted 7 never is
    ids = torch.tensor([[9, 9, 1, 2, 3, 1, 2], [9, 9, 1, 2, 7, 1, 2]])
    scores = guard(ids, torch.zeros(2, 10))
    assert scores[0, 3] == float("-inf") and torch.isfinite(scores[0, :3]).all() and torch.isfinite(scores[0, 4:]).all()
    assert torch.isfinite(scores[1]).all()


def test_images_kwargs_per_mode():
    assert images_kwargs(V2_MODES["gundam"]) == {"min_patches": 2, "max_patches": 6}
    assert images_kwargs(V2_MODES["base"]) == {
        "crop_to_patches": False,
        "tile_size": 1024,
        "size": {"height": 1024, "width": 1024},
    }
    plan = RunPlan(prompt="<image>\nFree OCR.", spec=V2_MODES["base"], max_new_tokens=1)
    assert plan.spec.tile_size is None
