"""MinerU backend pieces that need no parsing run: config, device choice, model check, mapping, PDF writer.

These import ``mineru`` (for its types and model registry) but never start it, so they take a few seconds.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types

import pytest
from pydantic import ValidationError

pytest.importorskip("mineru", reason="the mineru extra is not installed")

from backends.mineru.config import MinerUConfig, MinerUOptions  # noqa: E402
from backends.mineru.engine import MinerUEngine, page_range_expr  # noqa: E402
from backends.mineru.mapping import MappingOptions, map_page, merge_pages  # noqa: E402
from backends.textpdf import TextLine, article_pages, text_pdf  # noqa: E402
from shared.documents import PAGED_TYPES, STRUCTURED_TYPES  # noqa: E402
from shared.errors import OCRError  # noqa: E402


@pytest.fixture
def restore_env():
    """Engines set process-wide MINERU_* variables and patch MinerU's loaded config; undo both after a test."""
    saved = dict(os.environ)
    import mineru.config as mc

    model = mc.config.model.model_copy(deep=True)
    level = mc.config.log.level
    yield
    os.environ.clear()
    os.environ.update(saved)
    mc.config.model = model
    mc.config.log.level = level


# -- config and options -------------------------------------------------------------------------------------


def test_config_is_strict_and_default_tier_must_be_offered():
    with pytest.raises(ValidationError):
        MinerUConfig.model_validate({"defualt_tier": "flash"})
    with pytest.raises(ValidationError, match="default_tier"):
        MinerUConfig(default_tier="standard", tiers=["flash"])
    with pytest.raises(ValidationError):
        MinerUConfig(device="gpu0")
    assert MinerUConfig(tiers=["flash", "flash"]).tiers == ["flash"]


def test_bad_request_options_are_invalid_option():
    engine = MinerUEngine()
    with pytest.raises(OCRError) as e:
        engine.parse_options({"tier": "turbo"})
    assert e.value.code == "invalid_option" and e.value.status == 400
    assert "tier" in e.value.accepted
    with pytest.raises(OCRError):
        engine.parse_options({"ocrmode": "ocr"})
    opts = engine.parse_options({"tier": "basic", "ocr_mode": "ocr"})
    assert isinstance(opts, MinerUOptions) and opts.tier == "basic" and opts.ocr_mode == "ocr"


def test_reconfigure_validates_default_options_against_offered_tiers():
    engine = MinerUEngine({"tiers": ["flash", "basic"]})
    engine.reconfigure({"tier": "basic", "ocr_mode": "ocr"})
    assert engine.parse_options({}).tier == "basic"
    assert engine.parse_options({"tier": "flash"}).tier == "flash"  # the request wins over the default
    with pytest.raises(OCRError) as e:
        engine.reconfigure({"tier": "standard"})
    assert e.value.code == "invalid_option" and e.value.accepted == {"tier": ["flash", "basic"]}
    assert engine.parse_options({}).tier == "basic"  # the old defaults stay


def test_engine_reads_pages_and_structured_formats_in_one_call():
    assert PAGED_TYPES <= MinerUEngine.media_types
    assert STRUCTURED_TYPES <= MinerUEngine.media_types
    assert MinerUEngine.batch_pages >= 10_000


def test_page_range_expression_is_one_based_with_runs():
    assert page_range_expr([0, 1, 2, 6]) == "1-3,7"
    assert page_range_expr([4]) == "5"
    assert page_range_expr([1, 3, 4]) == "2,4-5"


# -- device -------------------------------------------------------------------------------------------------


def _fake_torch(cuda: bool) -> types.ModuleType:
    torch = types.ModuleType("torch")
    torch.cuda = types.SimpleNamespace(is_available=lambda: cuda)  # type: ignore[attr-defined]
    return torch


def test_device_follows_the_gpu_ray_assigned(monkeypatch):
    from backends.mineru.environment import resolve_device

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert resolve_device("auto") == "cpu"  # no GPU assigned: torch is not even imported
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert resolve_device("auto") == "cpu"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    monkeypatch.setitem(sys.modules, "torch", _fake_torch(cuda=True))
    assert resolve_device("auto") == "cuda"  # Ray's GPU 3 is cuda:0 inside the replica
    monkeypatch.setitem(sys.modules, "torch", _fake_torch(cuda=False))
    assert resolve_device("auto") == "cpu"  # e.g. the CPU wheel of torch on a GPU node
    assert resolve_device("cuda:0") == "cuda:0"
    assert resolve_device("cpu") == "cpu"
    # one GPU visible (Ray's 3, renumbered 0): cuda:1 names nothing this replica can use, refused at start
    with pytest.raises(OCRError) as e:
        resolve_device("cuda:1")
    assert e.value.code == "backend_unavailable" and "CUDA_VISIBLE_DEVICES='3'" in e.value.message
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert resolve_device("cuda:1") == "cuda:1"


def test_a_local_vllm_vlm_runs_vllms_v1_model_runner(restore_env, tmp_path, monkeypatch):
    """MinerU registers its v1-interface MinerULogitsProcessor with vLLM on every CUDA GPU; vLLM 0.32's default V2
    runner refuses it. The process that builds MinerU's vLLM must have VLLM_USE_V2_MODEL_RUNNER=0."""
    from backends.mineru.environment import apply_environment
    from backends.vllm_env import RUNNER_ENV

    monkeypatch.delenv(RUNNER_ENV, raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    runtime = apply_environment(MinerUConfig(models_dir=str(tmp_path), vlm_engine="vllm"))
    assert runtime.env[RUNNER_ENV] == "0" and os.environ[RUNNER_ENV] == "0"

    for config in (
        MinerUConfig(models_dir=str(tmp_path), vlm_engine="llama-cpp"),  # not vLLM
        MinerUConfig(models_dir=str(tmp_path), vlm_engine="vllm", vlm_server_url="http://vlm:30000"),  # remote
        MinerUConfig(models_dir=str(tmp_path), vlm_engine="vllm", tiers=["flash", "basic"]),  # no VLM tier
    ):
        monkeypatch.delenv(RUNNER_ENV, raising=False)
        assert RUNNER_ENV not in apply_environment(config).env and RUNNER_ENV not in os.environ

    monkeypatch.setenv(RUNNER_ENV, "1")  # an operator forcing V2: MinerU's vLLM would fail at its first request
    with pytest.raises(OCRError) as e:
        apply_environment(MinerUConfig(models_dir=str(tmp_path), vlm_engine="vllm"))
    assert e.value.code == "backend_unavailable" and "MinerULogitsProcessor" in e.value.message


@pytest.mark.vllm
@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm is not installed (scripts/test.sh does)")
def test_vllms_v2_loader_refuses_minerus_logits_processor():
    """Why the parse process needs vLLM's V1 runner: the V2 runner's loader (vLLM 0.32's default on CUDA) refuses
    the processor MinerU registers on every GPU."""
    from mineru_vl_utils import MinerULogitsProcessor
    from vllm.v1.worker.gpu.sample.logits_processor.loader import _load_v2_logitsprocs_by_fqcns

    with pytest.raises(ValueError, match="is not a subclass of vllm.v1.worker.gpu.sample.logits_processor"):
        _load_v2_logitsprocs_by_fqcns([MinerULogitsProcessor])


def test_warm_up_covers_the_default_tier_when_its_models_are_there(restore_env, tmp_path, monkeypatch):
    """MinerU builds a tier's models inside its first parse; the warm-up must pay that, not a client's document."""
    from backends.mineru.environment import apply_environment
    from backends.mineru.runner import DocumentRunner

    config = MinerUConfig(models_dir=str(tmp_path), small_backend="onnx", default_tier="basic")
    apply_environment(config)
    runner = DocumentRunner(config)
    assert runner.warmup_tiers() == ["flash"]  # basic's models are absent: its requests get models_missing anyway
    _put_small_models(tmp_path)
    assert runner.warmup_tiers() == ["flash", "basic"]
    parsed = []
    monkeypatch.setattr(runner, "parse", lambda data, **kw: parsed.append((kw["tier"], kw["options"].ocr_mode)))
    seconds = runner.warm_up()
    assert parsed == [("flash", "auto"), ("basic", "ocr")]  # ocr: the OCR models are built too
    assert list(seconds) == ["flash", "basic"]


def test_a_tier_the_process_has_not_warmed_gets_the_start_allowance(monkeypatch):
    from backends.mineru.process import ProcessFacts
    from shared.documents import Document

    engine = MinerUEngine(
        {"tiers": ["flash", "basic", "standard"], "parse_timeout_s": 10, "parse_start_timeout_s": 300}
    )
    engine._process = types.SimpleNamespace(facts=ProcessFacts(warm_tiers={"flash", "basic"}))
    pdf = Document(b"%PDF", "d.pdf", "application/pdf", "x", 2, [0, 1], 144.0)
    base = 10 + 2 * 5.0
    assert engine.deadline_s(pdf, "flash") == engine.deadline_s(pdf, "basic") == base
    assert engine.deadline_s(pdf, "standard") == base + 300  # its VLM loads inside this first parse
    engine._process.facts.warm_tiers.add("standard")  # what a successful parse records
    assert engine.deadline_s(pdf, "standard") == base


def test_vlm_models_url_follows_mineru_vl_utils():
    from backends.mineru.runner import vlm_models_url

    assert vlm_models_url("http://vlm:30000") == "http://vlm:30000/v1/models"
    assert vlm_models_url("http://vlm:30000/v1") == "http://vlm:30000/v1/models"
    assert vlm_models_url("http://gw/mineru/v2/") == "http://gw/mineru/v2/models"
    assert vlm_models_url("http://gw/prefix/") == "http://gw/prefix/v1/models"
    assert vlm_models_url("http://gw/ignored") == "http://gw/v1/models"


def test_apply_environment_is_offline_and_patches_a_loaded_config(restore_env, tmp_path, monkeypatch):
    import mineru.config as mc

    from backends.mineru.environment import apply_environment

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    runtime = apply_environment(MinerUConfig(models_dir=str(tmp_path), render_processes=2))
    assert runtime.device == "cpu" and runtime.models_dir == str(tmp_path)
    assert os.environ["MINERU_MODEL_SOURCE"] == "local"
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert os.environ["MINERU_DEVICE_MODE"] == "cpu"
    assert os.environ["MINERU_MALLOC_TRIM"] == "1"
    assert os.environ["DOCVORTEX_PDF_RENDER_THREADS"] == "2"
    assert mc.config.model.base_dir == str(tmp_path) and mc.config.model.source == "local"
    apply_environment(MinerUConfig(models_dir=str(tmp_path), malloc_trim=False))
    assert "MINERU_MALLOC_TRIM" not in os.environ


def test_malloc_trim_switch_exists_in_the_installed_mineru(monkeypatch):
    """The mitigation we enable must be one MinerU reads (mineru.model.runtime.memory): with the switch on it calls
    glibc's malloc_trim(0), with it off it does not (its return value alone says nothing: 0 when nothing freed)."""
    import sys

    from mineru.model.runtime import memory

    if sys.platform.startswith("linux"):
        assert callable(memory._get_malloc_trim())  # glibc's own, found by the installed MinerU on this machine
    calls: list[int] = []
    monkeypatch.setattr(memory, "_get_malloc_trim", lambda: lambda pad: calls.append(pad) or 1)
    monkeypatch.delenv("MINERU_MALLOC_TRIM", raising=False)
    assert memory.trim_process_heap() is False and calls == []
    monkeypatch.setenv("MINERU_MALLOC_TRIM", "1")
    assert memory.trim_process_heap() is sys.platform.startswith("linux")
    assert calls == ([0] if sys.platform.startswith("linux") else [])


# -- models -------------------------------------------------------------------------------------------------


def test_model_check_names_missing_files_and_the_download_command(restore_env, tmp_path):
    from backends.mineru.environment import apply_environment
    from backends.mineru.models import check_models, ensure_models

    config = MinerUConfig(models_dir=str(tmp_path), small_backend="onnx", vlm_engine="llama-cpp")
    apply_environment(config)
    assert check_models("flash", needs_ocr=False, config=config).ready  # born-digital flash: no models
    check = check_models("flash", needs_ocr=True, config=config)
    assert not check.ready and check.required == ["MinerU-4_models_onnx"]
    assert "OCR/paddleocr/ch_PP-OCRv6_tiny_det_infer.onnx" in check.missing["MinerU-4_models_onnx"]
    assert "mineru-kit models download --tier basic --small-backend onnx" in check.download_command
    standard = check_models("advanced", needs_ocr=False, config=config)
    assert set(standard.required) == {"MinerU-4_models_onnx", "MinerU2.5-Pro-2605-1.2B-GGUF"}
    assert "--tier standard" in standard.download_command and "--vlm-engine llama-cpp" in standard.download_command
    with pytest.raises(OCRError) as e:
        ensure_models("basic", needs_ocr=False, config=config)
    assert e.value.code == "models_missing" and e.value.status == 503
    assert "'basic'" in e.value.message and "mineru-kit models download --tier basic" in e.value.message
    assert e.value.accepted["missing"]["MinerU-4_models_onnx"]


def _put_small_models(models_dir) -> None:
    """Stub files at every path MinerU's registry lists for the small ONNX models (what its markers check)."""
    from mineru.model.registry import MINERU_4_MODELS_ONNX

    for model_path in MINERU_4_MODELS_ONNX.required_paths():
        target = models_dir / MINERU_4_MODELS_ONNX.local_name / model_path.relative_path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"stub")


def test_model_check_sees_models_put_in_place(restore_env, tmp_path):
    """The check reads MinerU's own registry and markers: files at the registered paths make the tier ready."""
    from backends.mineru.environment import apply_environment
    from backends.mineru.models import check_models

    config = MinerUConfig(models_dir=str(tmp_path), small_backend="onnx")
    apply_environment(config)
    _put_small_models(tmp_path)
    assert check_models("basic", needs_ocr=True, config=config).ready
    assert check_models("flash", needs_ocr=True, config=config).ready
    assert not check_models("standard", needs_ocr=True, config=config).ready  # the VLM is still absent
    vlm_remote = MinerUConfig(models_dir=str(tmp_path), small_backend="onnx", vlm_server_url="http://vlm:30000")
    assert check_models("standard", needs_ocr=True, config=vlm_remote).ready  # remote VLM: no local weights


# -- mapping ------------------------------------------------------------------------------------------------


def _page(blocks: list[dict]):
    """A MinerU page from plain dicts; top-level (and body) indices filled in as MinerU numbers them."""
    from mineru.types import PageInfo

    numbered = []
    for i, block in enumerate(blocks):
        block = {"index": i, **block}
        if isinstance(block["content"], list):
            block["content"] = [
                {**child, "index": block["index"]} if str(child.get("type", "")).endswith("_body") else child
                for child in block["content"]
            ]
        numbered.append(block)
    return PageInfo.model_validate({"page_idx": 0, "blocks": numbered})


def _text(kind: str, text: str, bbox, **extra) -> dict:
    return {"type": kind, "bbox": bbox, "content": [{"type": "text", "content": text}], **extra}


PAGE = [
    _text("header", "ACME Annual Report", [0.1, 0.02, 0.5, 0.04]),
    _text("header", "2 Results", [0.1, 0.12, 0.4, 0.15]),  # flash's false header: below the top band
    _text("paragraph_title", "Results", [0.1, 0.16, 0.4, 0.19], level=2),
    _text("text", "Revenue rose.", [0.1, 0.2, 0.9, 0.3]),
    {
        "type": "table",
        "bbox": [0.2, 0.4, 0.8, 0.6],
        "content": [
            {
                "type": "table_caption",
                "bbox": [0.2, 0.35, 0.8, 0.38],
                "content": [{"type": "text", "content": "Table 1. Sales"}],
            },
            {"type": "table_body", "bbox": [0.2, 0.4, 0.8, 0.6], "content": "<table><tr><td>42</td></tr></table>"},
        ],
    },
    {"type": "equation", "bbox": [0.3, 0.65, 0.7, 0.7], "content": "E = mc^2"},
    _text("page_number", "7", [0.48, 0.95, 0.52, 0.97]),
]


def test_blocks_get_unified_types_and_pixel_boxes():
    page = map_page(_page(PAGE), index=6, width=1000, height=2000, dpi=144.0, options=MappingOptions())
    assert page.index == 6 and (page.width, page.height, page.dpi) == (1000, 2000, 144.0)
    kinds = [(b.type, b.label) for b in page.blocks]
    assert kinds == [
        ("header", "header"),
        ("text", "header"),  # demoted: not in the top 10 %
        ("title", "paragraph_title"),
        ("text", "text"),
        ("caption", "table_caption"),
        ("table", "table_body"),
        ("formula", "equation"),
        ("footer", "page_number"),
    ]
    header, _, title, _, caption, table, formula, _ = page.blocks
    assert header.bbox == [100.0, 40.0, 500.0, 80.0]  # x by width, y by height
    assert header.bbox_norm == [0.1, 0.02, 0.5, 0.04]
    assert title.text == "Results"  # plain text; the markdown carries the heading marker
    assert caption.bbox == [200.0, 700.0, 800.0, 760.0] and caption.text == "Table 1. Sales"
    assert table.text.startswith("<table>") and "42" in table.text
    assert formula.text == "E = mc^2"
    for block in page.blocks:
        x0, y0, x1, y1 = block.bbox
        assert 0 <= x0 <= x1 <= 1000 and 0 <= y0 <= y1 <= 2000


def test_markdown_keeps_body_text_and_drops_real_page_furniture():
    page = map_page(_page(PAGE), index=0, width=1000, height=2000, dpi=None, options=MappingOptions())
    md = page.markdown
    assert "ACME Annual Report" not in md  # a running header in the top band
    assert "\n7" not in md and not md.endswith("7")  # the page number
    assert "2 Results" in md  # mislabelled header kept as body text
    assert "## Results" in md and "Revenue rose." in md
    assert "Table 1. Sales" in md and "42" in md
    assert "E = mc^2" in md
    with_furniture = map_page(
        _page(PAGE), index=0, width=1000, height=2000, dpi=None, options=MappingOptions(include_page_furniture=True)
    )
    assert with_furniture.markdown.startswith("ACME Annual Report") and with_furniture.markdown.endswith("7")


def test_figures_are_references_not_data_uris_unless_asked():
    blocks = [
        {
            "type": "image",
            "index": 3,
            "bbox": [0.1, 0.1, 0.5, 0.5],
            "content": [
                {
                    "type": "image_body",
                    "index": 3,
                    "bbox": [0.1, 0.1, 0.5, 0.5],
                    "content": "",
                    "image_base64": "data:image/png;base64,iVBORw0KGgo=",
                },
                {
                    "type": "image_caption",
                    "bbox": [0.1, 0.52, 0.5, 0.55],
                    "content": [{"type": "text", "content": "Fig. 1"}],
                },
            ],
        }
    ]
    page = map_page(_page(blocks), index=1, width=100, height=100, dpi=None, options=MappingOptions())
    assert "data:" not in page.markdown and "![figure](#page-2-block-3)" in page.markdown
    assert [b.type for b in page.blocks] == ["figure", "caption"]
    embedded = map_page(
        _page(blocks), index=1, width=100, height=100, dpi=None, options=MappingOptions(embed_images=True)
    )
    assert "data:image/png;base64" in embedded.markdown


def test_structured_pages_merge_into_one_page_without_geometry():
    sheet1 = map_page(
        _page([_text("paragraph_title", "S1", None, level=2)]),
        index=0,
        width=0,
        height=0,
        dpi=None,
        options=MappingOptions(),
    )
    sheet2 = map_page(
        _page([_text("text", "cell text", None)]), index=0, width=0, height=0, dpi=None, options=MappingOptions()
    )
    page = merge_pages([sheet1, sheet2])
    assert page.index == 0 and page.markdown == "## S1\n\ncell text"
    assert [b.bbox for b in page.blocks] == [[0.0, 0.0, 0.0, 0.0]] * 2


# -- the born-digital PDF writer ------------------------------------------------------------------------------


def test_text_pdf_has_a_real_text_layer():
    import pypdfium2 as pdfium

    data = article_pages([["Hello quick brown fox."], ["Second page (with parentheses) here."]], titles=["A", "B"])
    pdf = pdfium.PdfDocument(data)
    try:
        assert len(pdf) == 2
        texts = [pdf[i].get_textpage().get_text_range() for i in range(2)]
    finally:
        pdf.close()
    assert "Hello quick brown fox." in texts[0] and texts[0].startswith("A")
    assert "Second page (with parentheses) here." in texts[1]
    with pytest.raises(UnicodeEncodeError):
        text_pdf([[TextLine("no CJK in standard fonts: 中", 72, 72)]])
