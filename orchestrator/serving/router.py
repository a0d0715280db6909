"""The router: the HTTP ingress replica. Validates documents, picks a backend, forwards, times.

A plain class holding a dict of backend handles keyed by name (built from config, so adding a backend is
configuration). The builder wraps it with ``serve.ingress``; its HTTP app comes from
:func:`orchestrator.serving.api.create_api`, which reads this object from ``app.state``, so the routes are
testable with a fake router and the router with fake handles.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from deployments.backend import call_backend, call_method, shared_document
from orchestrator.jobs import idempotency
from orchestrator.jobs.service import JobService
from orchestrator.jobs.settings import JobSettings
from orchestrator.serving.cascade import CascadePolicy, merge_cascade, plan_escalations
from orchestrator.serving.chunks import add_chunks, check_tokenizer
from orchestrator.serving.config import RouterSettings
from orchestrator.serving.render import render_response
from orchestrator.serving.selection import AUTO, auto_candidates, choose_backend
from orchestrator.serving.shadow import ShadowSampler
from orchestrator.serving.telemetry import RouterMetrics
from orchestrator.serving.timing import phase, record
from shared.agreement import compare_pages
from shared.documents import PAGED_TYPES, STRUCTURED_TYPES, Document, may_need_inspection, open_document
from shared.errors import OCRError
from shared.extraction import resolve_schema, validation_errors
from shared.metrics import agreement
from shared.requests import (
    CompareOptions,
    ExtractOptions,
    ExtractRunRequest,
    JobOptions,
    OCROptions,
    RenderRequest,
    RunRequest,
)
from shared.schema import (
    BackendStatus,
    CompareEntry,
    CompareFailure,
    CompareResponse,
    CompareSuccess,
    ErrorCode,
    ErrorDetail,
    ExtractResponse,
    JobPages,
    JobStatus,
    OCRResponse,
    PageComparison,
    PairAgreement,
    RenderResponse,
)
from shared.textlayer import pages_without_text
from shared.textrender import render_text
from shared.tokens import ESTIMATE_NAME, estimate_tokens

logger = logging.getLogger("ray.serve")

KNOWN_TYPES = PAGED_TYPES | STRUCTURED_TYPES
DESCRIBE_TIMEOUT_S = 5.0
REPLICAS_TTL_S = 5.0
"""How long replica counts from Serve's controller are reused (they feed ``BackendStatus.replicas``)."""
INLINE_VALIDATE_BYTES = 1 << 20
"""Documents up to this size are validated on the event loop (~0.1 ms: headers and a hash), larger ones in a
worker thread (hashing alone is ~1 ms per MiB); a thread hop costs more than the work below this size."""


class Router:
    """Routes OCR requests to backend deployments."""

    def __init__(
        self,
        backends: Mapping[str, Any],
        settings: RouterSettings | dict[str, Any] | None = None,
        jobs: JobService | JobSettings | dict[str, Any] | None = None,
        consumer: Any = None,
    ) -> None:
        self.backends = dict(backends)
        # the job API (None when not deployed): state in the job store, work through the queue to ``consumer``
        self.jobs = (
            jobs if isinstance(jobs, JobService) or jobs is None else JobService(JobSettings.model_validate(jobs))
        )
        self.consumer = consumer  # the job consumer deployment: bound so Serve deploys it; never called from here
        self.settings = (
            settings if isinstance(settings, RouterSettings) else RouterSettings.model_validate(settings or {})
        )
        self.metrics = RouterMetrics()
        self._statuses: dict[str, BackendStatus] = {}
        self._statuses_at = 0.0
        self._replica_counts: dict[str, int] = {}
        self._replicas_at = float("-inf")
        self.shadow = ShadowSampler(self.settings.shadow)
        self._shadow_tasks: set[asyncio.Task[None]] = set()  # held so the loop does not drop them mid-flight

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
        answers, replicas = await asyncio.gather(asyncio.gather(*(self._describe(n) for n in names)), self._replicas())
        for status in answers:
            status.replicas = replicas.get(status.name)
        self._statuses = dict(zip(names, answers))
        self._statuses_at = time.monotonic()
        return self._statuses

    async def _replicas(self) -> dict[str, int]:
        """Running replicas per backend, from Serve's controller (``serve.status()``), reused for
        ``REPLICAS_TTL_S`` so that a router asking for health on every ``auto`` request does not ask the controller
        as often; {} outside Serve or when the controller does not answer in time (``replicas`` then stays null)."""
        if time.monotonic() - self._replicas_at > REPLICAS_TTL_S:
            try:
                self._replica_counts = await asyncio.wait_for(
                    asyncio.to_thread(running_replicas, list(self.backends)), DESCRIBE_TIMEOUT_S
                )
            except Exception as e:  # not in a Serve replica (tests with fake handles), or the controller is busy
                logger.debug("replica counts unavailable: %s", e)
                self._replica_counts = {}
            self._replicas_at = time.monotonic()
        return self._replica_counts

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

    async def validated(self, data: bytes, filename: str, *, pages: str | None, dpi: float | None) -> Document:
        """:meth:`validate` on the event loop for small PDFs and images, in a worker thread for large ones and for
        packages and markup, whose inspection can cost seconds however small the upload."""
        with phase("validate"):
            if len(data) <= INLINE_VALIDATE_BYTES and not may_need_inspection(data):
                return self.validate(data, filename, pages=pages, dpi=dpi)
            return await asyncio.to_thread(self.validate, data, filename, pages=pages, dpi=dpi)

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
            check_tokenizer(opts, list(self.backends))
            result = await self._ocr(data, filename, opts, request_id)
            with phase("chunks"):  # once, on the final answer (after any cascade)
                await add_chunks(result, opts, self.backends, timeout_s=self.timeout_s(opts.timeout_s))
        except OCRError as e:
            self.metrics.failure(None if opts.backend == AUTO else opts.backend, e.code)
            raise
        except Exception:
            self.metrics.failure(opts.backend, ErrorCode.INTERNAL_ERROR)
            raise
        with phase("metrics"):
            self.metrics.success(result, opts.options)
        return result

    async def _ocr(self, data: bytes, filename: str, opts: OCROptions, request_id: str) -> OCRResponse:
        received = time.time()
        doc = await self.validated(data, filename, pages=opts.pages, dpi=opts.dpi)
        requested = opts.backend or self.settings.default_backend
        run = self.run_request(request_id, received, opts, opts.options)
        policy = self.settings.cascades.get(requested)
        if policy is not None:
            result = await self._cascade(requested, policy, doc, run, self.timeout_s(opts.timeout_s))
            result.timings.total_s = round(time.time() - received, 4)
            return result
        tried: list[str] = []
        while True:
            name = await self._resolve(requested, doc.media_type, tried)
            try:
                with phase("backend"):
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
            record("engine", result.timings.inference_s)  # the backend's own pipeline time, as it reports it
            if tried:
                result.warnings.append(f"backend {tried[0]!r} failed during the request; answered by {name!r}")
            self._maybe_shadow(doc, run, result)
            return result

    # --- many engines as one: cascades and shadow traffic ------------------------------------------------------

    async def _cascade(
        self, name: str, policy: CascadePolicy, doc: Document, run: RunRequest, timeout_s: float
    ) -> OCRResponse:
        """Pages through ``policy.first``; the pages its answer flags through ``policy.then``; one answer.

        Pages without a text layer go straight to ``then`` when that rule is on, and the whole document when
        ``first`` refuses or fails it (``first_failed``). The second call gets only its pages (the same bytes,
        fewer ``page_indices``) and what is left of the request's time. If it fails, the first answer's pages
        stand with a warning; only pages no backend answered make the request fail, with the second's error.
        """
        scanned: set[int] = set()
        if policy.rules.no_text_layer:
            found = await asyncio.to_thread(pages_without_text, doc.data, doc.media_type, doc.page_indices)
            scanned = set(found)
        plan: dict[int, list[str]] = {i: ["no_text_layer"] for i in doc.page_indices if i in scanned}
        rest = [i for i in doc.page_indices if i not in scanned]
        first: OCRResponse | None = None
        if rest:
            try:
                with phase("backend"):
                    first = await call_backend(
                        self.backends[policy.first],
                        policy.first,
                        dataclasses.replace(doc, page_indices=rest) if scanned else doc,
                        run,
                        timeout_s=timeout_s,
                    )
            except OCRError as e:
                if not policy.rules.first_failed:
                    raise
                logger.info("cascade %s, request %s: %s refused (%s)", name, run.request_id, policy.first, e.code)
                plan.update({i: ["first_failed"] for i in rest})
        if first is not None:
            plan.update(plan_escalations(first, policy, pages_without_text_layer=scanned))
        second, failure = None, None
        if plan:
            pages = sorted(plan)
            left_s = max(1.0, timeout_s - (time.time() - run.received_at))
            escalated = run.model_copy(update={"request_id": f"{run.request_id}:{policy.then}"})
            try:
                with phase("escalation"):
                    second = await call_backend(
                        self.backends[policy.then],
                        policy.then,
                        dataclasses.replace(doc, page_indices=pages),
                        escalated,
                        timeout_s=left_s,
                    )
            except OCRError as e:
                answered = {p.index for p in first.pages} if first is not None else set()
                if not set(pages) <= answered:  # pages nobody answered: no answer to give
                    raise
                logger.warning("cascade %s, request %s: %s failed (%s)", name, run.request_id, policy.then, e.code)
                failure = f"{e.code}: {e.message}"
        self.metrics.cascade(name, pages=len(doc.page_indices), plan=plan)
        merged = merge_cascade(name, policy, first, plan, second, failure=failure)
        merged.document = doc.info()
        return merged

    def _maybe_shadow(self, doc: Document, run: RunRequest, primary: OCRResponse) -> None:
        """Send ``doc`` to ``primary``'s shadow backend in the background, if the sampler says so.

        The task starts after the answer is built and is not awaited: the client's request never waits for it.
        """
        if primary.backend not in self.settings.shadow.pairs:
            return
        shadow, outcome = self.shadow.pick(primary.backend)
        self.metrics.shadow_request(primary.backend, shadow or self.settings.shadow.pairs[primary.backend], outcome)
        if shadow is None:
            return
        task = asyncio.get_running_loop().create_task(self._shadow_call(shadow, doc, run, primary))
        self._shadow_tasks.add(task)
        task.add_done_callback(self._shadow_tasks.discard)

    async def _shadow_call(self, shadow: str, doc: Document, run: RunRequest, primary: OCRResponse) -> None:
        """One shadow read and its agreement with the primary answer; never raises (it has nobody to tell)."""
        busy = False
        shadow_run = run.model_copy(
            update={
                "request_id": f"{run.request_id}:shadow",
                "include_boxes_image": False,
                "include_raw": False,
                "options": {},  # the client's options were for the primary's engine; the shadow reads its own way
            }
        )
        try:
            answer = await call_backend(
                self.backends[shadow], shadow, doc, shadow_run, timeout_s=self.settings.shadow.timeout_s
            )
            score = await asyncio.to_thread(agreement, primary.markdown, answer.markdown)
            self.metrics.shadow_agreement(primary, answer, score)
            self.metrics.shadow_request(primary.backend, shadow, "ok")
        except Exception as e:
            busy = isinstance(e, OCRError) and e.code in (ErrorCode.OVERLOADED, ErrorCode.BACKEND_UNAVAILABLE)
            logger.info("shadow %s of request %s failed: %s", shadow, run.request_id, e)
            self.metrics.shadow_request(primary.backend, shadow, "failed")
        finally:
            self.shadow.done(shadow, busy=busy)

    # --- comparison --------------------------------------------------------------------------------------------

    async def compare(self, data: bytes, filename: str, opts: CompareOptions, request_id: str) -> CompareResponse:
        """One document through several backends concurrently; each answers or fails on its own.

        Raises:
            OCRError: for the document itself (it is validated once) or an unknown backend name.
        """
        received = time.time()
        doc = await self.validated(data, filename, pages=opts.pages, dpi=opts.dpi)
        names = list(dict.fromkeys(opts.backends)) or list(self.backends)
        cascades = self.settings.cascades
        unknown = [n for n in [*names, *opts.options] if n not in self.backends and n not in cascades]
        if unknown:
            raise OCRError(
                ErrorCode.UNKNOWN_BACKEND,
                f"no backend named {unknown[0]!r} is deployed",
                accepted=sorted([*self.backends, *cascades]),
            )
        timeout = self.timeout_s(opts.timeout_s)
        sent = shared_document(doc, len(names))  # one copy in the object store for all of them

        async def one(name: str) -> CompareEntry:
            run = self.run_request(f"{request_id}:{name}", received, opts, opts.options.get(name, {}))
            started = time.perf_counter()
            try:
                if name in cascades:  # a cascade beside its own backends: is it as good, for less?
                    result = await self._cascade(name, cascades[name], doc, run, timeout)
                else:
                    result = await call_backend(self.backends[name], name, sent, run, timeout_s=timeout)
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

    # --- asynchronous jobs (orchestrator.jobs.service does the work) ------------------------------------------

    async def submit_job(
        self,
        data: bytes,
        filename: str,
        opts: JobOptions,
        request_id: str,
        *,
        tenant: str = "",
        idempotency_key: str | None = None,
    ) -> tuple[JobStatus, bool]:
        """Validate now, process later through the job queue; returns (the job's status, whether it was a replay
        of an earlier request with the same Idempotency-Key)."""
        jobs = self._jobs()
        doc = await asyncio.to_thread(
            self.validate, data, filename, pages=opts.pages, dpi=opts.dpi, max_pages=self.settings.limits.max_job_pages
        )
        requested = opts.backend or self.settings.default_backend
        if requested in self.settings.cascades:
            raise OCRError(
                ErrorCode.INVALID_OPTION,
                f"{requested!r} is a cascade, which answers synchronously (POST /v1/ocr); a job needs a backend",
                accepted=sorted(self.backends),
            )
        name = await self._resolve(requested, doc.media_type, [])
        run = self.run_request(request_id, time.time(), opts, opts.options)
        fp = idempotency.fingerprint("jobs", doc.sha256, filename, opts.model_dump()) if idempotency_key else None
        return await jobs.submit(
            doc,
            name,
            run,
            callback_url=opts.callback_url,
            tenant=tenant,
            idempotency_key=idempotency_key,
            fingerprint=fp,
        )

    async def job(self, job_id: str) -> JobStatus:
        return await self._jobs().status(job_id)

    async def job_result(self, job_id: str) -> OCRResponse:
        return await self._jobs().result(job_id)

    async def job_pages(self, job_id: str, start: int = 0) -> JobPages:
        """Pages a job has finished so far, from position ``start`` on (for clients showing them as they come)."""
        return await self._jobs().pages(job_id, start)

    async def cancel_job(self, job_id: str) -> JobStatus:
        return await self._jobs().cancel(job_id)

    async def job_events(
        self, job_id: str, after: int, decorate: Callable[[JobStatus], JobStatus]
    ) -> AsyncIterator[bytes]:
        return await self._jobs().events(job_id, after, decorate)

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
            timeout_s=self.timeout_s(opts.timeout_s),
            work=lambda: self.ocr(data, filename, opts, request_id),
        )

    def _jobs(self) -> JobService:
        if self.jobs is None:
            raise OCRError(ErrorCode.NOT_FOUND, "the job API is not deployed in this application")
        return self.jobs

    # --- fields as JSON ----------------------------------------------------------------------------------------

    async def extract(self, data: bytes, filename: str, opts: ExtractOptions, request_id: str) -> ExtractResponse:
        """A document's fields as JSON constrained to a schema (or a shipped preset), on a backend that enforces it.

        The answer is validated against the schema here again, whatever the backend said: a page or document
        answer that does not validate is marked so, never repaired.

        Raises:
            OCRError: a bad schema or preset (400), a backend that cannot extract (400, listing those that can),
                a document type no extracting backend reads (415), and every error of the document or backend.
        """
        received = time.time()
        adapter = opts.options.get("adapter") if isinstance(opts.options.get("adapter"), str) else None
        name = opts.backend if opts.backend not in (None, AUTO) else None
        try:
            schema, schema_name = resolve_schema(opts.json_schema, opts.preset)
            doc = await self.validated(data, filename, pages=opts.pages, dpi=opts.dpi)
            name = await self._extractor(opts.backend, doc.media_type)
            run = ExtractRunRequest(
                request_id=request_id,
                received_at=received,
                json_schema=schema,
                schema_name=schema_name,
                scope=opts.scope,
                prompt=opts.prompt,
                include_markdown=opts.include_markdown,
                options=opts.options,
            )
            result = await call_method(
                self.backends[name], name, "extract", doc, run, timeout_s=self.timeout_s(opts.timeout_s)
            )
        except OCRError as e:
            self.metrics.failure(name, e.code, adapter=adapter)
            raise
        recheck_extraction(result, schema)
        result.timings.total_s = round(time.time() - received, 4)
        self.metrics.extraction(result)
        return result

    async def _extractor(self, requested: str | None, media_type: str) -> str:
        """The backend that extracts: the one named (if it can), else the first ready one that can, in auto order."""
        statuses = await self.statuses()
        capable = [n for n in self.auto_rule() if statuses.get(n) is not None and statuses[n].info.get("extract")]
        if requested not in (None, AUTO):
            if requested not in self.backends:
                raise OCRError(
                    ErrorCode.UNKNOWN_BACKEND,
                    f"no backend named {requested!r} is deployed",
                    accepted=sorted(self.backends),
                )
            status = statuses.get(requested)
            if status is not None and status.status == "ready" and not status.info.get("extract"):
                raise OCRError(
                    ErrorCode.INVALID_OPTION,
                    f"backend {requested!r} cannot extract fields (it has no constrained decoding); "
                    + (f"backends that can: {', '.join(capable)}" if capable else "no deployed backend can"),
                    accepted={"backends": capable},
                )
            if status is not None and status.status == "ready" and media_type not in status.media_types:
                raise OCRError(
                    ErrorCode.UNSUPPORTED_MEDIA_TYPE,
                    f"backend {requested!r} cannot read {media_type}",
                    accepted={"media_types": status.media_types, "backends": capable},
                )
            return requested
        if not capable:
            raise OCRError(
                ErrorCode.INVALID_OPTION,
                "no deployed backend can extract fields: it needs DeepSeek-OCR on the vLLM engine (structured outputs)",
                accepted={"backends": []},
            )
        ready = [n for n in capable if statuses[n].status == "ready"]
        readers = [n for n in ready if media_type in statuses[n].media_types]
        if readers:
            return readers[0]
        if ready:
            raise OCRError(
                ErrorCode.UNSUPPORTED_MEDIA_TYPE,
                f"no backend that extracts reads {media_type}",
                accepted={"media_types": sorted({t for n in ready for t in statuses[n].media_types})},
            )
        raise OCRError(ErrorCode.BACKEND_UNAVAILABLE, f"no backend that extracts is ready ({', '.join(capable)})")

    # --- optical compression -----------------------------------------------------------------------------------

    async def render(self, req: RenderRequest, request_id: str) -> RenderResponse:
        """Text drawn into pages for a DeepSeek mode, with vision tokens per mode and the input's text tokens.

        Raises:
            OCRError: bad rendering options or text that needs too many pages (400); a named backend that is not
                deployed (404) or has no tokenizer (400).
        """
        rendering = await asyncio.to_thread(
            render_text,
            req.text,
            mode=req.mode,
            font=req.font,
            font_size=req.font_size_px,
            margin=req.margin_px,
            dpi=req.dpi,
            max_pages=req.max_pages,
        )
        texts = [req.text, *(p.text for p in rendering.pages)]
        counts, tokenizer, warnings = await self._count_tokens(texts, req.backend)
        return await asyncio.to_thread(
            render_response,
            req,
            rendering,
            request_id=request_id,
            text_tokens=counts[0],
            page_tokens=counts[1:],
            tokenizer=tokenizer,
            warnings=warnings,
        )

    async def _count_tokens(self, texts: list[str], requested: str | None) -> tuple[list[int], str, list[str]]:
        """Text tokens by a model's own tokenizer (the named backend, else the first ready one that has one), or
        the documented estimate when none is deployed. Returns (counts, tokenizer description, warnings)."""
        if requested is not None:
            if requested not in self.backends:
                raise OCRError(
                    ErrorCode.UNKNOWN_BACKEND,
                    f"no backend named {requested!r} is deployed",
                    accepted=sorted(self.backends),
                )
            answer = await call_method(
                self.backends[requested], requested, "count_tokens", texts, timeout_s=self.timeout_s(None)
            )
            return answer.counts, f"backend:{requested} ({answer.tokenizer})", []
        statuses = await self.statuses()
        warnings: list[str] = []
        for name in self.auto_rule():
            status = statuses.get(name)
            if status is None or status.status != "ready" or not status.info.get("count_tokens"):
                continue
            try:
                answer = await call_method(
                    self.backends[name], name, "count_tokens", texts, timeout_s=self.timeout_s(None)
                )
            except OCRError as e:
                warnings.append(f"the tokenizer of {name!r} failed ({e.code}); text tokens are the estimate")
                break
            return answer.counts, f"backend:{name} ({answer.tokenizer})", warnings
        return [estimate_tokens(t) for t in texts], ESTIMATE_NAME, warnings


def recheck_extraction(result: ExtractResponse, schema: dict[str, Any]) -> None:
    """Validate a backend's extraction against the schema here too, and mark what does not hold (never repair it).

    The backend already validated; this is the router keeping its own promise that an answer marked valid
    validates, whatever engine produced it.
    """
    for page in result.pages:
        errors = validation_errors(schema, page.data) if page.data is not None else []
        if page.valid and (page.data is None or errors):
            page.valid = False
            page.errors.extend(f"router: {e}" for e in errors or ["no data"])
    if result.scope == "document":
        errors = validation_errors(schema, result.data) if result.data is not None else ["no data"]
    else:
        errors = [f"page {p.index + 1}: {e}" for p in result.pages for e in p.errors]
    if errors and result.valid:
        result.errors.extend(f"router: {e}" for e in errors)
    result.valid = result.valid and not errors


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


def running_replicas(names: list[str]) -> dict[str, int]:
    """Replicas in the RUNNING state of each named deployment of this router's own application.

    Blocking (it asks Serve's controller): call it in a thread. Raises outside a Serve replica.
    """
    from ray import serve

    app = serve.get_replica_context().app_name
    application = serve.status().applications.get(app)
    if application is None:
        return {}
    out: dict[str, int] = {}
    for name in names:
        deployment = application.deployments.get(name)
        if deployment is not None:
            out[name] = sum(n for state, n in deployment.replica_states.items() if str(state).endswith("RUNNING"))
    return out
