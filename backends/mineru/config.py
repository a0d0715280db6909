"""Configuration of the MinerU engine (per deployment) and its per-request options.

Both are strict pydantic models: a typo in ``serve_config.yaml`` fails at deploy time, a misspelt request option
is a 400. The field descriptions are the documentation (``docs/mineru.md`` repeats them with context).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from backends.base import EngineConfig, EngineOptions

Tier = Literal["flash", "basic", "standard", "advanced"]
TIERS: tuple[Tier, ...] = ("flash", "basic", "standard", "advanced")
OcrMode = Literal["auto", "txt", "ocr"]


class MinerUConfig(EngineConfig):
    """How one MinerU deployment runs: tiers it offers, where its models live, which device it uses."""

    default_tier: Tier = Field(
        default="flash",
        description=(
            "Tier used when a request names none. flash needs no models for born-digital PDFs and office/HTML "
            "formats; basic needs the small models; standard/advanced also the MinerU2.5 VLM."
        ),
    )
    tiers: list[Tier] = Field(
        default_factory=lambda: list(TIERS),
        min_length=1,
        description="Tiers requests may ask for; others are refused with invalid_option (the CPU profile: [flash]).",
    )
    device: str = Field(
        default="auto",
        pattern=r"^(auto|cpu|cuda(:\d+)?)$",
        description=(
            "MINERU_DEVICE_MODE. auto: 'cuda' when Ray assigned a GPU (CUDA_VISIBLE_DEVICES set) and torch sees "
            "CUDA, else 'cpu'. cpu / cuda / cuda:N force it; N counts the GPUs the replica sees (Ray numbers them "
            "from 0), so a replica with num_gpus: 1 has only cuda:0 and start refuses cuda:1."
        ),
    )
    models_dir: str | None = Field(
        default=None,
        description=(
            "MINERU_MODEL_BASE_DIR: where `mineru-kit models download` put the models. None: MINERU_MODEL_BASE_DIR "
            "from the environment, else MinerU's default ~/.mineru/models."
        ),
    )
    small_backend: Literal["auto", "onnx", "torch"] = Field(
        default="auto",
        description=(
            "MinerU's small-model runtime (layout, OCR, tables). auto: torch on a GPU with mineru[torch], else onnx."
        ),
    )
    vlm_engine: Literal["auto", "llama-cpp", "vllm", "lmdeploy", "mlx"] = Field(
        default="auto",
        description=(
            "Local engine of the MinerU2.5 VLM (standard/advanced). auto: vllm on a CUDA GPU if installed, "
            "else llama-cpp. With vllm the parse process runs vLLM's V1 model runner (VLLM_USE_V2_MODEL_RUNNER=0): "
            "MinerU's logits processor is v1-interface, which vLLM 0.32's default V2 runner refuses."
        ),
    )
    vlm_server_url: str = Field(
        default="",
        description=(
            "OpenAI-compatible MinerU VLM server to use instead of a local VLM (then no local VLM weights are needed). "
            "The parse process may connect to this host and port only (every other host stays refused); it asks "
            "the server for its models at start and reports the answer in health (parse_process.vlm_server)."
        ),
    )
    require_default_tier_models: bool = Field(
        default=True,
        description=(
            "start() fails with models_missing when the default tier's models are absent. False: start anyway and "
            "serve what needs no models (requests that need them get models_missing)."
        ),
    )
    malloc_trim: bool = Field(
        default=True,
        description="MINERU_MALLOC_TRIM=1: MinerU returns freed heap to the OS after each PDF (limits RSS growth).",
    )
    render_processes: int | None = Field(
        default=1,
        ge=1,
        le=3,
        description=(
            "DOCVORTEX_PDF_RENDER_THREADS: persistent worker processes MinerU spawns to crop figures from PDFs "
            "(each ~60-100 MB). None: MinerU's default (min(cpus, 3))."
        ),
    )
    furniture_band: float = Field(
        default=0.1,
        ge=0.0,
        le=0.5,
        description=(
            "A block MinerU calls header (footer) counts as page furniture only if it lies in the top (bottom) "
            "band of this fraction of the page height; otherwise it is body text (flash mislabels first lines)."
        ),
    )
    warmup: bool = Field(
        default=True,
        description=(
            "Parse a tiny generated PDF at start with flash and with the default tier (when its models are on "
            "disk), so no client's document waits for models to load."
        ),
    )
    parse_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description=(
            "Deadline of one document's parse (plus parse_timeout_per_page_s per selected PDF/image page). MinerU "
            "runs in a parse process of its own; past the deadline that process (and its render workers) is "
            "killed, the request gets 413 document_too_complex, and a fresh process takes the next document."
        ),
    )
    parse_timeout_per_page_s: float = Field(
        default=5.0,
        ge=0,
        description="Added to parse_timeout_s for every selected page of a PDF or image (structured formats: none).",
    )
    parse_memory_mb: int | None = Field(
        default=None,
        gt=0,
        description=(
            "Kill the parse process (413 document_too_complex) when it and its render workers pass this resident "
            "size while parsing. None: no cap (the replica's max_rss_mb still recycles the replica between "
            "requests). Resident memory, not address space, so it also works with CUDA."
        ),
    )
    parse_start_timeout_s: float = Field(
        default=300.0,
        gt=0,
        description=(
            "How long starting the parse process may take: importing MinerU and warming up flash and the default "
            "tier (loading its models: for a VLM tier on a GPU, weights, compilation, CUDA graphs). A tier the "
            "process has not warmed gets this allowance on top of its parse deadline on its first document."
        ),
    )
    log_level: Literal["trace", "debug", "info", "warning", "error", "critical"] = Field(
        default="warning", description="MINERU_LOG_LEVEL (MinerU logs every document at info)."
    )

    @field_validator("tiers")
    @classmethod
    def _unique_tiers(cls, value: list[Tier]) -> list[Tier]:
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _default_is_offered(self) -> MinerUConfig:
        if self.default_tier not in self.tiers:
            raise ValueError(f"default_tier {self.default_tier!r} is not in tiers {self.tiers}")
        return self


class MinerUOptions(EngineOptions):
    """Per-request options of the MinerU engine."""

    tier: Tier | None = Field(
        default=None, description="flash | basic | standard | advanced; null: the deployment's default tier."
    )
    ocr_mode: OcrMode = Field(
        default="auto",
        description="auto: MinerU decides from the PDF's text layer; txt: use the text layer only; ocr: always OCR.",
    )
    image_analysis: bool = Field(
        default=True, description="Let the VLM tiers analyse figures and charts (MinerU's image_analysis)."
    )
    include_page_furniture: bool = Field(
        default=False,
        description=(
            "Put page headers, footers, page numbers and margin notes into the markdown too (blocks always have them)."
        ),
    )
    embed_images: bool = Field(
        default=False,
        description="Embed figure crops in the markdown as data: URIs (large); default: a short placeholder reference.",
    )
