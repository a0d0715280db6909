"""MinerU on one document, in the process that imports it: the work the parse process does per request.

Everything that touches the client's bytes with MinerU happens here — the text-layer classification (PDFium and
DocVortex's classifier), the model check that follows from it, ``mineru.parser.parse`` itself, and the mapping of
its result — so all of it runs in the killable parse process (:mod:`backends.mineru.worker`) under the engine's
deadline, never in the replica. Exceptions out of ``parse`` are typed here (:mod:`backends.mineru.errors`); the
mapping after it is this project's code, and its failures stay server faults.

Warm-up: MinerU builds a tier's models on first use, inside ``parse`` - for the VLM tiers on a GPU that is loading
the weights, compiling and capturing CUDA graphs, minutes rather than seconds. The warm-up therefore parses with
the *configured default tier* too (when its models are on disk), under the start deadline
(``parse_start_timeout_s``), so that cost is never paid under a client's parse deadline; a tier still cold in a
process gets the start allowance on its first document (:meth:`backends.mineru.engine.MinerUEngine.deadline_s`).
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from backends.base import EngineRun
from backends.mineru.config import MinerUConfig, MinerUOptions, Tier
from backends.mineru.environment import vlm_config
from backends.mineru.errors import ProcessBroken, classify_parse_error, device_fault
from backends.mineru.mapping import MappingOptions, map_page, merge_pages
from backends.mineru.models import check_models, ensure_models, needs_models
from backends.mineru.ocr_mode import TextLayer, inspect_text_layer
from shared.documents import EPUB, HTML, IMAGE_TYPES, OFFICE_TYPES, PDF, STRUCTURED_TYPES, Document, PageImage
from shared.errors import OCRError
from shared.schema import PageResult

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


class DocumentRunner:
    """Runs MinerU in this process: warm-up, then one document per :meth:`run` call.

    Args:
        config: The engine's config (its environment is already applied to this process).
    """

    def __init__(self, config: MinerUConfig) -> None:
        self.config = config

    def warmup_tiers(self) -> list[Tier]:
        """The tiers the warm-up parses with: flash (no models, cheap) and the default tier when its models
        (OCR included) are on disk. A default tier without its models is left cold: its requests get
        ``models_missing`` anyway."""
        tiers: list[Tier] = ["flash"]
        default = self.config.default_tier
        if default != "flash" and check_models(default, needs_ocr=True, config=self.config).ready:
            tiers.append(default)
        return tiers

    def warm_up(self, tiers: list[Tier] | None = None) -> dict[str, float]:
        """Parse a tiny generated born-digital PDF with each tier, so no client's document pays for loading models.

        flash parses it as it is (no models); a model tier parses it with ``ocr_mode="ocr"``, so its layout, OCR
        and (standard, advanced) VLM models are all built.

        Args:
            tiers: Tiers to warm (default :meth:`warmup_tiers`).

        Returns:
            Seconds each tier took.

        Raises:
            OCRError: a tier's warm-up failed (``backend_unavailable`` for a device or engine failure).
        """
        from backends.textpdf import article_pages

        sentence = "MinerU warm-up page with enough extractable text to be classified as a born-digital document."
        data = article_pages([[sentence, sentence]], titles=["Warm-up"])
        seconds: dict[str, float] = {}
        for tier in self.warmup_tiers() if tiers is None else tiers:
            started = time.perf_counter()
            options = MinerUOptions(ocr_mode="auto" if tier == "flash" else "ocr")
            self.parse(data, suffix="pdf", tier=tier, options=options, page_range="")
            seconds[tier] = round(time.perf_counter() - started, 3)
        return seconds

    def check_vlm_server(self, timeout_s: float = 5.0) -> dict[str, Any] | None:
        """Ask the configured VLM server for its models, as MinerU's HTTP client does first (``GET .../v1/models``).

        From inside the sealed process, so it also proves the sandbox lets the operator's endpoint through. A
        server that does not answer is reported (health), not fatal: it may come up after this replica.

        Returns:
            ``{"url", "reachable", "status" | "error", "models"}``, or None without a configured server.
        """
        url = self.config.vlm_server_url
        if not url:
            return None
        models_url = vlm_models_url(url)
        report: dict[str, Any] = {"url": models_url, "reachable": False}
        try:
            with urllib.request.urlopen(models_url, timeout=timeout_s) as response:  # noqa: S310 (operator's URL)
                report.update(reachable=True, status=response.status)
                body = response.read(1 << 16)
        except urllib.error.HTTPError as e:  # it answered: reachable, but not an OpenAI-compatible models list
            report.update(reachable=True, status=e.code)
            return report
        except Exception as e:
            report["error"] = f"{type(e).__name__}: {e}"[:300]
            logger.warning("MinerU VLM server %s is not reachable: %s", models_url, report["error"])
            return report
        try:
            report["models"] = [m.get("id") for m in json.loads(body).get("data", [])]
        except (ValueError, AttributeError, TypeError):
            report["models"] = None
        return report

    def run(self, doc: Document, pages: list[PageImage], options: MinerUOptions, tier: Tier) -> EngineRun:
        """Parse ``doc`` (its selected pages) with ``tier`` and map the result onto ``pages``' sizes.

        Raises:
            OCRError: ``models_missing`` when the tier (or OCR of a scan) needs absent models,
                ``backend_unavailable`` when the tier's packages are not installed, and whatever MinerU's own
                failure on the document means (:func:`~backends.mineru.errors.classify_parse_error`).
        """
        warnings: list[str] = []
        structured = doc.media_type in STRUCTURED_TYPES
        if structured and tier != "flash":
            warnings.append(f"tier {tier} applies to PDFs and images; {doc.media_type} is parsed natively (flash)")
            tier = "flash"

        layer = TextLayer(classification="txt") if structured else self._text_layer(doc)
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
        result = self.parse(
            doc.data, suffix=SUFFIXES[doc.media_type], tier=tier, options=options, page_range=page_range
        )
        logger.info(
            "MinerU %s parsed %s (%d pages) in %.2f s", tier, doc.name, len(result.pages), time.perf_counter() - started
        )

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

    def parse(self, data: bytes, *, suffix: str, tier: str, options: MinerUOptions, page_range: str) -> Any:
        """``mineru.parser.parse`` on the bytes, written to a private temporary file (MinerU reads paths).

        HTML gets a source context without a local resource root, so no reference in it resolves to a file.

        Raises:
            OCRError: every exception ``parse`` raises, typed (:func:`classify_parse_error`).
        """
        from mineru.parser import parse

        from backends.mineru.sandbox import html_source_context

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
                    source_context=html_source_context() if suffix == "html" else None,
                    vlm_config=vlm_config(self.config),
                )
            except Exception as e:  # MemoryError and RecursionError included: the document is the cause
                typed = classify_parse_error(e, tier=tier)
                if device_fault(e) is not None:
                    logger.error("MinerU's %s tier failed on this backend: %s", tier, typed, exc_info=e)
                    raise ProcessBroken(typed) from None
                logger.warning("MinerU failed on a document: %s (%s)", typed, type(e).__name__)
                raise typed from None

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


def vlm_models_url(server_url: str) -> str:
    """The models list of an OpenAI-compatible server, as mineru-vl-utils' HTTP client builds it: a URL that ends
    in a version segment (``.../v1``) keeps it, one ending in ``/`` keeps its path, any other keeps only its origin;
    then ``/<version>/models``."""
    keep_path = server_url.endswith("/")
    normalized = server_url.rstrip("/")
    versioned = re.fullmatch(r"(https?://[^/]+(?:/.+?)?)/(v\d+)", normalized)
    if versioned:
        return f"{versioned.group(1)}/{versioned.group(2)}/models"
    origin = re.match(r"^(https?://[^/]+)", normalized)
    base = normalized if keep_path or origin is None else origin.group(1)
    return f"{base}/v1/models"


def page_range_expr(indices: list[int]) -> str:
    """0-based indices as MinerU's 1-based range expression, runs collapsed: [0, 1, 2, 6] -> "1-3,7"."""
    runs: list[list[int]] = []
    for i in sorted(set(indices)):
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ",".join(f"{a + 1}" if a == b else f"{a + 1}-{b + 1}" for a, b in runs)


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
