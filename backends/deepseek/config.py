"""Configuration of the DeepSeek-OCR backend (per deployment) and its options (per request).

One backend, two engines, because they answer different needs: vLLM is the production path (continuous
batching, both DeepSeek-OCR and DeepSeek-OCR-2, GPU only); transformers runs DeepSeek-OCR-2 through the native
classes on a GPU *or* a CPU, which is what makes the path testable without a GPU.

Decision (documented in docs/deepseek.md): DeepSeek-OCR v1 on transformers is refused. It only exists as remote
code pinned to transformers <= 4.47, which cannot share an environment with the rest of the service (transformers
5.x); the vLLM engine serves v1.
"""

from __future__ import annotations

import os
import re
from typing import Any, Literal

from pydantic import Field, model_validator

from backends.base import EngineConfig, EngineOptions
from backends.deepseek.modes import Mode, Variant
from backends.deepseek.prompts import Preset, build_prompt
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


class DeepSeekConfig(EngineConfig):
    """How a DeepSeek-OCR deployment loads and runs its model (``engine_config`` in serve_config.yaml)."""

    engine: Literal["vllm", "transformers"] = Field(
        default="vllm",
        description="Inference engine: 'vllm' (GPU, continuous batching, OCR and OCR-2) or 'transformers' "
        "(GPU or CPU, DeepSeek-OCR-2 only).",
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
    tensor_parallel_size: int = Field(default=1, ge=1, description="vLLM only: GPUs one replica shards over.")
    enforce_eager: bool = Field(
        default=False, description="vLLM only: disable CUDA graphs (faster start, slower decoding)."
    )
    load_format: Literal["auto", "dummy"] = Field(
        default="auto",
        description="vLLM only: 'dummy' initialises random weights at the checkpoint's shapes (config and "
        "tokenizer files only), for throughput benchmarks without the weights.",
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

    @model_validator(mode="after")
    def _check(self) -> DeepSeekConfig:
        if self.max_new_tokens > self.max_new_tokens_limit:
            raise ValueError(
                f"max_new_tokens ({self.max_new_tokens}) exceeds max_new_tokens_limit ({self.max_new_tokens_limit})"
            )
        if self.engine == "transformers" and self.declared_variant() == "ocr":
            raise ValueError(REFUSE_V1_TRANSFORMERS)
        return self

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
