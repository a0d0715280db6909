"""The MinerU 4 engine: whole documents through ``mineru.parser.parse``, mapped into the unified schema.

MinerU parses the *document* (its bytes and a page range), not page images: it reads the PDF's text layer, runs
its layout/OCR/VLM models per tier, and merges content across pages. So this engine asks the runner for every
page in one ``run()`` call (``batch_pages`` is huge) and needs only the pages' pixel sizes (``needs_pixels`` is
false: the runner renders each page afterwards, one at a time, just to draw its boxes), to
turn MinerU's 0-1 boxes into pixels on exactly the images the boxes image is drawn on. Office, HTML, EPUB and
CSV files arrive with no page images and come back as one logical page without geometry.

MinerU itself runs in a **parse process** of the replica's own (:mod:`backends.mineru.process`,
:mod:`backends.mineru.worker`): everything that reads the client's bytes with MinerU (text-layer classification,
the model check that follows from it, the parse, the mapping) happens there, under a per-document deadline and an
optional memory cap; past either, the process group is killed and replaced and the client gets 413
``document_too_complex`` — no thread or process is left running. The process warms up the default tier at start
(under ``parse_start_timeout_s``); a tier whose models a process has not built yet gets that allowance on top of
its deadline once. A GPU or inference-engine failure (CUDA out of memory or error, a vLLM engine that fails or
dies) is the backend's, not the document's: 503 ``backend_unavailable``, and the process is replaced. The parse
process is sealed against the network (but for the operator's VLM server) and against local files a document
points at (:mod:`backends.mineru.sandbox`), and MinerU's exceptions on a document are typed there
(:mod:`backends.mineru.errors`). The replica keeps the cheap parts: configuration, the tier decision, and health
(which models are on disk). One document at a time per engine: MinerU's own API is not built for concurrent
documents in one process, and a replica is the unit of parallelism.
"""

from __future__ import annotations

import logging
import threading
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version
from typing import Any

from backends.base import EngineHealth, EngineOptions, EngineRun, OCREngine
from backends.mineru.config import MinerUConfig, MinerUOptions, Tier
from backends.mineru.environment import PROCESSOR, Environment, apply_environment, mineru_version
from backends.mineru.models import check_models, ensure_models, needs_models, tier_readiness
from backends.mineru.process import (
    ParseDied,
    ParseFault,
    ParseOverMemory,
    ParseProcess,
    ParseStartError,
    ParseTimeout,
)
from backends.mineru.runner import SUFFIXES, page_range_expr
from backends.vllm_env import RUNNER_ENV
from shared.documents import PAGED_TYPES, STRUCTURED_TYPES, Document, PageImage
from shared.errors import OCRError
from shared.schema import ErrorCode, ModelInfo

logger = logging.getLogger(__name__)


class MinerUEngine(OCREngine):
    """MinerU 4 (``mineru`` on PyPI, formerly ``magic-pdf``), tiers flash / basic / standard / advanced."""

    kind = "mineru"
    media_types = PAGED_TYPES | STRUCTURED_TYPES
    batch_pages = 1_000_000  # the whole document in one run(): MinerU works on documents, not pages
    needs_pixels = False  # it reads doc.data; page sizes are enough to place its boxes
    Config = MinerUConfig
    Options = MinerUOptions
    metric_options = ("tier",)

    def __init__(self, config: MinerUConfig | dict[str, Any] | None = None) -> None:
        super().__init__(config)
        self.config: MinerUConfig
        self._environment: Environment | None = None
        self._lock = threading.Lock()
        self._error: str | None = None
        self._started = False
        self._process: ParseProcess | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Set MinerU's offline environment, check the default tier's models, start the parse process and warm up.

        Raises:
            OCRError: ``models_missing`` when the default tier needs models that are absent and
                ``require_default_tier_models`` is set.
            RuntimeError: the parse process could not start (MinerU not importable, warm-up failed).
        """
        try:
            self._environment = apply_environment(self.config)
            tier = self.config.default_tier
            if needs_models(tier, needs_ocr=False):
                check = check_models(tier, needs_ocr=True, config=self.config)
                if not check.ready:
                    if self.config.require_default_tier_models:
                        ensure_models(tier, needs_ocr=True, config=self.config, reason="the default tier")
                    logger.warning(
                        "MinerU default tier %s has missing models %s; serving model-free requests only. %s",
                        tier,
                        check.missing,
                        check.download_command,
                    )
            # the process inherits the environment just applied; it imports MinerU and warms up itself
            self._process = ParseProcess(
                self.config.model_dump_json(), start_timeout_s=self.config.parse_start_timeout_s
            )
            self._process.spawn()
            self._process.wait_ready()
            if self._process.facts.warmup_s is not None:
                logger.info(
                    "MinerU warm-up (1 page per tier: %s) took %.2f s",
                    ", ".join(sorted(self._process.facts.warm_tiers)),
                    self._process.facts.warmup_s,
                )
            self._started = True
            self._error = None
        except OCRError as e:
            self._error = e.message
            raise
        except Exception as e:
            self._error = f"MinerU failed to start: {e}"
            raise

    def close(self) -> None:
        """Stop the parse process (and its render workers)."""
        process, self._process = self._process, None
        if process is not None:
            process.stop()

    def health(self) -> EngineHealth:
        """Readiness, model id ("mineru-4 <default tier>"), package version, device, per-tier model presence and
        the parse process (pid, processes started and killed, deadline)."""
        device = self._environment.device if self._environment else None
        model = ModelInfo(
            id=f"mineru-4 {self.config.default_tier}",
            version=_package_version(),
            engine="mineru",
            device=device,
        )
        ready = self._started and self._error is None
        info: dict[str, Any] = {
            "default_tier": self.config.default_tier,
            "offered_tiers": list(self.config.tiers),
            "model_source": "local (offline)",
            "malloc_trim": self.config.malloc_trim,
        }
        if self._process is not None:
            facts = self._process.facts
            info["parse_process"] = {
                "pid": facts.pid,
                "started": facts.started,
                "killed": facts.killed,
                "timeout_s": self.config.parse_timeout_s,
                "timeout_per_page_s": self.config.parse_timeout_per_page_s,
                "memory_mb": self.config.parse_memory_mb,
                "warm_tiers": sorted(facts.warm_tiers),
                "env": dict(facts.env),
                "vlm_server": facts.vlm_server,
            }
        if self._environment is not None:
            info["models_dir"] = self._environment.models_dir
            try:
                from mineru.model.runtime.device import resolve_small_model_backend
                from mineru.model.vlm.selector import resolve_vlm_engine

                info["small_backend"] = resolve_small_model_backend(self.config.small_backend)
                info["vlm"] = self.config.vlm_server_url or resolve_vlm_engine(self.config.vlm_engine)
                if RUNNER_ENV in self._environment.env:
                    info["vllm_model_runner"] = f"v1 ({RUNNER_ENV}={self._environment.env[RUNNER_ENV]}: {PROCESSOR})"
                info["tiers"] = tier_readiness(self.config)
            except Exception as e:  # health answers even if MinerU misbehaves
                info["tiers_error"] = str(e)
        detail = self._error if self._error else (None if self._started else "not started")
        return EngineHealth(ready=ready, model=model, detail=detail, info=info)

    def reconfigure(self, defaults: dict[str, Any]) -> None:
        """New default options (``user_config``); a default tier this deployment does not offer is refused now."""
        tier = (defaults or {}).get("tier")
        if tier is not None and tier not in self.config.tiers:
            raise OCRError(
                "invalid_option",
                f"default tier {tier!r} is not offered by this MinerU backend",
                accepted={"tier": list(self.config.tiers)},
            )
        super().reconfigure(defaults)

    # -- requests --------------------------------------------------------------------------------------------

    def run(self, doc: Document, pages: list[PageImage], options: EngineOptions) -> EngineRun:
        """Parse ``doc`` (its selected pages) with MinerU in the parse process and map the result onto ``pages``.

        Raises:
            OCRError: ``invalid_option`` for a tier this deployment does not offer, ``unsupported_media_type``,
                ``models_missing`` when the tier (or OCR of a scan) needs absent models, ``document_too_complex``
                past the parse deadline or memory cap, and MinerU's own failures on the document, typed.
            ParseFault: this project's code failed in the parse process (a bug: ``internal_error``).
        """
        assert isinstance(options, MinerUOptions)
        if not self._started or self._process is None:
            raise OCRError("backend_unavailable", f"the MinerU engine is not ready: {self._error or 'not started'}")
        if doc.media_type not in SUFFIXES:
            raise OCRError(
                "unsupported_media_type", f"MinerU does not read {doc.media_type}", accepted=sorted(SUFFIXES)
            )
        tier = self._tier(options)
        with self._lock:  # one document at a time through the one parse process
            self._process.wait_ready()  # a replacement may still be warming up: its warm tiers decide the deadline
            deadline = self.deadline_s(doc, tier)
            try:
                answer = self._process.call(
                    ("run", doc, pages, options, tier), deadline_s=deadline, memory_mb=self.config.parse_memory_mb
                )
            except ParseTimeout:
                raise self._replaced(
                    f"parsing did not finish within {deadline:.0f} s, this backend's deadline for the document "
                    "(parse_timeout_s + parse_timeout_per_page_s per page)",
                    {
                        "parse_timeout_s": self.config.parse_timeout_s,
                        "parse_timeout_per_page_s": self.config.parse_timeout_per_page_s,
                    },
                ) from None
            except ParseOverMemory as e:
                raise self._replaced(
                    f"parsing needed more than {self.config.parse_memory_mb} MiB ({e.rss_mb:.0f} MiB resident)",
                    {"parse_memory_mb": self.config.parse_memory_mb},
                ) from None
            except ParseDied as e:
                self._respawn()
                killed = e.returncode == -9
                raise OCRError(
                    ErrorCode.DOCUMENT_TOO_COMPLEX if killed else ErrorCode.INVALID_DOCUMENT,
                    "the MinerU parse process "
                    + ("was killed (out of memory?)" if killed else f"crashed ({e})")
                    + " while reading this document",
                ) from None
            kind = answer[0]
            if kind == "ok":
                self._process.facts.warm_tiers.add(tier)
                return answer[1]
            if kind == "fatal":  # the process answered and ended: its successor warms up while the client retries
                logger.error("MinerU parse process unfit after a backend failure: %s", answer[1])
                self._process.kill()
                self._respawn()
                raise answer[1]
        if kind == "error":
            raise answer[1]
        _, name, message, trace = answer
        logger.error("MinerU parse process: %s: %s\n%s", name, message, trace)
        raise ParseFault(f"{name}: {message}")

    def classify_error(self, error: Exception) -> OCRError | None:
        """A parse process that cannot be started is the backend being unavailable (503, retry later); a fault of
        this project's code in it (:class:`ParseFault`) stays a server fault. MinerU's own failures on a document
        arrive typed already (:func:`backends.mineru.errors.classify_parse_error`, in the parse process)."""
        if isinstance(error, ParseStartError):
            return OCRError(ErrorCode.BACKEND_UNAVAILABLE, f"the MinerU backend cannot parse right now: {error}")
        return None

    def deadline_s(self, doc: Document, tier: Tier | None = None) -> float:
        """The parse deadline of ``doc`` with ``tier``: the base, plus the per-page allowance for each selected page,
        plus ``parse_start_timeout_s`` once when ``tier`` needs models the parse process has not built yet (loading
        them - for the VLM on a GPU, weights, compilation, CUDA graphs - is start-up work, not the document's)."""
        structured = doc.media_type in STRUCTURED_TYPES
        pages = 0 if structured else len(doc.page_indices)
        deadline = self.config.parse_timeout_s + self.config.parse_timeout_per_page_s * pages
        warm = self._process.facts.warm_tiers if self._process is not None else set()
        if tier is not None and tier != "flash" and not structured and tier not in warm:
            deadline += self.config.parse_start_timeout_s
        return deadline

    def _replaced(self, message: str, limits: dict[str, Any]) -> OCRError:
        """The process was killed: start its successor now (it warms up while the client reads the error)."""
        logger.warning("MinerU parse process killed: %s", message)
        self._respawn()
        return OCRError(ErrorCode.DOCUMENT_TOO_COMPLEX, message, accepted=limits)

    def _respawn(self) -> None:
        if self._process is not None:
            try:
                self._process.spawn()
            except OSError as e:  # the next request tries again
                logger.error("could not start a new MinerU parse process: %s", e)

    def _tier(self, options: MinerUOptions) -> Tier:
        tier = options.tier or self.config.default_tier
        if tier not in self.config.tiers:
            raise OCRError(
                "invalid_option",
                f"tier {tier!r} is not offered by this MinerU backend",
                accepted={"tier": list(self.config.tiers)},
            )
        return tier


def _package_version() -> str | None:
    try:
        return mineru_version()
    except ImportError:
        try:
            return dist_version("mineru")
        except PackageNotFoundError:
            return None


__all__ = ["MinerUEngine", "MinerUConfig", "MinerUOptions", "SUFFIXES", "page_range_expr"]
