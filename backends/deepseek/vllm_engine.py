"""The vLLM runner: a thin shell around ``AsyncLLMEngine`` that submits every page at once.

Continuous batching is the reason to run vLLM: all pages of a PDF, and the pages of concurrent requests, must be
in flight together. ``engine.run()`` is synchronous and may be called from several replica threads at once, so
the runner owns one asyncio loop in a background thread hosting the async engine; each call submits all its
pages as separate requests onto that loop and waits for them together. vLLM schedules everything it holds as
one continuous batch (up to ``max_num_seqs`` sequences).

Everything that decides *what* is sent (engine arguments, sampling parameters, the n-gram guard's arguments,
request ids and bookkeeping) lives in :mod:`backends.deepseek.vllm_inputs` and is tested without vLLM; vLLM is
imported only in :meth:`VLLMRunner.load`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from PIL import Image

from backends.deepseek.config import DEFAULT_MODELS, DeepSeekConfig
from backends.deepseek.modes import ModeSpec, Variant
from backends.deepseek.runtime import Generation, RunPlan
from backends.deepseek.source import ModelSource, download_hint
from backends.deepseek.vllm_inputs import build_requests, collect, engine_kwargs
from shared.errors import OCRError

logger = logging.getLogger(__name__)

LOGITS_PROCESSOR_PATHS: tuple[str, ...] = ("vllm.model_executor.models.deepseek_ocr",)
"""Where vLLM defines ``NGramPerReqLogitsProcessor`` (the recipe imports it from here, for OCR and OCR-2)."""


def import_vllm() -> Any:
    """The ``vllm`` module, or a clear error saying how to get it."""
    try:
        import vllm
    except ImportError as e:
        raise OCRError(
            "backend_unavailable",
            f"the vLLM engine needs vllm (>= 0.11.1 for DeepSeek-OCR, >= 0.16.0 for OCR-2) on a CUDA machine: "
            f"pip install 'ocrserve[vllm]'; or set engine: transformers for DeepSeek-OCR-2 ({e})",
        ) from None
    return vllm


def require_cuda() -> None:
    """Fail fast, with the likely cause, when this process sees no CUDA device (vLLM would fail obscurely)."""
    import os

    import torch

    if not torch.cuda.is_available():
        raise OCRError(
            "backend_unavailable",
            "the vLLM engine needs a CUDA GPU and this process sees none (CUDA_VISIBLE_DEVICES="
            f"{os.environ.get('CUDA_VISIBLE_DEVICES')!r}; give the deployment ray_actor_options num_gpus: 1)",
        )


def ngram_logits_processor() -> Any:
    """vLLM's ``NGramPerReqLogitsProcessor`` class."""
    import importlib

    for path in LOGITS_PROCESSOR_PATHS:
        try:
            return importlib.import_module(path).NGramPerReqLogitsProcessor
        except (ImportError, AttributeError):
            continue
    raise OCRError(
        "backend_unavailable",
        "this vLLM has no NGramPerReqLogitsProcessor (DeepSeek-OCR support needs vllm >= 0.11.1); "
        "upgrade vllm or set ngram_guard: false",
    )


class VLLMRunner:
    """DeepSeek-OCR / OCR-2 on vLLM's async engine."""

    name = "vllm"

    def __init__(self, config: DeepSeekConfig, source: ModelSource, variant: Variant) -> None:
        self.config = config
        self.source = source
        self.variant = variant
        self._engine: Any = None
        self._sampling_cls: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def load(self) -> None:
        vllm = import_vllm()
        require_cuda()
        processors = [ngram_logits_processor()] if self.config.ngram_guard else []
        kwargs = engine_kwargs(self.config, self.source.ref, logits_processors=processors)
        logger.info(
            "starting vLLM for %s (%s)", self.source.ref, {k: v for k, v in kwargs.items() if k != "logits_processors"}
        )
        self._start_loop()

        async def create() -> Any:
            return vllm.AsyncLLMEngine.from_engine_args(vllm.AsyncEngineArgs(**kwargs))

        try:
            self._engine = self._submit(create())
        except OSError as e:  # hub unreachable, files missing: same answer as the transformers engine
            self.close()
            hint = download_hint(self.source.hub_id or DEFAULT_MODELS[("vllm", self.variant)])
            message = f"vLLM cannot load {self.source.ref} ({e}); download it with: {hint}"
            raise OCRError("models_missing", message) from None
        self._sampling_cls = vllm.SamplingParams

    def _start_loop(self) -> None:
        """Start the background event loop that hosts the async engine (one per runner)."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="deepseek-vllm-loop", daemon=True)
        self._thread.start()

    def _submit(self, coro: Any) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def adapt(self, spec: ModeSpec) -> ModeSpec:
        return spec

    def generate(self, images: list[Image.Image], plan: RunPlan) -> list[Generation]:
        if self._engine is None:
            raise OCRError("backend_unavailable", "the vLLM engine is not started")
        requests = build_requests(
            images,
            prompt=plan.prompt,
            spec=plan.spec,
            variant=self.variant,
            config=self.config,
            max_new_tokens=plan.max_new_tokens,
        )
        outputs = self._submit(self._run_all(requests))
        return collect(requests, outputs)

    async def _run_all(self, requests: list[Any]) -> dict[str, Any]:
        async def one(request: Any) -> tuple[str, Any]:
            final = None
            params = self._sampling_cls(**request.sampling)
            async for output in self._engine.generate(request.inputs, params, request.request_id):
                final = output
            return request.request_id, final

        tasks = [asyncio.ensure_future(one(r)) for r in requests]
        try:
            return dict(await asyncio.gather(*tasks))
        except BaseException:
            for r, task in zip(requests, tasks, strict=True):
                if not task.done():
                    task.cancel()
                    try:
                        await self._engine.abort(r.request_id)
                    except Exception:  # already finished or engine dead: nothing left to free
                        logger.debug("abort of %s failed", r.request_id, exc_info=True)
            raise

    def device(self) -> str | None:
        return "cuda"

    def info(self) -> dict[str, Any]:
        versions = {}
        for package in ("vllm", "torch", "transformers"):
            try:
                versions[package] = version(package)
            except PackageNotFoundError:
                versions[package] = None
        return {
            **versions,
            "engine_dead": bool(getattr(self._engine, "errored", False)),
            "max_num_seqs": self.config.max_num_seqs,
            "max_model_len": self.config.max_model_len,
            "gpu_memory_utilization": self.config.gpu_memory_utilization,
            "load_format": self.config.load_format,
            "ngram_guard": self.config.ngram_guard,
        }

    def close(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None and hasattr(engine, "shutdown"):
            try:
                engine.shutdown()
            except Exception:
                logger.debug("vLLM shutdown failed", exc_info=True)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join(timeout=10)
            self._loop = None
