"""The router: the HTTP ingress replica. Validates documents, picks a backend, forwards, times.

A plain class holding a dict of backend handles keyed by name (built from config, so adding a backend is
configuration). The builder wraps it with ``serve.ingress``; its HTTP app comes from
:func:`orchestrator.api.create_api`, which reads this object from ``app.state``, so the routes are testable
with a fake router and the router with fake handles.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from deployments.backend import BackendRefusal
from orchestrator.config import RouterSettings
from orchestrator.metrics import RouterMetrics
from orchestrator.selection import AUTO, auto_candidates, choose_backend
from shared.documents import PAGED_TYPES, STRUCTURED_TYPES, Document, open_document
from shared.errors import OCRError, as_ocr_error
from shared.metrics import ned
from shared.requests import CompareOptions, OCROptions, RunRequest
from shared.schema import BackendStatus, CompareEntry, CompareResponse, ErrorDetail, OCRResponse, PairAgreement

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
        from orchestrator.api import create_api

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

    # --- OCR ---------------------------------------------------------------------------------------------------

    def validate(self, data: bytes, filename: str, opts: OCROptions, max_pages: int | None = None) -> Document:
        """Cheap checks before anything reaches a backend (no page is decoded)."""
        limits = self.settings.limits
        if max_pages is not None:
            limits = limits.model_copy(update={"max_pages": max_pages})
        return open_document(
            data, name=filename, limits=limits, page_range=opts.pages, dpi=opts.dpi, accepted=KNOWN_TYPES
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

    async def submit_job(self, data: bytes, filename: str, opts: OCROptions, request_id: str) -> Any:
        """Validate now, process later in the jobs deployment; returns the job's status."""
        if self.jobs is None:
            raise OCRError("not_found", "the job API is not deployed in this application")
        doc = await asyncio.to_thread(self.validate, data, filename, opts, self.settings.limits.max_job_pages)
        name = await self._resolve(opts.backend or self.settings.default_backend, doc.media_type, [])
        run = RunRequest(
            request_id=request_id,
            received_at=time.time(),
            include_boxes_image=opts.include_boxes_image,
            include_raw=opts.include_raw,
            options=opts.options,
        )
        return await self.jobs.submit.remote(name, doc, run)

    async def job(self, job_id: str, *, result: bool = False) -> Any:
        if self.jobs is None:
            raise OCRError("not_found", "the job API is not deployed in this application")
        answer = await (self.jobs.result if result else self.jobs.get).remote(job_id)
        if isinstance(answer, BackendRefusal):
            raise answer.error()
        return answer

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
            self.metrics.failure(opts.backend, "internal_error")
            raise
        self.metrics.success(result, opts.options)
        return result

    async def _ocr(self, data: bytes, filename: str, opts: OCROptions, request_id: str) -> OCRResponse:
        received = time.time()
        doc = await asyncio.to_thread(self.validate, data, filename, opts)
        requested = opts.backend or self.settings.default_backend
        timeout = min(opts.timeout_s or self.settings.request_timeout_s, self.settings.max_request_timeout_s)
        run = RunRequest(
            request_id=request_id,
            received_at=received,
            include_boxes_image=opts.include_boxes_image,
            include_raw=opts.include_raw,
            options=opts.options,
        )
        tried: list[str] = []
        while True:
            name = await self._resolve(requested, doc.media_type, tried)
            try:
                result = await self._call(name, doc, run, timeout)
            except OCRError as e:
                # 'auto' gets one more try on another backend when a replica died under the request.
                if requested == AUTO and e.code == "backend_unavailable" and not tried:
                    tried.append(name)
                    self._statuses_at = 0.0
                    logger.warning("request %s: backend %s unavailable, retrying on another", request_id, name)
                    continue
                raise
            result.timings.total_s = round(time.time() - received, 4)
            if tried:
                result.warnings.append(f"backend {tried[0]!r} failed during the request; answered by {name!r}")
            return result

    async def _call(self, name: str, doc: Document, run: RunRequest, timeout: float) -> OCRResponse:
        from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError
        from ray.serve.exceptions import BackPressureError

        response = self.backends[name].ocr.remote(doc, run)
        try:
            answer = await asyncio.wait_for(response, timeout)
        except asyncio.TimeoutError:
            response.cancel()
            raise OCRError(
                "timeout", f"backend {name!r} took longer than {timeout:.0f} s", accepted={"max_timeout_s": timeout}
            ) from None
        except BackPressureError:
            raise OCRError(
                "overloaded", f"backend {name!r} is at capacity; retry later", accepted={"retry_after_s": 2}
            ) from None
        except (ActorDiedError, ActorUnavailableError, RayActorError) as e:
            raise OCRError(
                "backend_unavailable", f"backend {name!r} replica failed during the request ({type(e).__name__})"
            ) from None
        except Exception as e:
            carried = as_ocr_error(e)
            if carried is not None:
                raise carried from None
            raise
        if isinstance(answer, BackendRefusal):
            raise answer.error()
        return answer

    async def compare(self, data: bytes, filename: str, opts: CompareOptions, request_id: str) -> CompareResponse:
        """One document through several backends concurrently; each answers or fails on its own.

        Raises:
            OCRError: for the document itself (it is validated once) or an unknown backend name.
        """
        received = time.time()
        doc = await asyncio.to_thread(
            open_document,
            data,
            name=filename,
            limits=self.settings.limits,
            page_range=opts.pages,
            dpi=opts.dpi,
            accepted=KNOWN_TYPES,
        )
        names = list(dict.fromkeys(opts.backends)) or list(self.backends)
        unknown = [n for n in [*names, *opts.options] if n not in self.backends]
        if unknown:
            raise OCRError(
                "unknown_backend", f"no backend named {unknown[0]!r} is deployed", accepted=sorted(self.backends)
            )
        timeout = min(opts.timeout_s or self.settings.request_timeout_s, self.settings.max_request_timeout_s)

        async def one(name: str) -> CompareEntry:
            run = RunRequest(
                request_id=f"{request_id}:{name}",
                received_at=received,
                include_boxes_image=opts.include_boxes_image,
                options=opts.options.get(name, {}),
            )
            started = time.perf_counter()
            try:
                result = await self._call(name, doc, run, timeout)
            except OCRError as e:
                error = ErrorDetail(code=e.code, message=e.message, accepted=e.accepted)  # type: ignore[arg-type]
                return CompareEntry(
                    backend=name, ok=False, seconds=round(time.perf_counter() - started, 4), error=error
                )
            except Exception as e:  # a server fault in one backend must not sink the others
                logger.exception("compare %s: backend %s failed", request_id, name)
                error = ErrorDetail(code="internal_error", message=f"backend failed ({type(e).__name__})")
                return CompareEntry(
                    backend=name, ok=False, seconds=round(time.perf_counter() - started, 4), error=error
                )
            return CompareEntry(backend=name, ok=True, seconds=round(time.perf_counter() - started, 4), result=result)

        entries = await asyncio.gather(*(one(n) for n in names))
        agreement = await asyncio.to_thread(pairwise_agreement, entries)
        return CompareResponse(request_id=request_id, document=doc.info(), entries=entries, agreement=agreement)

    def auto_rule(self) -> list[str]:
        return auto_candidates(list(self.backends), self.settings.auto_order)


def pairwise_agreement(entries: list[CompareEntry]) -> list[PairAgreement]:
    """Normalised edit distance between the markdown of every pair of successful entries."""
    done = [e for e in entries if e.ok and e.result is not None]
    pairs = []
    for i, a in enumerate(done):
        for b in done[i + 1 :]:
            d = ned(a.result.markdown, b.result.markdown)  # type: ignore[union-attr]
            pairs.append(PairAgreement(a=a.backend, b=b.backend, ned=round(d, 4), agreement=round(1 - d, 4)))
    return pairs
