"""The router: the HTTP ingress replica. Validates documents, picks a backend, forwards, times.

A plain class holding a dict of backend handles keyed by name (built from config, so adding a backend is
configuration). The builder wraps it with ``serve.ingress``; its HTTP app comes from
:func:`orchestrator.serving.api.create_api`, which reads this object from ``app.state``, so the routes are
testable with a fake router and the router with fake handles.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from deployments.backend import call_backend
from orchestrator.serving.config import RouterSettings
from orchestrator.serving.selection import AUTO, auto_candidates, choose_backend
from orchestrator.serving.telemetry import RouterMetrics
from shared.agreement import compare_pages
from shared.documents import PAGED_TYPES, STRUCTURED_TYPES, Document, open_document
from shared.errors import OCRError
from shared.metrics import agreement
from shared.requests import CompareOptions, OCROptions, RunRequest
from shared.schema import (
    BackendStatus,
    CompareEntry,
    CompareFailure,
    CompareResponse,
    CompareSuccess,
    ErrorCode,
    ErrorDetail,
    JobStatus,
    OCRResponse,
    PageComparison,
    PairAgreement,
)

logger = logging.getLogger("ray.serve")

KNOWN_TYPES = PAGED_TYPES | STRUCTURED_TYPES
DESCRIBE_TIMEOUT_S = 5.0


class Router:
    """Routes OCR requests to backend deployments."""

    def __init__(
        self,
        backends: Mapping[str, Any],
        settings: RouterSettings | dict[str, Any] | None = None,
        jobs: Any = None,
    ) -> None:
        self.backends = dict(backends)
        self.jobs = jobs  # handle of the jobs deployment (async API), None when not deployed
        self.settings = (
            settings if isinstance(settings, RouterSettings) else RouterSettings.model_validate(settings or {})
        )
        self.metrics = RouterMetrics()
        self._statuses: dict[str, BackendStatus] = {}
        self._statuses_at = 0.0

    def __serve_build_asgi_app__(self):
        from orchestrator.serving.api import create_api

        return create_api(self)

    # --- backend directory -------------------------------------------------------------------------------------

    async def statuses(self, *, max_age_s: float | None = None) -> dict[str, BackendStatus]:
        """Every backend's health, asked of all at once and reused for ``status_ttl_s``."""
        ttl = self.settings.status_ttl_s if max_age_s is None else max_age_s
        if self._statuses and time.monotonic() - self._statuses_at <= ttl:
            return self._statuses
        names = list(self.backends)
        answers = await asyncio.gather(*(self._describe(n) for n in names))
        self._statuses = dict(zip(names, answers))
        self._statuses_at = time.monotonic()
        return self._statuses

    async def _describe(self, name: str) -> BackendStatus:
        try:
            return await asyncio.wait_for(self.backends[name].describe.remote(), DESCRIBE_TIMEOUT_S)
        except asyncio.TimeoutError:
            return BackendStatus(name=name, engine="?", status="unavailable", detail="no health answer in time")
        except Exception as e:  # replica starting, dead or unreachable
            return BackendStatus(name=name, engine="?", status="unavailable", detail=f"{type(e).__name__}: {e}"[:300])

    def auto_rule(self) -> list[str]:
        return auto_candidates(list(self.backends), self.settings.auto_order)

    # --- what every request does first -------------------------------------------------------------------------

    def validate(
        self, data: bytes, filename: str, *, pages: str | None, dpi: float | None, max_pages: int | None = None
    ) -> Document:
        """Cheap checks before anything reaches a backend (no page is decoded)."""
        limits = self.settings.limits
        if max_pages is not None:
            limits = limits.model_copy(update={"max_pages": max_pages})
        return open_document(data, name=filename, limits=limits, page_range=pages, dpi=dpi, accepted=KNOWN_TYPES)

    def timeout_s(self, asked: float | None) -> float:
        """The request's own time limit, or the default, capped by the server's maximum."""
        return min(asked or self.settings.request_timeout_s, self.settings.max_request_timeout_s)

    @staticmethod
    def run_request(
        request_id: str, received: float, opts: OCROptions | CompareOptions, options: dict[str, Any]
    ) -> RunRequest:
        """What a backend deployment is told about the request, besides the document."""
        return RunRequest(
            request_id=request_id,
            received_at=received,
            include_boxes_image=opts.include_boxes_image,
            include_raw=getattr(opts, "include_raw", False),
            options=options,
        )

    async def _resolve(self, requested: str, media_type: str, exclude: list[str]) -> str:
        statuses = await self.statuses() if requested == AUTO else {}
        return choose_backend(
            requested,
            deployed=list(self.backends),
            statuses=statuses,
            media_type=media_type,
            auto_order=self.settings.auto_order,
            exclude=exclude,
        )

    # --- OCR ---------------------------------------------------------------------------------------------------

    async def ocr(self, data: bytes, filename: str, opts: OCROptions, request_id: str) -> OCRResponse:
        """Validate, choose a backend, run, and stamp the total time.

        Raises:
            OCRError: every failure a client should hear about, with its status code.
        """
        try:
            result = await self._ocr(data, filename, opts, request_id)
        except OCRError as e:
            self.metrics.failure(None if opts.backend == AUTO else opts.backend, e.code)
            raise
        except Exception:
            self.metrics.failure(opts.backend, ErrorCode.INTERNAL_ERROR)
            raise
        self.metrics.success(result, opts.options)
        return result

    async def _ocr(self, data: bytes, filename: str, opts: OCROptions, request_id: str) -> OCRResponse:
        received = time.time()
        doc = await asyncio.to_thread(self.validate, data, filename, pages=opts.pages, dpi=opts.dpi)
        requested = opts.backend or self.settings.default_backend
        run = self.run_request(request_id, received, opts, opts.options)
        tried: list[str] = []
        while True:
            name = await self._resolve(requested, doc.media_type, tried)
            try:
                result = await call_backend(
                    self.backends[name], name, doc, run, timeout_s=self.timeout_s(opts.timeout_s)
                )
            except OCRError as e:
                # 'auto' gets one more try on another backend when a replica died under the request.
                if requested == AUTO and e.code == ErrorCode.BACKEND_UNAVAILABLE and not tried:
                    tried.append(name)
                    self._statuses_at = 0.0
                    logger.warning("request %s: backend %s unavailable, retrying on another", request_id, name)
                    continue
                raise
            result.timings.total_s = round(time.time() - received, 4)
            if tried:
                result.warnings.append(f"backend {tried[0]!r} failed during the request; answered by {name!r}")
            return result

    # --- comparison --------------------------------------------------------------------------------------------

    async def compare(self, data: bytes, filename: str, opts: CompareOptions, request_id: str) -> CompareResponse:
        """One document through several backends concurrently; each answers or fails on its own.

        Raises:
            OCRError: for the document itself (it is validated once) or an unknown backend name.
        """
        received = time.time()
        doc = await asyncio.to_thread(self.validate, data, filename, pages=opts.pages, dpi=opts.dpi)
        names = list(dict.fromkeys(opts.backends)) or list(self.backends)
        unknown = [n for n in [*names, *opts.options] if n not in self.backends]
        if unknown:
            raise OCRError(
                ErrorCode.UNKNOWN_BACKEND,
                f"no backend named {unknown[0]!r} is deployed",
                accepted=sorted(self.backends),
            )
        timeout = self.timeout_s(opts.timeout_s)

        async def one(name: str) -> CompareEntry:
            run = self.run_request(f"{request_id}:{name}", received, opts, opts.options.get(name, {}))
            started = time.perf_counter()
            try:
                result = await call_backend(self.backends[name], name, doc, run, timeout_s=timeout)
            except OCRError as e:
                return CompareFailure(backend=name, seconds=_since(started), error=e.detail())
            except Exception as e:  # a server fault in one backend must not sink the others
                logger.exception("compare %s: backend %s failed", request_id, name)
                error = ErrorDetail(code=ErrorCode.INTERNAL_ERROR, message=f"backend failed ({type(e).__name__})")
                return CompareFailure(backend=name, seconds=_since(started), error=error)
            return CompareSuccess(backend=name, seconds=_since(started), result=result)

        entries = await asyncio.gather(*(one(n) for n in names))
        pairs, pages = await asyncio.to_thread(_agreement, entries)
        return CompareResponse(
            request_id=request_id, document=doc.info(), entries=entries, agreement=pairs, pages=pages
        )

    # --- asynchronous jobs -------------------------------------------------------------------------------------

    async def submit_job(self, data: bytes, filename: str, opts: OCROptions, request_id: str) -> JobStatus:
        """Validate now, process later in the jobs deployment; returns the job's status."""
        jobs = self._jobs()
        doc = await asyncio.to_thread(
            self.validate, data, filename, pages=opts.pages, dpi=opts.dpi, max_pages=self.settings.limits.max_job_pages
        )
        name = await self._resolve(opts.backend or self.settings.default_backend, doc.media_type, [])
        return await jobs.submit.remote(name, doc, self.run_request(request_id, time.time(), opts, opts.options))

    async def job(self, job_id: str) -> JobStatus:
        return _answer(await self._jobs().get.remote(job_id))

    async def job_result(self, job_id: str) -> OCRResponse:
        return _answer(await self._jobs().result.remote(job_id))

    def _jobs(self) -> Any:
        if self.jobs is None:
            raise OCRError(ErrorCode.NOT_FOUND, "the job API is not deployed in this application")
        return self.jobs


def _answer(answer: Any) -> Any:
    """A deployment's answer, or its error value raised as ``OCRError``."""
    if isinstance(answer, ErrorDetail):
        raise OCRError.from_detail(answer)
    return answer


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 4)


def _agreement(entries: list[CompareEntry]) -> tuple[list[PairAgreement], list[PageComparison]]:
    """Whole-document and block-level agreement of the entries that answered (CPU work: run off the loop)."""
    answered = {e.backend: e.result for e in entries if isinstance(e, CompareSuccess)}
    return pairwise_agreement(entries), compare_pages(answered)


def pairwise_agreement(entries: list[CompareEntry]) -> list[PairAgreement]:
    """How much the markdown of every pair of successful entries agrees (1 - OmniDocBench NED)."""
    done = [e for e in entries if isinstance(e, CompareSuccess)]
    pairs = []
    for i, a in enumerate(done):
        for b in done[i + 1 :]:
            agree = agreement(a.result.markdown, b.result.markdown)
            pairs.append(PairAgreement(a=a.backend, b=b.backend, ned=round(1 - agree, 4), agreement=round(agree, 4)))
    return pairs
