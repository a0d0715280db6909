"""``POST /v1/extract``: a document's fields as JSON constrained to a schema, on a backend that can extract."""

from __future__ import annotations

import time
from typing import Any

from deployments.backend import call_method
from orchestrator.serving.directory import BackendDirectory, capabilities_of
from orchestrator.serving.intake import validated
from orchestrator.serving.selection import AUTO
from orchestrator.serving.telemetry import RouterMetrics
from shared.errors import OCRError
from shared.json_schemas import resolve_schema, validation_errors
from shared.requests import ExtractOptions, ExtractRunRequest
from shared.schema import ErrorCode, ExtractResponse


class ExtractService:
    """Chooses a backend whose capabilities say it extracts, and checks its answer against the schema again."""

    def __init__(self, directory: BackendDirectory, metrics: RouterMetrics) -> None:
        self.directory = directory
        self.settings = directory.settings
        self.metrics = metrics

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
            doc = await validated(self.settings.limits, data, filename, pages=opts.pages, dpi=opts.dpi)
            name = await self.extractor(opts.backend, doc.media_type)
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
            timeout_s = self.directory.timeout_s(opts.timeout_s)
            result = await call_method(self.directory.handle(name), name, "extract", doc, run, timeout_s=timeout_s)
        except OCRError as e:
            self.metrics.failure(name, e.code, adapter=adapter)
            raise
        recheck_extraction(result, schema)
        result.timings.total_s = round(time.time() - received, 4)
        self.metrics.extraction(result)
        return result

    async def extractor(self, requested: str | None, media_type: str) -> str:
        """The backend that extracts: the one named (if it can), else the first ready one that can, in auto order."""
        statuses = await self.directory.statuses()
        capable = [n for n in self.directory.auto_rule() if capabilities_of(statuses.get(n)).extracts]
        if requested not in (None, AUTO):
            self.directory.require(requested)
            status = statuses.get(requested)
            if status is not None and status.status == "ready" and not capabilities_of(status).extracts:
                raise OCRError(
                    ErrorCode.INVALID_OPTION,
                    f"backend {requested!r} cannot extract fields (its engine does not declare the capability); "
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
                "no deployed backend can extract fields (none declares the capability: it needs constrained decoding)",
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
