"""The Ray Serve deployment that hosts one OCR engine in a replica, and how callers reach it.

A plain class: the builder applies ``serve.deployment`` with options from config, so this stays testable without
Serve. One class hosts every engine kind; which one is configuration (``BackendSpec.engine``). A replica whose
engine cannot start - models missing, CUDA out of memory, a setting the library refuses - stays up and says so
(``describe()`` → unavailable, requests → 503 ``models_missing`` / ``backend_unavailable``) instead of
crash-looping; a replica whose engine stops working fails ``check_health`` and Ray Serve replaces it.

Errors leave a replica as values (``OCRResponse | ErrorDetail``), never as exceptions: see :mod:`shared.errors`.
:func:`call_backend` is the one way callers (the router, the job runner) turn a handle call back into a response
or an ``OCRError``, Ray's own failures (time-out, backpressure, a dead replica) included.
"""

from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from backends.base import OCREngine
from backends.extraction import run_extraction
from backends.pipeline import run_document
from backends.registry import create_engine
from deployments.cost import ComputeMeter
from shared.documents import Document
from shared.errors import OCRError
from shared.processes import tree_rss_mb
from shared.requests import ExtractRunRequest, RunRequest
from shared.schema import BackendStatus, ComputeUsage, ErrorCode, ErrorDetail, ExtractResponse, OCRResponse, TokenCount

logger = logging.getLogger("ray.serve")

SHARE_ABOVE_BYTES = 100 * 1024
"""Ray copies a call's arguments above 100 KiB (``max_direct_call_object_size``) into its object store, once per
call; a document going to several backends goes there once instead (:func:`shared_document`)."""


class BackendSpec(BaseModel):
    """Which engine a backend deployment hosts, and how it is configured."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Backend name clients use (also the Serve deployment name).")
    engine: str = Field(description="Engine kind from backends.registry, or an engine class as 'module:Class'.")
    engine_config: dict[str, Any] = Field(default_factory=dict, description="The engine's Config fields.")
    max_rss_mb: int | None = Field(
        default=None,
        gt=0,
        description="Recycle the replica (fail its health check, Serve starts a fresh one) when its resident memory, "
        "child processes included, passes this many MiB. A guard for engines whose memory grows across documents.",
    )


class BackendDeployment:
    """Hosts an engine: loads it once, runs documents in a worker thread, reports health."""

    def __init__(self, spec: BackendSpec | dict[str, Any]) -> None:
        self.spec = spec if isinstance(spec, BackendSpec) else BackendSpec.model_validate(spec)
        self.engine: OCREngine = create_engine(self.spec.engine, self.spec.engine_config)
        self.meter = ComputeMeter(_assigned_resources())
        self.start_error: OCRError | None = None
        # the liveness probe's own thread: requests run in the loop's default pool (a few threads per core), and
        # with all of them busy in the engine a probe queued behind them went unanswered for 30 s - Serve then
        # killed a replica that was merely busy, and every request in it
        self._probe = ThreadPoolExecutor(max_workers=1, thread_name_prefix="health-probe")
        try:
            self.engine.start()
        except Exception as e:  # e.g. models_missing, CUDA out of memory: stay up, report it, don't crash-loop
            self.start_error = start_failure(self.spec, self.engine, e)
            logger.warning("backend %s not ready: %s", self.spec.name, self.start_error, exc_info=e)
            return
        logger.info("backend %s ready (engine %s, pid %s)", self.spec.name, self.spec.engine, os.getpid())

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Runtime options from ``user_config``: ``default_options`` become the engine's per-request defaults."""
        self.engine.reconfigure(dict(user_config.get("default_options") or {}))

    async def ocr(self, doc: Document, request: RunRequest) -> OCRResponse | ErrorDetail:
        """OCR a validated document.

        Anything the client can fix or should wait out comes back as an ``ErrorDetail`` value rather than an
        exception: it is an answer, not a fault, so it should not fill the replica's log with tracebacks. An
        engine's own exception is typed by the engine (:meth:`OCREngine.classify_error`) where it knows what it
        means; only what nobody recognises is left to propagate as a server fault.
        """
        try:
            return await self._ocr(doc, request)
        except Exception as e:
            return self._error_value("request", request.request_id, e)

    def _error_value(self, what: str, request_id: str, error: Exception) -> ErrorDetail:
        """``error`` as the value a client-facing failure crosses replicas as: an ``OCRError`` as it is, an engine
        exception as the engine types it. What nobody recognises is raised again (a server fault)."""
        if isinstance(error, OCRError):
            logger.info("%s %s refused: %s", what, request_id, error)
            return error.detail()
        typed = self.engine.classify_error(error)
        if typed is None:
            raise error
        logger.info("%s %s failed in the engine: %s (%s)", what, request_id, typed, type(error).__name__)
        return typed.detail()

    async def _ocr(self, doc: Document, request: RunRequest) -> OCRResponse:
        if self.start_error is not None:
            raise self.start_error
        if doc.media_type not in self.engine.media_types:
            raise OCRError(
                ErrorCode.UNSUPPORTED_MEDIA_TYPE,
                f"backend {self.spec.name!r} cannot read {doc.media_type}",
                accepted=sorted(self.engine.media_types),
            )
        token = self.meter.start()
        try:
            result = await asyncio.to_thread(run_document, self.engine, doc, request, backend=self.spec.name)
        finally:
            spent = self.meter.stop(token)
        if self.meter.resources:
            result.usage.compute = ComputeUsage(
                cpu_seconds=round(spent.get("CPU", 0.0), 4), gpu_seconds=round(spent.get("GPU", 0.0), 4)
            )
        return result

    async def extract(self, doc: Document, request: ExtractRunRequest) -> ExtractResponse | ErrorDetail:
        """Fields of a validated document as JSON constrained to ``request.json_schema``, for engines that can
        (:class:`backends.extraction.Extractor`); errors come back as values, as for :meth:`ocr`."""
        try:
            if self.start_error is not None:
                raise self.start_error
            token = self.meter.start()
            try:
                result = await asyncio.to_thread(
                    run_extraction, self.engine, doc, backend=self.spec.name, request=request
                )
            finally:
                spent = self.meter.stop(token)
            if self.meter.resources:
                result.usage.compute = ComputeUsage(
                    cpu_seconds=round(spent.get("CPU", 0.0), 4), gpu_seconds=round(spent.get("GPU", 0.0), 4)
                )
            return result
        except Exception as e:
            return self._error_value("extraction", request.request_id, e)

    async def count_tokens(self, texts: list[str]) -> TokenCount | ErrorDetail:
        """Tokens of each text by the engine's own model tokenizer, for engines that have one."""
        try:
            if self.start_error is not None:
                raise self.start_error
            if not self.engine.capabilities().counts_tokens:
                raise OCRError(ErrorCode.INVALID_OPTION, f"backend {self.spec.name!r} has no model tokenizer")
            counts = await asyncio.to_thread(self.engine.count_tokens, texts)
        except OCRError as e:
            return e.detail()
        return TokenCount(counts=counts, tokenizer=self.engine.model_info().id)

    async def describe(self) -> BackendStatus:
        """Status for the router's directory and ``GET /v1/backends``."""
        if self.start_error is not None:
            return BackendStatus(
                name=self.spec.name,
                engine=self.spec.engine,
                status="unavailable",
                media_types=sorted(self.engine.media_types),
                detail=self.start_error.message,
                capabilities=self.engine.capabilities(),
                options_schema=options_schema(self.engine),
            )
        health = await asyncio.to_thread(self.engine.health)
        return BackendStatus(
            name=self.spec.name,
            engine=self.spec.engine,
            status="ready" if health.ready else "unhealthy",
            model=health.model,
            media_types=sorted(self.engine.media_types),
            detail=health.detail,
            info={**health.info, **_placement()},
            capabilities=self.engine.capabilities(),
            options_schema=options_schema(self.engine),
        )

    def __del__(self) -> None:
        """Serve calls this when it stops the replica: release the engine now (a vLLM engine core holds a GPU)."""
        engine = getattr(self, "engine", None)
        if engine is not None:
            try:
                engine.close()
            except Exception:  # shutting down: nothing useful to do with it
                logger.debug("closing engine of %s failed", self.spec.name, exc_info=True)

    async def check_health(self) -> None:
        """Ray Serve's liveness probe: raising makes Serve replace this replica.

        Missing models are not a liveness failure (a new replica would lack them too); an engine that was
        running and stopped working is.
        """
        if self.spec.max_rss_mb is not None:
            rss = resident_mb()
            if rss > self.spec.max_rss_mb:
                logger.warning(
                    "backend %s: %.0f MiB resident > max_rss_mb %d: recycling",
                    self.spec.name,
                    rss,
                    self.spec.max_rss_mb,
                )
                raise RuntimeError(f"resident memory {rss:.0f} MiB over max_rss_mb {self.spec.max_rss_mb}")
        if self.start_error is not None:
            return
        health = await asyncio.get_running_loop().run_in_executor(self._probe, self.engine.health)
        if not health.ready:
            raise RuntimeError(f"engine {self.spec.engine} unhealthy: {health.detail}")


def start_failure(spec: BackendSpec, engine: OCREngine, error: Exception) -> OCRError:
    """What an engine's failed ``start()`` means, as the error the replica then answers every request with.

    An ``OCRError`` (``models_missing``, ``backend_unavailable``) as it is; anything else - CUDA out of memory, a
    library's ``ValueError`` - as the engine types it, else ``backend_unavailable`` with its type and message. A
    replica whose start failed never raises from its constructor: Ray Serve would restart it in a loop (and a
    replica that cannot load now will not load on the next try either); it stays up, ``describe()`` says
    ``unavailable`` with the reason, and a redeploy (``serve deploy``) tries again.
    """
    if isinstance(error, OCRError):
        return error
    typed = engine.classify_error(error)
    if typed is not None:
        return typed
    return OCRError(
        ErrorCode.BACKEND_UNAVAILABLE,
        f"backend {spec.name!r} (engine {spec.engine}) failed to start: {type(error).__name__}: {str(error)[:500]}",
    )


def options_schema(engine: OCREngine) -> dict[str, Any]:
    """JSON schema of the engine's per-request ``Options`` with this deployment's ``default_options`` as the
    defaults, so a client (the web page) offers a backend's documented options without knowing its engine."""
    schema = engine.Options.model_json_schema()
    for name, value in engine.defaults.items():
        if name in schema.get("properties", {}):
            schema["properties"][name]["default"] = value
    return schema


def resident_mb() -> float:
    """Resident memory of this process and every process it started (MinerU's parse process and its render
    workers, started from any thread), MiB."""
    return tree_rss_mb(os.getpid())


def _assigned_resources() -> dict[str, float]:
    """The resources Ray reserved for this replica ({} when hosted outside Ray)."""
    try:
        import ray

        if ray.is_initialized():
            return dict(ray.get_runtime_context().get_assigned_resources())
    except Exception:  # not a Ray worker
        pass
    return {}


def _placement() -> dict[str, Any]:
    """Where this replica runs: process, node and the GPUs Ray gave it (for /v1/backends and placement tests)."""
    facts: dict[str, Any] = {"pid": os.getpid(), "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
    try:
        import ray

        facts["node_id"] = ray.get_runtime_context().get_node_id()
        facts["gpu_ids"] = [str(g) for g in ray.get_gpu_ids()]
    except Exception:  # hosted outside Ray (tests)
        pass
    return facts


def shared_document(doc: Document, copies: int) -> Any:
    """``doc`` as ``copies`` concurrent backend calls should get it: put in Ray's object store once when it is
    large and goes to several backends (each call would otherwise copy it there), else ``doc`` itself.

    Pass the result to :func:`call_backend`; the backend replica receives the ``Document`` either way (Ray
    resolves an ``ObjectRef`` passed as a call's argument before the method runs).
    """
    if copies < 2 or doc.size_bytes <= SHARE_ABOVE_BYTES:
        return doc
    import ray

    return ray.put(doc) if ray.is_initialized() else doc


def with_process_transport(handle: Any) -> Any:
    """``handle`` set to the transport this process's Serve is configured for.

    A handle's transport (actor call or gRPC, ``RAY_SERVE_USE_GRPC_BY_DEFAULT``) is fixed where the handle is made:
    in the driver that builds the application, whose environment is not the replica's. Re-optioned here, in the
    replica that calls it, a profile's ``RAY_SERVE_USE_GRPC_BY_DEFAULT: "1"`` (set on the router's runtime
    environment) is what its calls really use. Anything but a Serve handle (a test's stand-in) is returned as is.
    """
    try:
        from ray.serve._private.constants import RAY_SERVE_USE_GRPC_BY_DEFAULT
        from ray.serve.handle import DeploymentHandle
    except ImportError:  # pragma: no cover - Ray is a dependency of this layer
        return handle
    if not isinstance(handle, DeploymentHandle):
        return handle
    return handle.options(_by_reference=not RAY_SERVE_USE_GRPC_BY_DEFAULT)


async def call_backend(handle: Any, name: str, doc: Any, run: RunRequest, *, timeout_s: float) -> OCRResponse:
    """Call ``handle.ocr`` (a ``BackendDeployment`` handle) and return its response.

    ``doc`` is a ``Document``, or what :func:`shared_document` made of one.

    Raises:
        OCRError: the backend's own refusal; ``timeout`` past ``timeout_s`` (the call is cancelled);
            ``overloaded`` when Serve refuses for backpressure; ``backend_unavailable`` when the replica died.
    """
    if not isinstance(doc, Document):
        # an ObjectRef: only an actor call (not gRPC, RAY_SERVE_USE_GRPC_BY_DEFAULT) hands it over unresolved
        handle = handle.options(_by_reference=True)
    answer: OCRResponse = await call_method(handle, name, "ocr", doc, run, timeout_s=timeout_s)
    return answer


async def call_method(handle: Any, name: str, method: str, *args: Any, timeout_s: float) -> Any:
    """Call ``handle.<method>`` (any ``BackendDeployment`` method answering ``value | ErrorDetail``) and return the
    value, with Ray's own failures typed.

    Raises:
        OCRError: the backend's own refusal; ``timeout`` past ``timeout_s`` (the call is cancelled);
            ``overloaded`` when Serve refuses for backpressure; ``backend_unavailable`` when the replica died.
    """
    from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError
    from ray.serve.exceptions import BackPressureError

    response = getattr(handle, method).remote(*args)
    try:
        answer = await asyncio.wait_for(response, timeout_s)
    except asyncio.TimeoutError:
        response.cancel()
        raise OCRError(
            ErrorCode.TIMEOUT,
            f"backend {name!r} took longer than {timeout_s:.0f} s",
            accepted={"max_timeout_s": timeout_s},
        ) from None
    except BackPressureError:
        raise OCRError(
            ErrorCode.OVERLOADED, f"backend {name!r} is at capacity; retry later", accepted={"retry_after_s": 2}
        ) from None
    except (ActorDiedError, ActorUnavailableError, RayActorError) as e:
        raise OCRError(
            ErrorCode.BACKEND_UNAVAILABLE, f"backend {name!r} replica failed during the request ({type(e).__name__})"
        ) from None
    if isinstance(answer, ErrorDetail):
        raise OCRError.from_detail(answer)
    return answer
