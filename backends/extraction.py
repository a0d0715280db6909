"""Fields as JSON from a document: the contract an engine implements to extract, and the pipeline around it.

An engine that can constrain its output to a JSON Schema (DeepSeek-OCR on vLLM: structured outputs) implements
:class:`Extractor`; :func:`run_extraction` renders the pages, hands them to it with the schema and the prompt,
reads every page's answer (``json.loads`` + ``jsonschema``, never ``eval``), merges pages for a document-level
answer and assembles the :class:`~shared.schema.ExtractResponse` - with, when the pages were OCR'd too
(``include_markdown``), the evidence for every value: where on which page it was read (:mod:`shared.evidence`).
Like :mod:`backends.pipeline`, it is shared by every host of an engine, and imports no Ray.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from backends.base import EngineOptions, EngineRun, OCREngine
from shared.documents import PAGED_TYPES, Document, PageImage, rasterize_pages
from shared.errors import OCRError
from shared.evidence import find_evidence
from shared.json_schemas import default_instruction, merge_answers, read_answer, validation_errors
from shared.requests import ExtractRunRequest
from shared.schema import (
    ErrorCode,
    ExtractResponse,
    ModelInfo,
    PageExtraction,
    PageResult,
    PageUsage,
    Timings,
    Usage,
)


@dataclass(frozen=True)
class ExtractTask:
    """What to extract, for every page of one request.

    Attributes:
        json_schema: The schema generation is constrained to.
        instruction: What to ask the model (the engine adds its image placeholder where its prompts need one).
        include_markdown: Whether to OCR the pages too (for audit), in the same batch.
    """

    json_schema: dict[str, Any]
    instruction: str
    include_markdown: bool = True


@dataclass
class PageAnswer:
    """One page's constrained generation, as the engine returns it.

    Attributes:
        index: 0-based page index in the document.
        text: The generated JSON text (special tokens removed).
        finish_reason: ``stop`` or ``length``.
        output_tokens: Tokens generated.
        vision_tokens: Vision tokens of the page, when known.
        warnings: Notes for the page.
    """

    index: int
    text: str
    finish_reason: str
    output_tokens: int | None = None
    vision_tokens: int | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class ExtractionRun:
    """What an engine returns for a batch of pages.

    Attributes:
        answers: One per page, in page order.
        ocr: The pages' OCR (when asked for), read in the same batch.
        model: Model, engine and adapter that answered.
        enforced_by: What constrained generation (for the response's ``enforced_by``).
        warnings: Request-level notes (e.g. a mode the engine does not honour).
    """

    answers: list[PageAnswer]
    ocr: EngineRun | None
    model: ModelInfo
    enforced_by: str
    warnings: list[str] = field(default_factory=list)


@runtime_checkable
class Extractor(Protocol):
    """An engine that can constrain generation to a JSON Schema."""

    def extract(
        self, doc: Document, pages: list[PageImage], options: EngineOptions, task: ExtractTask
    ) -> ExtractionRun:
        """One constrained answer per page (and the pages' OCR when ``task.include_markdown``).

        Raises:
            OCRError: ``invalid_option`` when this engine instance cannot extract (say why, and what can).
        """


def instruction(request: ExtractRunRequest) -> str:
    """The request's own instruction, or one built from the schema's field names."""
    return request.prompt or default_instruction(request.json_schema)


def _chunks(pages: Any, size: int) -> Any:
    while batch := list(itertools.islice(pages, size)):
        yield batch


def run_extraction(engine: OCREngine, doc: Document, *, backend: str, request: ExtractRunRequest) -> ExtractResponse:
    """Extract ``request.json_schema``'s fields from ``doc`` with ``engine`` and assemble the response.

    Raises:
        OCRError: ``invalid_option`` when the engine cannot extract or the options are bad;
            ``unsupported_media_type`` for documents without pages.
    """
    if not isinstance(engine, Extractor):
        raise OCRError(ErrorCode.INVALID_OPTION, f"backend {backend!r} cannot extract fields (no constrained decoding)")
    if doc.media_type not in PAGED_TYPES:
        raise OCRError(
            ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            f"extraction reads page images; {doc.media_type} has none",
            accepted=sorted(PAGED_TYPES),
        )
    started = time.time()
    options = engine.parse_options(request.options)
    task = ExtractTask(request.json_schema, instruction(request), request.include_markdown)
    answers: list[PageAnswer] = []
    ocr_pages: list[PageResult] = []
    warnings: list[str] = []
    model: ModelInfo | None = None
    enforced_by = ""
    for batch in _chunks(rasterize_pages(doc), max(1, engine.batch_pages)):
        run = engine.extract(doc, batch, options, task)
        answers.extend(run.answers)
        if run.ocr is not None:
            ocr_pages.extend(run.ocr.pages)
        warnings.extend(w for w in run.warnings if w not in warnings)
        model, enforced_by = run.model, run.enforced_by
    finished = time.time()
    return assemble(
        request,
        answers,
        ocr_pages,
        backend=backend,
        model=model or engine.model_info(),
        document=doc,
        enforced_by=enforced_by,
        warnings=warnings,
        timings=Timings(
            queue_s=round(max(0.0, started - request.received_at), 4),
            inference_s=round(finished - started, 4),
            total_s=round(finished - request.received_at, 4),
        ),
    )


def assemble(
    request: ExtractRunRequest,
    answers: list[PageAnswer],
    ocr_pages: list[PageResult],
    *,
    backend: str,
    model: ModelInfo,
    document: Document,
    enforced_by: str,
    warnings: list[str],
    timings: Timings,
) -> ExtractResponse:
    """The response from the engine's raw answers: each read against the schema, merged for scope document."""
    schema = request.json_schema
    markdown = {p.index: p.markdown for p in ocr_pages}
    ocr_by_index = {p.index: p for p in ocr_pages}
    pages: list[PageExtraction] = []
    for a in answers:
        read = read_answer(a.text, schema, finish_reason=a.finish_reason)
        page_ocr = ocr_by_index.get(a.index)
        pages.append(
            PageExtraction(
                index=a.index,
                data=read.data,
                valid=read.valid,
                errors=read.errors,
                text=a.text,
                finish_reason=a.finish_reason,
                markdown=markdown.get(a.index) if request.include_markdown else None,
                usage=PageUsage(vision_tokens=a.vision_tokens, output_tokens=a.output_tokens),
                warnings=a.warnings,
                evidence=(
                    find_evidence(read.data, [page_ocr])
                    if request.scope == "page" and page_ocr is not None and read.data is not None
                    else None
                ),
            )
        )
    notes = list(warnings)
    data: Any = None
    if request.scope == "document":
        usable = [(p.index, p.data) for p in pages if p.valid]
        left_out = [p.index + 1 for p in pages if not p.valid]
        if left_out:
            notes.append(f"merge: page(s) {left_out} left out of the document's answer (their answer is not valid)")
        data, conflicts = merge_answers(usable)
        notes.extend(conflicts)
        errors = validation_errors(schema, data) if usable else ["no page gave a valid answer"]
    else:
        errors = [f"page {p.index + 1}: {e}" for p in pages for e in p.errors]
    vision = [p.usage.vision_tokens for p in pages if p.usage.vision_tokens] + [
        p.usage.vision_tokens for p in ocr_pages if p.usage.vision_tokens
    ]
    output = [p.usage.output_tokens for p in pages if p.usage.output_tokens] + [
        p.usage.output_tokens for p in ocr_pages if p.usage.output_tokens
    ]
    return ExtractResponse(
        request_id=request.request_id,
        backend=backend,
        model=model,
        document=document.info(),
        json_schema=request.schema_name,
        scope=request.scope,
        data=data,
        valid=not errors,
        errors=errors,
        enforced_by=enforced_by,
        pages=pages,
        markdown="\n\n".join(p.markdown for p in ocr_pages if p.markdown) if request.include_markdown else None,
        timings=timings,
        usage=Usage(
            pages=len(pages),
            vision_tokens=sum(vision) if vision else None,
            output_tokens=sum(output) if output else None,
        ),
        warnings=notes,
        evidence=find_evidence(data, ocr_pages)
        if request.scope == "document" and ocr_pages and data is not None
        else None,
    )
