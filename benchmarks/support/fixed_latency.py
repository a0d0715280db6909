"""An engine of fixed per-page latency, for benchmarks where the machine's cores must not decide the result.

It stands for a GPU model replica: one batch at a time (a lock per replica), ``page_s`` seconds per page spent
sleeping, not computing, so N replicas on a 2-core machine can do N times the work of one, as N GPUs would.
Hosted like any engine, by import path: ``engine: benchmarks.support.fixed_latency:FixedLatencyEngine``.
"""

from __future__ import annotations

import os
import threading
import time

from pydantic import Field

from backends.base import EngineConfig, EngineHealth, EngineOptions, EngineRun, OCREngine
from shared.boxes import make_block
from shared.documents import Document, PageImage
from shared.schema import ModelInfo, PageResult


class FixedLatencyConfig(EngineConfig):
    page_s: float = Field(default=0.25, ge=0, le=60, description="Seconds each page takes.")


class FixedLatencyEngine(OCREngine):
    kind = "fixed-latency"
    batch_pages = 64
    Config = FixedLatencyConfig
    Options = EngineOptions

    def start(self) -> None:
        self.lock = threading.Lock()  # one batch at a time, like a model on one GPU

    def health(self) -> EngineHealth:
        return EngineHealth(
            ready=True, model=ModelInfo(id="fixed-latency", engine="sleep", device="none"), info={"pid": os.getpid()}
        )

    def run(self, doc: Document, pages: list[PageImage], options: EngineOptions) -> EngineRun:
        assert isinstance(self.config, FixedLatencyConfig)
        with self.lock:
            time.sleep(self.config.page_s * len(pages))
        results = []
        for page in pages:
            w, h = page.size
            text = f"page {page.index + 1}"
            block = make_block("text", text, [0, 0, w, h], width=w, height=h, score=1.0)
            results.append(PageResult(index=page.index, width=w, height=h, dpi=page.dpi, markdown=text, blocks=[block]))
        return EngineRun(pages=results, raw={"pid": os.getpid()})
