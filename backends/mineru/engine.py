"""The MinerU 4 engine: whole documents through ``mineru.parser.parse``, mapped into the unified schema.

MinerU parses the *document* (its bytes and a page range), not page images: it reads the PDF's text layer, runs
its layout/OCR/VLM models per tier, and merges content across pages. So this engine asks the runner for every
page in one ``run()`` call (``batch_pages`` is huge) and needs only the pages' pixel sizes (``needs_pixels`` is
false: the runner renders each page afterwards, one at a time, just to draw its boxes), to
turn MinerU's 0-1 boxes into pixels on exactly the images the boxes image is drawn on. Office, HTML, EPUB and
CSV files arrive with no page images and come back as one logical page without geometry.

Before MinerU runs, the engine decides whether the request needs models (tier, and for flash whether the pages
need OCR — see :mod:`backends.mineru.textlayer`) and fails fast with ``models_missing`` if they are not on disk
(:mod:`backends.mineru.models`). MinerU runs one document at a time per engine: its own API is not built for
concurrent documents in one process, and a replica is the unit of parallelism.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

from backends.base import EngineHealth, EngineOptions, EngineRun, OCREngine
from backends.mineru.config import MinerUConfig, MinerUOptions, Tier
from backends.mineru.mapping import MappingOptions, map_page, merge_pages
from backends.mineru.models import check_models, ensure_models, needs_models, tier_readiness
from backends.mineru.environment import Runtime, apply_environment, mineru_version, vlm_config
from backends.mineru.textlayer import TextLayer, inspect_text_layer
from shared.documents import (
    EPUB,
    HTML,
    IMAGE_TYPES,
    OFFICE_TYPES,
    PAGED_TYPES,
    PDF,
    PDFIUM_LOCK,
    STRUCTURED_TYPES,
    Document,
    PageImage,
)
from shared.errors import OCRError
from shared.schema import ModelInfo, PageResult

logger = logging.getLogger(__name__)

SUFFIXES: dict[str, str] = {
    PDF: "pdf",
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/tiff": "tiff",
    "image/webp": "webp",
    "image/bmp": "bmp",
    OFFICE_TYPES["word/document.xml"]: "docx",
    OFFICE_TYPES["ppt/presentation.xml"]: "pptx",
    OFFICE_TYPES["xl/workbook.xml"]: "xlsx",
    EPUB: "epub",
    HTML: "html",
    "text/csv": "csv",
}
"""Media type -> file suffix MinerU dispatches on (it reads a path; CSV is recognised by its suffix only)."""


class MinerUEngine(OCREngine):
    """MinerU 4 (``mineru`` on PyPI, formerly ``magic-pdf``), tiers flash / basic / standard / advanced."""

    kind = "mineru"
    media_types = PAGED_TYPES | STRUCTURED_TYPES
    batch_pages = 1_000_000  # the whole document in one run(): MinerU works on documents, not pages
    needs_pixels = False  # it reads doc.data; page sizes are enough to place its boxes
    Config = MinerUConfig
    Options = MinerUOptions

    def __init__(self, config: MinerUConfig | dict[str, Any] | None = None) -> None:
        super().__init__(config)
        self.config: MinerUConfig
        self._runtime: Runtime | None = None
        self._lock = threading.Lock()
        self._error: str | None = None
        self._started = False

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Set MinerU's offline environment, import it, check the default tier's models, warm up.

        Raises:
            OCRError: ``models_missing`` when the default tier needs models that are absent and
                ``require_default_tier_models`` is set.
        """
        try:
            self._runtime = apply_environment(self.config)
            if self.config.log_level not in ("trace", "debug", "info"):
                logging.getLogger("pypdf").setLevel(logging.ERROR)  # MinerU's classifier reads fonts with pypdf
            import mineru.parser  # noqa: F401  (the heavy import, here rather than in the first request)

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
            if self.config.warmup:
                self._warm_up()
            self._started = True
            self._error = None
        except OCRError as e:
            self._error = e.message
            raise
        except Exception as e:
            self._error = f"MinerU failed to start: {e}"
            raise

    def _warm_up(self) -> None:
        from shared.textpdf import article_pages

        started = time.perf_counter()
        sentence = "MinerU warm-up page with enough extractable text to be classified as a born-digital document."
        data = article_pages([[sentence, sentence]], titles=["Warm-up"])
        self._parse(data, suffix="pdf", tier="flash", options=MinerUOptions(), page_range="")
        logger.info("MinerU warm-up (flash, 1 page) took %.2f s", time.perf_counter() - started)

    def health(self) -> EngineHealth:
        """Readiness, model id ("mineru-4 <default tier>"), package version, device and per-tier model presence."""
        device = self._runtime.device if self._runtime else None
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
        if self._runtime is not None:
            info["models_dir"] = self._runtime.models_dir
            try:
                from mineru.model.runtime.device import resolve_small_model_backend
                from mineru.model.vlm.selector import resolve_vlm_engine

                info["small_backend"] = resolve_small_model_backend(self.config.small_backend)
                info["vlm"] = self.config.vlm_server_url or resolve_vlm_engine(self.config.vlm_engine)
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
        """Parse ``doc`` (its selected pages) with MinerU and map the result onto ``pages``' images.

        Raises:
            OCRError: ``invalid_option`` for a tier this deployment does not offer, ``unsupported_media_type``,
                ``models_missing`` when the tier (or OCR of a scan) needs absent models.
        """
        assert isinstance(options, MinerUOptions)
        if not self._started:
            raise OCRError("backend_unavailable", f"the MinerU engine is not ready: {self._error or 'not started'}")
        if doc.media_type not in SUFFIXES:
            raise OCRError(
                "unsupported_media_type", f"MinerU does not read {doc.media_type}", accepted=sorted(SUFFIXES)
            )
        tier = self._tier(options)
        warnings: list[str] = []
        structured = doc.media_type in STRUCTURED_TYPES
        if structured and tier != "flash":
            warnings.append(f"tier {tier} applies to PDFs and images; {doc.media_type} is parsed natively (flash)")
            tier = "flash"

        if structured:
            layer = TextLayer(classification="txt")
        else:
            with PDFIUM_LOCK:
                layer = self._text_layer(doc)
        needs_ocr = options.ocr_mode == "ocr" or (options.ocr_mode == "auto" and layer.classification == "ocr")
        if needs_models(tier, needs_ocr):
            reason = _ocr_reason(doc, layer) if tier == "flash" else ""
            ensure_models(tier, needs_ocr=needs_ocr, config=self.config, reason=reason)
            self._ensure_dependencies(tier)
        elif layer.pages_without_text:
            warnings.append(
                "pages without a text layer: "
                + ", ".join(str(i + 1) for i in layer.pages_without_text)
                + f" — tier {tier} without OCR returns no text for them (use ocr_mode=ocr or a higher tier)"
            )

        whole = doc.media_type != PDF or doc.page_indices == list(range(doc.page_count))
        page_range = "" if whole else page_range_expr(doc.page_indices)
        started = time.perf_counter()
        with self._lock, PDFIUM_LOCK:  # one parse at a time; no rendering by the runner meanwhile (PDFium)
            result = self._parse(
                doc.data, suffix=SUFFIXES[doc.media_type], tier=tier, options=options, page_range=page_range
            )
        elapsed = time.perf_counter() - started
        logger.info("MinerU %s parsed %s (%d pages) in %.2f s", tier, doc.name, len(result.pages), elapsed)

        mapping = MappingOptions(
            furniture_band=self.config.furniture_band,
            include_page_furniture=options.include_page_furniture,
            embed_images=options.embed_images,
        )
        results = self._map(doc, pages, result, mapping, warnings)
        return EngineRun(
            pages=results,
            raw=result.middle_json.to_dict(skip_defaults=True, exclude_block_fields={"image_base64"}),
            source_markdown=_source_markdown(result, options.embed_images),
            warnings=warnings,
        )

    def _tier(self, options: MinerUOptions) -> Tier:
        tier = options.tier or self.config.default_tier
        if tier not in self.config.tiers:
            raise OCRError(
                "invalid_option",
                f"tier {tier!r} is not offered by this MinerU backend",
                accepted={"tier": list(self.config.tiers)},
            )
        return tier

    def _text_layer(self, doc: Document) -> TextLayer:
        try:
            return inspect_text_layer(doc.data, doc.media_type, list(doc.page_indices))
        except OCRError:
            raise
        except Exception as e:  # a PDF PDFium cannot classify: MinerU will have its say
            logger.warning("could not inspect the text layer of %s: %s", doc.name, e)
            return TextLayer(classification="txt")

    def _ensure_dependencies(self, tier: Tier) -> None:
        """The Python packages the tier's runtimes need (e.g. the VLM engine), named before MinerU trips on them."""
        if tier == "flash":
            return
        from mineru.parser.tier import installed_distribution_name, missing_modules_for_tier

        deployment_tier = "basic" if tier == "basic" else "standard"
        missing = missing_modules_for_tier(deployment_tier, vlm_config=vlm_config(self.config))
        if missing:
            name = installed_distribution_name()
            raise OCRError(
                "backend_unavailable",
                f"MinerU tier {tier!r} needs Python packages that are not installed: {', '.join(missing)} "
                f"(install {name}[torch] for torch, {name}[full] for vLLM)",
                accepted={"missing_modules": missing},
            )

    def _parse(self, data: bytes, *, suffix: str, tier: str, options: MinerUOptions, page_range: str) -> Any:
        """``mineru.parser.parse`` on the bytes (written to a private temporary file: MinerU reads paths)."""
        from mineru.errors import InvalidRequestError
        from mineru.parser import parse

        with tempfile.TemporaryDirectory(prefix="mineru-") as tmp:
            path = Path(tmp) / f"document.{suffix}"
            path.write_bytes(data)
            try:
                return parse(
                    path,
                    tier=tier,  # type: ignore[arg-type]
                    ocr_mode=options.ocr_mode,
                    image_analysis=options.image_analysis,
                    page_range=page_range,
                    vlm_config=vlm_config(self.config),
                )
            except FileNotFoundError as e:
                # Backstop for a model our pre-check did not predict (MINERU_MODEL_SOURCE=local fails fast).
                if "Model repo" in str(e) or "not ready" in str(e):
                    raise OCRError(
                        "models_missing", f"MinerU tier {tier!r} needs models that are absent: {e}"
                    ) from None
                raise
            except InvalidRequestError as e:
                raise OCRError("invalid_page_range", f"MinerU refused the request: {e}") from None

    def _map(
        self, doc: Document, pages: list[PageImage], result: Any, mapping: MappingOptions, warnings: list[str]
    ) -> list[PageResult]:
        if doc.media_type in STRUCTURED_TYPES:
            logical = [map_page(p, index=0, width=0, height=0, dpi=None, options=mapping) for p in result.pages]
            return [merge_pages(logical)]
        by_index = {p.page_idx: p for p in result.pages}
        if not pages:  # called without page images: map onto the selected pages, boxes without pixels
            warnings.append("no page images were given: boxes are left empty")
            pages = [PageImage(index=i, image=None, dpi=None) for i in doc.page_indices]
        out: list[PageResult] = []
        for page in pages:
            width, height = page.size
            native = by_index.get(page.index)
            if native is None:
                out.append(
                    PageResult(
                        index=page.index,
                        width=width,
                        height=height,
                        dpi=page.dpi,
                        warnings=["MinerU returned nothing for this page (unreadable or skipped)"],
                    )
                )
                continue
            out.append(map_page(native, index=page.index, width=width, height=height, dpi=page.dpi, options=mapping))
        return out


def page_range_expr(indices: list[int]) -> str:
    """0-based indices as MinerU's 1-based range expression, runs collapsed: [0, 1, 2, 6] -> "1-3,7"."""
    parts: list[str] = []
    run_start = previous = None
    for i in sorted(set(indices)):
        if previous is not None and i == previous + 1:
            previous = i
            continue
        if run_start is not None:
            parts.append(f"{run_start + 1}" if run_start == previous else f"{run_start + 1}-{previous + 1}")
        run_start = previous = i
    if run_start is not None:
        parts.append(f"{run_start + 1}" if run_start == previous else f"{run_start + 1}-{previous + 1}")
    return ",".join(parts)


def _ocr_reason(doc: Document, layer: TextLayer) -> str:
    if doc.media_type in IMAGE_TYPES:
        return "an image needs OCR"
    if layer.pages_without_text:
        pages = ", ".join(str(i + 1) for i in layer.pages_without_text)
        return f"the document needs OCR: page(s) {pages} have no text layer"
    return "the document needs OCR (MinerU classifies its text layer as unusable)"


def _source_markdown(result: Any, embed_images: bool) -> str | None:
    """MinerU's own whole-document markdown (cross-page merging, furniture dropped), images as references."""

    def reference(block: Any) -> str:
        return f"![{block.type}](#block-{block.index if block.index is not None else 0})"

    try:
        return result.markdown(image_renderer=None if embed_images else reference)
    except Exception as e:
        logger.warning("MinerU could not render its markdown: %s", e)
        return None


def _package_version() -> str | None:
    try:
        return mineru_version()
    except ImportError:
        try:
            return dist_version("mineru")
        except PackageNotFoundError:
            return None


__all__ = ["MinerUEngine", "MinerUConfig", "MinerUOptions", "SUFFIXES", "page_range_expr"]
