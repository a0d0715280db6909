"""A stand-in engine for tests of routing, placement and failure handling, where inference is not under test.

Test-only: not in the product's registry. Configs name it by import path (``engine: FAKE``), which works in
replicas because Ray puts the driver's working directory (the repository) on their path.

It answers instantly with one block per page that says which page it saw, can be told to sleep (to hold a
replica busy) or to fail, and reports the GPU ids Ray gave its replica, so placement tests can read them.
"""

from __future__ import annotations

import os
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from backends.base import EngineConfig, EngineHealth, EngineOptions, EngineRun, OCREngine
from shared.boxes import make_block, scale_box
from shared.documents import Document, PageImage
from shared.schema import ModelInfo, PageResult

FAKE = "tests.support.fake_engine:FakeEngine"
"""What a backend config's ``engine`` says to host this engine."""


class FakeBlock(BaseModel):
    """A block the fake engine puts on every page, its box as fractions of the page."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str = "text"
    text: str
    box: tuple[float, float, float, float]


class FakeConfig(EngineConfig):
    text: str = Field(default="fake text", description="Text put on every page.")
    blocks: tuple[FakeBlock, ...] = Field(
        default=(), description="Blocks to answer on every page instead of the one 'text' block (agreement tests)."
    )
    healthy: bool = Field(default=True, description="What health() reports.")
    crashable: bool = Field(
        default=True, description="Whether the crash option is obeyed (a 'steady' twin ignores it)."
    )


class FakeOptions(EngineOptions):
    sleep_s: float = Field(default=0.0, ge=0.0, le=60.0, description="Seconds to sleep before answering.")
    fail: bool = Field(default=False, description="Raise a server-side error instead of answering.")
    crash: bool = Field(default=False, description="Kill the hosting process (fault-injection tests).")
    poison: bool = Field(default=False, description="Make health() report unhealthy from now on (health tests).")


class FakeEngine(OCREngine):
    kind = "fake"
    batch_pages = 8
    Config = FakeConfig
    Options = FakeOptions

    def start(self) -> None:
        self.healthy = self.config.healthy

    def health(self) -> EngineHealth:
        return EngineHealth(
            ready=self.healthy,
            model=ModelInfo(id="fake", version="0", engine="fake", device="cpu"),
            detail=None if self.healthy else "engine reported itself broken",
            info={"pid": os.getpid(), "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")},
        )

    def run(self, doc: Document, pages: list[PageImage], options: EngineOptions) -> EngineRun:
        assert isinstance(options, FakeOptions)
        started = time.time()
        if options.sleep_s:
            time.sleep(options.sleep_s)
        if options.crash and self.config.crashable:
            os._exit(1)
        if options.poison:
            self.healthy = False
        if options.fail:
            raise RuntimeError("fake engine failure")
        results: list[PageResult] = []
        for page in pages:
            w, h = page.size
            if self.config.blocks:
                blocks = [
                    make_block(b.type, b.text, scale_box(b.box, sx=w, sy=h), width=w, height=h, score=1.0)
                    for b in self.config.blocks
                ]
            else:
                text = f"{self.config.text} page {page.index + 1}"
                blocks = [make_block("text", text, [w * 0.1, h * 0.1, w * 0.9, h * 0.2], width=w, height=h, score=1.0)]
            markdown = "\n\n".join(b.text for b in blocks)
            results.append(
                PageResult(index=page.index, width=w, height=h, dpi=page.dpi, markdown=markdown, blocks=blocks)
            )
        raw: dict[str, Any] = {
            "pages": len(pages),
            "pid": os.getpid(),
            "node_id": _node_id(),
            "started": started,
            "ended": time.time(),
        }
        return EngineRun(pages=results, raw=raw, source_markdown="\n\n".join(p.markdown for p in results))


def _node_id() -> str | None:
    """The Ray node this replica runs on (None outside Ray): where a job's chunk ran, for the cluster tests."""
    try:
        import ray

        return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
    except Exception:
        return None
