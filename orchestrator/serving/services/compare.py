"""``POST /v1/compare``: one document through several backends (or cascades) at once, with their agreement."""

from __future__ import annotations

import asyncio
import logging
import time

from deployments.backend import call_backend, shared_document
from orchestrator.serving.directory import BackendDirectory
from orchestrator.serving.intake import validated
from orchestrator.serving.services.cascades import run_cascade
from orchestrator.serving.telemetry import RouterMetrics
from shared.agreement import compare_pages
from shared.errors import OCRError
from shared.metrics import agreement
from shared.requests import CompareOptions, RunRequest
from shared.schema import (
    CompareEntry,
    CompareFailure,
    CompareResponse,
    CompareSuccess,
    ErrorCode,
    ErrorDetail,
    PageComparison,
    PairAgreement,
)

logger = logging.getLogger("ray.serve")


class CompareService:
    """Each backend answers or fails on its own; the document is validated and shipped once."""

    def __init__(self, directory: BackendDirectory, metrics: RouterMetrics) -> None:
        self.directory = directory
        self.settings = directory.settings
        self.metrics = metrics

    async def compare(self, data: bytes, filename: str, opts: CompareOptions, request_id: str) -> CompareResponse:
        """One document through several backends concurrently; each answers or fails on its own.

        Raises:
            OCRError: for the document itself (it is validated once) or an unknown backend name.
        """
        received = time.time()
        doc = await validated(self.settings.limits, data, filename, pages=opts.pages, dpi=opts.dpi)
        backends = self.directory.backends
        names = list(dict.fromkeys(opts.backends)) or list(backends)
        cascades = self.settings.cascades
        unknown = [n for n in [*names, *opts.options] if n not in backends and n not in cascades]
        if unknown:
            raise OCRError(
                ErrorCode.UNKNOWN_BACKEND,
                f"no backend named {unknown[0]!r} is deployed",
                accepted=sorted([*backends, *cascades]),
            )
        timeout = self.directory.timeout_s(opts.timeout_s)
        sent = shared_document(doc, len(names))  # one copy in the object store for all of them

        async def one(name: str) -> CompareEntry:
            run = RunRequest.of(
                opts, request_id=f"{request_id}:{name}", received_at=received, options=opts.options.get(name, {})
            )
            started = time.perf_counter()
            try:
                if name in cascades:  # a cascade beside its own backends: is it as good, for less?
                    result = await run_cascade(self.directory, self.metrics, name, cascades[name], doc, run, timeout)
                else:
                    result = await call_backend(self.directory.handle(name), name, sent, run, timeout_s=timeout)
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
