"""``POST /v1/ocr``: validate, choose a backend (or run a cascade), call it, time it; shadow reads after."""

from __future__ import annotations

import hashlib
import logging
import time

from deployments.backend import call_backend
from orchestrator.jobs import idempotency
from orchestrator.jobs.service import JobService
from orchestrator.serving.chunks import add_chunks, check_tokenizer
from orchestrator.serving.directory import BackendDirectory
from orchestrator.serving.intake import validated
from orchestrator.serving.selection import AUTO
from orchestrator.serving.services.cascades import run_cascade
from orchestrator.serving.services.shadow import ShadowReads
from orchestrator.serving.telemetry import RouterMetrics
from orchestrator.serving.timing import phase, record
from shared.errors import OCRError
from shared.requests import OCROptions, RunRequest
from shared.schema import ErrorCode, OCRResponse

logger = logging.getLogger("ray.serve")


class OCRService:
    """One document, one backend (or cascade), the unified response."""

    def __init__(self, directory: BackendDirectory, metrics: RouterMetrics, jobs: JobService | None) -> None:
        self.directory = directory
        self.settings = directory.settings
        self.metrics = metrics
        self.jobs = jobs  # the job store keeps Idempotency-Keys; None when not deployed
        self.shadow = ShadowReads(directory, metrics)

    async def ocr(self, data: bytes, filename: str, opts: OCROptions, request_id: str) -> OCRResponse:
        """Validate, choose a backend, run, and stamp the total time.

        Raises:
            OCRError: every failure a client should hear about, with its status code.
        """
        try:
            check_tokenizer(opts, list(self.directory.backends))
            result = await self._ocr(data, filename, opts, request_id)
            with phase("chunks"):  # once, on the final answer (after any cascade)
                await add_chunks(
                    result, opts, self.directory.backends, timeout_s=self.directory.timeout_s(opts.timeout_s)
                )
        except OCRError as e:
            self.metrics.failure(None if opts.backend == AUTO else opts.backend, e.code)
            raise
        except Exception:
            self.metrics.failure(opts.backend, ErrorCode.INTERNAL_ERROR)
            raise
        with phase("metrics"):
            self.metrics.success(result, self.directory.metric_mode(result.backend, opts.options))
        return result

    async def _ocr(self, data: bytes, filename: str, opts: OCROptions, request_id: str) -> OCRResponse:
        received = time.time()
        doc = await validated(self.settings.limits, data, filename, pages=opts.pages, dpi=opts.dpi)
        requested = opts.backend or self.settings.default_backend
        run = RunRequest.of(opts, request_id=request_id, received_at=received, options=opts.options)
        timeout_s = self.directory.timeout_s(opts.timeout_s)
        policy = self.settings.cascades.get(requested)
        if policy is not None:
            result = await run_cascade(self.directory, self.metrics, requested, policy, doc, run, timeout_s)
            result.timings.total_s = round(time.time() - received, 4)
            return result
        tried: list[str] = []
        while True:
            name = await self.directory.resolve(requested, doc.media_type, tried)
            try:
                with phase("backend"):
                    result = await call_backend(self.directory.handle(name), name, doc, run, timeout_s=timeout_s)
            except OCRError as e:
                # 'auto' gets one more try on another backend when a replica died under the request.
                if requested == AUTO and e.code == ErrorCode.BACKEND_UNAVAILABLE and not tried:
                    tried.append(name)
                    self.directory.forget_statuses()
                    logger.warning("request %s: backend %s unavailable, retrying on another", request_id, name)
                    continue
                raise
            result.timings.total_s = round(time.time() - received, 4)
            record("engine", result.timings.inference_s)  # the backend's own pipeline time, as it reports it
            if tried:
                result.warnings.append(f"backend {tried[0]!r} failed during the request; answered by {name!r}")
            self.shadow.maybe(doc, run, result)
            return result

    async def ocr_once(
        self, data: bytes, filename: str, opts: OCROptions, request_id: str, *, tenant: str, key: str
    ) -> tuple[OCRResponse, bool]:
        """:meth:`ocr`, run once per Idempotency-Key: a retry gets the first request's answer (or waits for it).
        Returns (answer, whether it was a replay). Without the job store the key cannot be kept: the request runs,
        with a warning saying so."""
        if self.jobs is None:
            result = await self.ocr(data, filename, opts, request_id)
            result.warnings.append("Idempotency-Key ignored: this application has no job store (jobs_enabled: false)")
            return result, False
        fp = idempotency.fingerprint("ocr", hashlib.sha256(data).hexdigest(), filename, opts.model_dump())
        return await self.jobs.once(
            tenant=tenant,
            key=key,
            fp=fp,
            timeout_s=self.directory.timeout_s(opts.timeout_s),
            work=lambda: self.ocr(data, filename, opts, request_id),
        )
