"""LoRA adapters and constrained decoding, without vLLM: config checks, adapter resolution, what is sent to vLLM
(engine and sampling arguments), the engine's refusals and its model info per adapter (fake runner)."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from backends.deepseek.adapters import resolve_adapters
from backends.deepseek.config import DeepSeekConfig, DeepSeekOptions
from backends.deepseek.engine import DeepSeekEngine
from backends.deepseek.modes import V1_MODES
from backends.deepseek.runner import Generation
from backends.deepseek.vllm_inputs import build_requests, engine_kwargs, lora_kwargs, sampling_kwargs
from backends.extraction import ExtractTask
from orchestrator.ops import samples
from shared.documents import PageImage, open_document
from shared.errors import OCRError


def _adapter(path, rank=8, peft_type="LORA"):
    path.mkdir(parents=True, exist_ok=True)
    (path / "adapter_config.json").write_text(
        json.dumps(
            {"peft_type": peft_type, "r": rank, "target_modules": ["q_proj", "v_proj"], "base_model_name_or_path": "b"}
        )
    )
    return str(path)


def test_config_checks_adapters_when_the_app_is_built(tmp_path):
    a = _adapter(tmp_path / "a")
    cfg = DeepSeekConfig(adapters={"receipts": a}, max_lora_rank=8)
    assert cfg.adapters == {"receipts": a}
    with pytest.raises(ValueError, match="above max_lora_rank 8"):
        DeepSeekConfig(adapters={"big": _adapter(tmp_path / "big", rank=64)}, max_lora_rank=8)
    with pytest.raises(ValueError, match="not a LoRA"):
        DeepSeekConfig(adapters={"ia3": _adapter(tmp_path / "ia3", peft_type="IA3")})
    with pytest.raises(ValueError, match="vLLM engine only"):
        DeepSeekConfig(engine="transformers", adapters={"receipts": a})
    with pytest.raises(ValueError, match="must match"):
        DeepSeekConfig(adapters={"base": a})
    with pytest.raises(ValueError):
        DeepSeekConfig(max_lora_rank=12)  # not a rank vLLM accepts
    # a path that only exists on the GPU nodes, or a hub id: checked when the replica starts
    DeepSeekConfig(adapters={"remote": "/models/adapters/receipts", "hub": "org/deepseek-ocr-receipts-lora"})


def test_adapters_resolve_in_configured_order_and_missing_ones_say_so(tmp_path):
    resolved = resolve_adapters(
        {"b": _adapter(tmp_path / "b"), "a": _adapter(tmp_path / "a", rank=16)}, max_rank=16, offline=True
    )
    assert [(x.name, x.lora_id, x.rank) for x in resolved.values()] == [("b", 1, 8), ("a", 2, 16)]
    assert resolved["a"].describe()["target_modules"] == ["q_proj", "v_proj"]
    with pytest.raises(OCRError) as e:
        resolve_adapters({"gone": str(tmp_path / "gone")}, max_rank=16, offline=True)
    assert e.value.code == "models_missing"
    with pytest.raises(OCRError) as e:
        resolve_adapters({"hub": "org/not-cached-adapter"}, max_rank=16, offline=True)
    assert e.value.code == "models_missing" and "hf download org/not-cached-adapter" in e.value.message


def test_engine_arguments_enable_multi_lora_only_with_adapters(tmp_path):
    plain = engine_kwargs(DeepSeekConfig(), "m")
    assert "enable_lora" not in plain
    assert plain["structured_outputs_config"] == {"backend": "xgrammar", "disable_any_whitespace": True}
    cfg = DeepSeekConfig(adapters={"a": _adapter(tmp_path / "a"), "b": _adapter(tmp_path / "b")}, max_loras=4)
    assert lora_kwargs(cfg) == {"enable_lora": True, "max_loras": 2, "max_lora_rank": 16, "max_cpu_loras": 4}
    assert engine_kwargs(cfg, "m")["enable_lora"] is True
    # a CPU adds a slot for the base model's zero adapter
    assert lora_kwargs(cfg, extra=1) == {"enable_lora": True, "max_loras": 3, "max_lora_rank": 16, "max_cpu_loras": 5}


def test_on_a_cpu_base_requests_carry_a_zero_adapter_shaped_like_the_configured_ones(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file, save_file

    from backends.deepseek.adapters import needs_null_adapter, write_null_adapter

    source = tmp_path / "a"
    _adapter(source)
    save_file(
        {"x.lora_A.weight": torch.ones(8, 4), "x.lora_B.weight": torch.ones(4, 8)},
        str(source / "adapter_model.safetensors"),
    )
    adapters = resolve_adapters({"a": str(source)}, max_rank=16, offline=True)
    assert needs_null_adapter("cpu", adapters) and not needs_null_adapter("cuda:0", adapters)
    assert not needs_null_adapter("cpu", {})
    null = write_null_adapter(adapters["a"], tmp_path / "null")
    weights = load_file(str(null / "adapter_model.safetensors"))
    assert {k: tuple(v.shape) for k, v in weights.items()} == {"x.lora_A.weight": (8, 4), "x.lora_B.weight": (4, 8)}
    assert all(not v.any() for v in weights.values())
    assert json.loads((null / "adapter_config.json").read_text())["r"] == 8


def test_sampling_for_a_schema_skips_special_tokens_and_carries_the_schema():
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    kw = sampling_kwargs(DeepSeekConfig(), 100, ngram_guard=False, json_schema=schema)
    assert kw == {
        "temperature": 0.0,
        "max_tokens": 100,
        "skip_special_tokens": True,
        "structured_outputs": {"json": schema},
    }
    requests = build_requests(
        [Image.new("RGB", (64, 64))],
        prompt="<image>\nx",
        spec=V1_MODES["gundam"],
        variant="ocr",
        config=DeepSeekConfig(),
        max_new_tokens=10,
        adapter="receipts",
        json_schema=schema,
    )
    assert requests[0].adapter == "receipts" and requests[0].sampling["structured_outputs"] == {"json": schema}


class GroupRunner:
    """A runner that records the groups it is given and answers fixed texts (as the vLLM runner would)."""

    name = "vllm"

    def __init__(self):
        self.groups = []

    def load(self):
        pass

    def adapt(self, spec):
        return spec

    def generate(self, images, plan):
        return self.generate_groups([(images, plan)])[0]

    def generate_groups(self, groups):
        self.groups.append(groups)
        out = []
        for images, plan in groups:
            text = '{"total": null}' if plan.json_schema else "<|ref|>text<|/ref|><|det|>[[1, 1, 9, 9]]<|/det|>\nHi"
            out.append([Generation(text=text, output_tokens=3, finish_reason="stop") for _ in images])
        return out

    def count_tokens(self, texts):
        return [len(t) for t in texts]

    def info(self):
        return {}

    def device(self):
        return "cpu"

    def close(self):
        pass


def _engine(tmp_path, runner=None):
    cfg = DeepSeekConfig(
        engine="vllm", model="/m", variant="ocr", warmup=False, adapters={"receipts": _adapter(tmp_path / "r")}
    )
    engine = DeepSeekEngine(cfg, runner=runner or GroupRunner())
    engine.start()
    return engine


def _page():
    doc = open_document(samples.encode(Image.new("RGB", (64, 64), "white")), name="p.png")
    return doc, [PageImage(index=0, image=Image.new("RGB", (64, 64), "white"), dpi=None)]


def test_unknown_adapter_is_a_400_listing_the_configured_ones(tmp_path):
    engine = _engine(tmp_path)
    with pytest.raises(OCRError) as e:
        engine.plan(DeepSeekOptions(adapter="invoices"))
    assert e.value.status == 400 and e.value.accepted == {"adapter": ["receipts"]}
    assert "configured: receipts" in e.value.message


def test_the_answer_names_the_adapter_and_extraction_audits_with_the_base_model(tmp_path):
    runner = GroupRunner()
    engine = _engine(tmp_path, runner)
    doc, pages = _page()
    run = engine.run(doc, pages, DeepSeekOptions(adapter="receipts"))
    assert run.model is not None and run.model.adapter == "receipts" and run.raw["adapter"] == "receipts"
    assert engine.run(doc, pages, DeepSeekOptions()).model.adapter is None
    schema = {"type": "object", "properties": {"total": {"type": ["number", "null"]}}}
    out = engine.extract(doc, pages, DeepSeekOptions(adapter="receipts"), ExtractTask(schema, "Fields."))
    (extract_plan_group, audit_group) = runner.groups[-1]
    assert extract_plan_group[1].json_schema == schema and extract_plan_group[1].adapter == "receipts"
    assert extract_plan_group[1].ngram_guard is False and extract_plan_group[1].prompt == "<image>\nFields."
    assert audit_group[1].json_schema is None and audit_group[1].adapter is None  # one batch, base-model OCR
    # the answer is the extract group's own generation, page by page; the audit OCR is the engine's reading of the
    # base model's grounded text: its block parsed and placed on the 64 px page (1-9 on the 0-999 grid)
    [answer] = out.answers
    assert (answer.index, answer.text, answer.finish_reason) == (0, '{"total": null}', "stop")
    [ocr_page] = out.ocr.pages
    assert ocr_page.markdown == "Hi" and [b.type for b in ocr_page.blocks] == ["text"]
    assert ocr_page.blocks[0].bbox == pytest.approx([1 / 999 * 64, 1 / 999 * 64, 9 / 999 * 64, 9 / 999 * 64], abs=0.01)
    assert out.model.adapter == "receipts" and out.model.version == "DeepSeek-OCR"
    assert engine.capabilities().extracts is True


def test_transformers_runner_cannot_extract(tmp_path):
    class HFLike:
        """What the transformers runner offers: generate(), no generate_groups()."""

        name = "transformers"
        load = GroupRunner.load
        adapt = GroupRunner.adapt
        info = GroupRunner.info
        device = GroupRunner.device
        close = GroupRunner.close

    cfg = DeepSeekConfig(engine="transformers", model="/m", variant="ocr2", warmup=False)
    engine = DeepSeekEngine(cfg, runner=HFLike())
    engine.start()
    doc, pages = _page()
    with pytest.raises(OCRError) as e:
        engine.extract(doc, pages, DeepSeekOptions(), ExtractTask({"type": "object"}, "x"))
    assert e.value.status == 400 and "vLLM" in e.value.message
    assert engine.capabilities().extracts is False
