"""DeepSeek-OCR's mixture-of-experts decoder on the real vLLM engine (its CPU build), with and without LoRA.

The other real-vLLM tests use a dense tiny decoder; the published checkpoints are MoE (DeepSeek-V2 decoders with
routed experts), so vLLM's ``FusedMoE`` layers - and, with adapters, ``FusedMoEWithLoRA`` - never ran in them.
Here the tiny checkpoint has a dense first layer and a 4-expert second layer (``benchmarks.support.tiny_vllm``,
``moe=True``), and the engine runs in this process (no Ray), as ``benchmarks/deepseek_gpu.py`` runs it.

What vLLM 0.32's CPU build does, pinned (see docs/deepseek.md, "Mixture of experts and LoRA"):

- MoE alone runs: ``CPUUnquantizedExperts``.
- MoE with LoRA enabled does not: vLLM wraps every MoE layer in ``FusedMoEWithLoRA`` and picks the Triton MoE
  kernels whatever the platform; the engine builds and loads the adapters, then dies in ``TritonExperts.apply``
  on the first forward pass (``module 'triton.language' has no attribute 'float32'``). The engine therefore
  refuses adapters on an MoE decoder where vLLM has no Triton, at start, with that reason; on a CUDA GPU
  (Triton present) it serves them.
"""

from __future__ import annotations

import pytest

from backends.deepseek import DeepSeekEngine
from backends.pipeline import run_document
from benchmarks.support.tiny_lora import build_tiny_lora
from benchmarks.support.tiny_vllm import CPU_ENV, build_tiny_vllm_model, tiny_engine_config
from orchestrator.ops import samples
from shared.documents import open_document
from shared.errors import OCRError
from shared.requests import RunRequest
from tests.support.vllm_serving import REQUIRES_VLLM

pytestmark = [pytest.mark.vllm, pytest.mark.slow, REQUIRES_VLLM]  # in this process: no Ray cluster

PAGE = samples.one_column_page(width=440)[0]
"""440 x 622 px: no Gundam tiles, one vision pass."""


@pytest.fixture(scope="module")
def moe_model(tmp_path_factory):
    return build_tiny_vllm_model(tmp_path_factory.mktemp("tiny-vllm-moe") / "ocr", variant="ocr", moe=True)


@pytest.fixture
def cpu_env(monkeypatch):
    for key, value in CPU_ENV.items():
        monkeypatch.setenv(key, value)


def _page(engine: DeepSeekEngine, **options):
    doc = open_document(samples.encode(PAGE), name="page.png")
    return run_document(
        engine, doc, RunRequest(request_id="moe", options={"max_new_tokens": 6, **options}), backend="deepseek-ocr"
    )


def test_the_moe_decoder_runs_on_vllm(moe_model, cpu_env):
    engine = DeepSeekEngine(tiny_engine_config(moe_model, "ocr"))
    engine.start()
    try:
        assert engine.health().info["moe_layers"] is True
        response = _page(engine)
        (page,) = response.pages
        assert 1 <= page.usage.output_tokens <= 6 and page.usage.vision_tokens > 0 and page.markdown
    finally:
        engine.close()


def test_adapters_on_the_moe_decoder_are_refused_at_start_where_vllm_has_no_triton(moe_model, tmp_path, cpu_env):
    adapter = build_tiny_lora(tmp_path / "lora", base=moe_model, seed=1)
    engine = DeepSeekEngine(tiny_engine_config(moe_model, "ocr", adapters={"a": str(adapter)}, max_lora_rank=8))
    with pytest.raises(OCRError) as e:
        engine.start()
    assert e.value.code == "backend_unavailable"
    assert "FusedMoEWithLoRA" in e.value.message and "Triton" in e.value.message
    assert not engine.health().ready


def test_without_the_refusal_vllms_cpu_build_dies_in_the_triton_moe_lora_kernel(
    moe_model, tmp_path, cpu_env, monkeypatch, capfd
):
    """The refusal above is vLLM's limit, not ours: let the engine start, and the first page kills it in
    TritonExperts (vLLM's engine core logs the root cause). When a vLLM release runs MoE-LoRA on a CPU, this
    test fails, and the refusal in backends.deepseek.vllm_compat.check_moe_lora should go."""
    import backends.deepseek.vllm_runner as vllm_engine

    monkeypatch.setattr(vllm_engine, "check_moe_lora", lambda *args, **kwargs: None)
    adapter = build_tiny_lora(tmp_path / "lora", base=moe_model, seed=1)
    engine = DeepSeekEngine(tiny_engine_config(moe_model, "ocr", adapters={"a": str(adapter)}, max_lora_rank=8))
    engine.start()  # builds: FusedMoEWithLoRA wraps the MoE layer, the adapter loads
    try:
        with pytest.raises(Exception) as e:
            _page(engine, adapter="a")
        typed = engine.classify_error(e.value)  # what the replica answers: vLLM's EngineDeadError, typed
        assert type(e.value).__name__ == "EngineDeadError" and typed is not None
        assert typed.code == "backend_unavailable" and "replaced" in typed.message
    finally:
        engine.close()
    captured = capfd.readouterr()  # vLLM's processes log to stdout, tracebacks to stderr
    logs = captured.out + captured.err
    assert "fused MoE LoRA" in logs and "TritonExperts" in logs and "triton.language" in logs
