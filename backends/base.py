"""The engine protocol every backend implements. No Ray and no web framework here, by design.

An engine is constructed from its config (cheap, no I/O), then ``start()`` loads models and warms up; the
hosting deployment calls it once in its constructor. ``run()`` takes already validated pages and returns schema
objects, so everything that hosts an engine (a Serve replica, a benchmark, a test) gets the same answer.

Error contract: anything the *client* did wrong (an option an engine does not know, a media type it cannot read)
raises :class:`~shared.errors.OCRError` with a 4xx code; an engine that cannot serve at all (weights missing)
raises ``OCRError("models_missing", ...)`` from ``start()`` and reports ``ready=False`` from ``health()``; an
exception the engine's library raises on a bad document is typed by :meth:`OCREngine.classify_error`; anything
else is a server fault.

Import contract: importing an engine's module must be cheap (heavy libraries - torch, vLLM, MinerU, onnxruntime -
are imported in ``start()``), because the application builder imports engine classes to validate each backend's
``engine_config`` and ``default_options`` before anything is deployed.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from shared.documents import PAGED_TYPES, Document, PageImage
from shared.errors import OCRError, validation_problems
from shared.schema import Capabilities, ErrorCode, ModeCost, ModelInfo, PageResult


class EngineConfig(BaseModel):
    """Base of every engine's config: strict, so a typo in serve_config.yaml fails at deploy time."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    def devices_per_replica(self) -> int:
        """GPUs one replica shards a model over (tensor parallelism). Above 1 the builder places each replica in a
        placement group with that many one-GPU bundles (``orchestrator.serving.config.BackendConfig``)."""
        return 1


class EngineOptions(BaseModel):
    """Base of every engine's per-request options: strict, so a misspelt option is a 400, not ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())


class EngineHealth(BaseModel):
    """What ``check_health`` and ``GET /v1/backends`` report."""

    model_config = ConfigDict(extra="forbid")

    ready: bool
    model: ModelInfo
    detail: str | None = None
    info: dict[str, Any] = {}


@dataclass
class EngineRun:
    """What an engine returns for a batch of pages (boxes images are drawn by the runner, not the engine)."""

    pages: list[PageResult]
    raw: Any = None
    source_markdown: str | None = None
    warnings: list[str] = field(default_factory=list)
    model: ModelInfo | None = None
    """Who answered, when it differs per request (a LoRA adapter); None: the engine's ``model_info()``."""


class OCREngine(abc.ABC):
    """An OCR engine: load once, run many times on pages."""

    kind: ClassVar[str]
    """Registry name of the engine kind."""
    media_types: ClassVar[frozenset[str]] = PAGED_TYPES
    """Media types the engine reads."""
    batch_pages: ClassVar[int] = 1
    """Pages handed to one ``run()`` call; engines that batch on a GPU take many, whole-document engines all."""
    needs_pixels: ClassVar[bool] = True
    """False for engines that read ``doc.data`` themselves: ``run()`` then gets image-less pages (sizes only) and
    the runner renders each page once, afterwards, only to draw its boxes — a long PDF is never held in memory."""
    Config: ClassVar[type[EngineConfig]] = EngineConfig
    Options: ClassVar[type[EngineOptions]] = EngineOptions
    metric_options: ClassVar[tuple[str, ...]] = ()
    """Per-request options whose value labels the router's latency metric (a mode, a tier)."""

    def __init__(self, config: EngineConfig | dict[str, Any] | None = None) -> None:
        self.config = config if isinstance(config, self.Config) else self.Config.model_validate(config or {})
        self.defaults: dict[str, Any] = {}

    @abc.abstractmethod
    def start(self) -> None:
        """Load models and warm up. Raises ``OCRError('models_missing')`` when weights are absent."""

    @abc.abstractmethod
    def health(self) -> EngineHealth:
        """Whether the engine can serve now, on which model and device, with which library versions."""

    @abc.abstractmethod
    def run(self, doc: Document, pages: list[PageImage], options: EngineOptions) -> EngineRun:
        """OCR ``pages`` of ``doc`` (rendered at ``doc.dpi``); one ``PageResult`` per page, in the same order."""

    def model_info(self) -> ModelInfo:
        return self.health().model

    def capabilities(self) -> Capabilities:
        """What this engine instance can do, published in ``GET /v1/backends``. Engines that extract to a schema
        (``backends.extraction.Extractor``) or count tokens (:meth:`count_tokens`) say so by overriding this."""
        return Capabilities(
            reads=sorted(self.media_types),
            metric_options=list(self.metric_options),
            vision_token_modes=[c.mode for c in self.vision_token_costs([])],
        )

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Tokens of each text by the model's own tokenizer, for engines whose capabilities say ``counts_tokens``.

        Raises:
            OCRError: ``invalid_option`` on an engine without a model tokenizer.
        """
        raise OCRError(ErrorCode.INVALID_OPTION, f"the {self.kind} engine has no model tokenizer")

    @classmethod
    def vision_token_costs(cls, sizes: list[tuple[int, int]]) -> list[ModeCost]:
        """What pages of ``sizes`` (width, height) cost in vision tokens in each of the engine's resolution modes
        (``compression_ratio`` left empty); [] for engines that do not read pages as vision tokens. Pure: called
        on the class, with no model loaded."""
        return []

    def close(self) -> None:
        """Release what ``start()`` took (GPU memory, engine processes, threads). Called when the replica stops.

        Engines that hold nothing beyond Python objects keep this default.
        """
        return None

    def classify_error(self, error: Exception) -> OCRError | None:
        """What an exception raised by this engine on a client's document means, when the engine knows.

        The hosting deployment asks this of every exception that is not already an ``OCRError``: an engine that
        recognises its library's failure on a bad document answers e.g. ``invalid_document``; None leaves the
        exception a server fault (``internal_error``), which is meant for bugs only.
        """
        return None

    def reconfigure(self, defaults: dict[str, Any]) -> None:
        """Replace the default per-request options (from the deployment's ``user_config``); validated now."""
        self.Options.model_validate(defaults)
        self.defaults = dict(defaults)

    def parse_options(self, options: dict[str, Any] | None) -> EngineOptions:
        """Per-request options over the defaults, validated.

        Raises:
            OCRError: ``invalid_option`` naming the bad field and listing the accepted ones.
        """
        merged = {**self.defaults, **(options or {})}
        try:
            return self.Options.model_validate(merged)
        except ValidationError as e:
            raise OCRError(
                ErrorCode.INVALID_OPTION,
                f"bad options for the {self.kind} engine: {validation_problems(e)}",
                accepted=options_help(self.Options),
            ) from None


def options_help(model: type[BaseModel]) -> dict[str, str]:
    """Field name -> description (and allowed values), for error messages and docs."""
    out: dict[str, str] = {}
    for name, f in model.model_fields.items():
        out[name] = f"{f.description or ''} (type: {f.annotation!s}, default: {f.default!r})".strip()
    return out
