"""A stand-in engine for tests of routing, placement and failure handling, where inference is not under test.

Not in the product's registry: the tests and the benchmarks that measure the service itself name it by import path
(``engine: FAKE``), which works in replicas because Ray puts the driver's working directory (the repository) on
their path, or a benchmark gives them the repository's root (:func:`benchmarks.support.ray_worker_env`).

It answers instantly with one block per page that says which page it saw, can be told to sleep (to hold a
replica busy), to hold its answer until a test opens a gate (to decide the order of events without timing them),
to fail, or to refuse every request as an engine without its models does, and reports the GPU ids Ray gave its
replica, so placement tests can read them. Deploying it takes ``allow_custom_engines: true`` in the app's args.

With ``tensor_parallel_size`` above 1 it does at start what vLLM's Ray executor does for a tensor-parallel engine
(``vllm/v1/executor/ray_executor.py``): one worker actor per GPU bundle of the replica's placement group
(``num_gpus: 1, num_cpus: 0``, scheduled into that bundle), and reports where each runs and which GPU it sees.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from backends.base import EngineConfig, EngineHealth, EngineOptions, EngineRun, OCREngine
from shared.boxes import make_block, scale_box
from shared.documents import Document, PageImage
from shared.errors import OCRError
from shared.schema import ErrorCode, ModelInfo, PageResult

FAKE = "benchmarks.support.fake_engine:FakeEngine"
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
    tensor_parallel_size: int = Field(
        default=1, ge=1, description="GPUs a replica shards over: one worker actor per GPU, as vLLM's Ray executor."
    )
    fail_start: Literal["", "cuda_oom", "value_error", "models_missing"] = Field(
        default="",
        description="Make start() raise what an engine's library raises when it cannot load: torch's CUDA "
        "out-of-memory error, a ValueError, or models_missing (start-up failure tests).",
    )

    gate_dir: str | None = Field(
        default=None,
        description="Directory of the gates the 'hold' option waits on: a gate is open once a file of its name exists "
        "there (a test creates it). Set by the test that deploys the backend, never by a request.",
    )
    hold_timeout_s: float = Field(
        default=300.0, gt=0, description="Longest wait for a gate; then the request fails (a hang guard)."
    )
    refuse: ErrorCode | None = Field(
        default=None,
        description="Refuse every request with this error, as a real engine does (e.g. models_missing: its models "
        "are absent).",
    )

    def devices_per_replica(self) -> int:
        return self.tensor_parallel_size


class FakeOptions(EngineOptions):
    sleep_s: float = Field(default=0.0, ge=0.0, le=60.0, description="Seconds to sleep before answering.")
    fail: bool = Field(default=False, description="Raise a server-side error instead of answering.")
    crash: bool = Field(default=False, description="Kill the hosting process (fault-injection tests).")
    poison: bool = Field(default=False, description="Make health() report unhealthy from now on (health tests).")
    hold: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,64}(\{page\})?$",
        description="Answer only once the gate of this name is open (a file in the engine's gate_dir); a file "
        "'<name>.waiting.<id>' is there while a request waits, '<name>.passed.<id>' stays for each one let through "
        "(tests count them). A name ending in '{page}' gets "
        "the number of the call's first page instead ('chunk-{page}': one gate per chunk of a job).",
    )


class FakeEngine(OCREngine):
    kind = "fake"
    batch_pages = 8
    Config = FakeConfig
    Options = FakeOptions

    def start(self) -> None:
        self.healthy = self.config.healthy
        if self.config.fail_start == "cuda_oom":
            import torch

            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 6.00 GiB (GPU 0; 79.1 GiB total)")
        if self.config.fail_start == "value_error":
            raise ValueError("the checkpoint's attention implementation is not supported on this device")
        if self.config.fail_start == "models_missing":
            raise OCRError("models_missing", "the fake model is not on disk")
        self.tensor_parallel: dict[str, Any] = {}
        if self.config.tensor_parallel_size > 1:
            self.tensor_parallel, self._workers = _start_workers(self.config.tensor_parallel_size)

    def health(self) -> EngineHealth:
        return EngineHealth(
            ready=self.healthy,
            model=ModelInfo(id="fake", version="0", engine="fake", device="cpu"),
            detail=None if self.healthy else "engine reported itself broken",
            info={
                "pid": os.getpid(),
                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
                **getattr(self, "tensor_parallel", {}),
            },
        )

    def run(self, doc: Document, pages: list[PageImage], options: EngineOptions) -> EngineRun:
        assert isinstance(options, FakeOptions)
        started = time.time()
        if self.config.refuse is not None:
            raise OCRError(self.config.refuse, f"the fake engine refuses every request ({self.config.refuse.value})")
        if options.hold:
            first = min((p.index for p in pages), default=0) + 1
            self._wait_for_gate(options.hold.replace("{page}", str(first)))
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

    def _wait_for_gate(self, name: str) -> None:
        """Block until ``gate_dir/name`` exists; say so with a ``gate_dir/name.waiting.<id>`` file meanwhile."""
        if self.config.gate_dir is None:
            raise OCRError(ErrorCode.INVALID_OPTION, "this fake backend has no gate_dir: 'hold' cannot work")
        gates = Path(self.config.gate_dir)
        waiting = gates / f"{name}.waiting.{uuid.uuid4().hex}"
        waiting.touch()
        deadline = time.monotonic() + self.config.hold_timeout_s
        try:
            while not (gates / name).exists():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"gate {name!r} stayed closed for {self.config.hold_timeout_s:.0f} s")
                time.sleep(0.05)
        finally:
            waiting.unlink(missing_ok=True)
        (gates / f"{name}.passed.{uuid.uuid4().hex}").touch()  # a record of each call let through (tests count)


def _start_workers(count: int) -> tuple[dict[str, Any], list[Any]]:
    """One worker actor per GPU bundle of this replica's placement group, placed the way vLLM's Ray executor places
    its tensor-parallel workers; what each one sees. The actors live as long as the replica (their owner)."""
    import ray
    from ray.util.placement_group import get_current_placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    group = get_current_placement_group()
    if group is None:
        raise OCRError("backend_unavailable", "tensor_parallel_size > 1 but this replica has no placement group")
    bundles = group.bundle_specs
    gpu_bundles = [i for i, bundle in enumerate(bundles) if bundle.get("GPU")]
    if len(gpu_bundles) < count:
        raise OCRError("backend_unavailable", f"{count} workers need {count} GPU bundles, the group has {bundles}")

    @ray.remote(num_cpus=0, num_gpus=1)
    class Worker:
        def where(self) -> dict[str, Any]:
            return {
                "node_id": ray.get_runtime_context().get_node_id(),
                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            }

    workers = [
        Worker.options(  # type: ignore[attr-defined]
            scheduling_strategy=PlacementGroupSchedulingStrategy(
                placement_group=group, placement_group_bundle_index=index, placement_group_capture_child_tasks=True
            )
        ).remote()
        for index in gpu_bundles[:count]
    ]
    seen = ray.get([w.where.remote() for w in workers], timeout=60)
    return {"placement_group_bundles": bundles, "tp_workers": seen}, workers


def _node_id() -> str | None:
    """The Ray node this replica runs on (None outside Ray): where a job's chunk ran, for the cluster tests."""
    try:
        import ray

        return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
    except Exception:
        return None
