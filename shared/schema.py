"""The unified response schema: one shape for every backend, every success and every failure.

Clients import this module without the server's dependencies (pydantic only), so they can validate what the
service returns. Versioned by ``SCHEMA_VERSION``; a breaking change bumps the major number.

How the seed system's unified format maps onto this one:

===================  ==========================================
seed field           here
===================  ==========================================
``success``          ``OCRResponse.success``
``backend``          ``OCRResponse.backend``
``raw_result``       ``OCRResponse.raw_result``
``markdown``         ``OCRResponse.markdown`` (and ``PageResult.markdown``)
``source_markdown``  ``OCRResponse.source_markdown`` (the engine's own text before clean-up)
``boxes_image``      ``PageResult.boxes_image`` (one PNG per page)
``processing_time``  ``OCRResponse.timings.total_s``
``image_name``       ``OCRResponse.document.name``
===================  ==========================================
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = "1.0"

BlockType = Literal["text", "title", "table", "figure", "formula", "caption", "list", "header", "footer", "other"]
BLOCK_TYPES: tuple[str, ...] = get_args(BlockType)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Line(_Model):
    """One recognised line inside a block, for engines that report lines (RapidOCR)."""

    text: str = Field(description="Recognised text of the line.")
    bbox: list[float] = Field(description="[x0, y0, x1, y1] in page-image pixels.")
    score: float | None = Field(default=None, description="Recognition confidence 0-1, when the engine gives one.")


class TableCell(_Model):
    """One cell of a table block, where the engine recognises table structure (RapidOCR's table model)."""

    row: int = Field(description="0-based index of the cell's first row.")
    col: int = Field(description="0-based index of the cell's first column.")
    row_span: int = Field(default=1, description="Rows the cell spans.")
    col_span: int = Field(default=1, description="Columns the cell spans.")
    text: str = Field(default="", description="Text of the cell, from the OCR lines that fall in it.")
    bbox: list[float] = Field(description="[x0, y0, x1, y1] of the cell in page-image pixels.")


class Block(_Model):
    """A layout block: a paragraph, title, table, figure... in reading order."""

    type: BlockType = Field(description="Block type from the unified vocabulary.")
    text: str = Field(default="", description="Block content (markdown; tables as HTML, formulas as LaTeX).")
    bbox: list[float] = Field(description="[x0, y0, x1, y1] in page-image pixels, origin top-left.")
    bbox_norm: list[float] = Field(description="[x0, y0, x1, y1] normalised to 0-1 by the page's width and height.")
    score: float | None = Field(default=None, description="Confidence 0-1, when the engine gives one.")
    label: str | None = Field(default=None, description="The engine's own label for this block, before mapping.")
    lines: list[Line] | None = Field(default=None, description="Lines of the block, when the engine reports lines.")
    cells: list[TableCell] | None = Field(
        default=None, description="Cells of a table block (row, column, spans, text, box), when the engine gives them."
    )


class PageUsage(_Model):
    """Cost figures of one page, where the engine knows them."""

    vision_tokens: int | None = Field(default=None, description="Vision tokens the page was encoded into.")
    output_tokens: int | None = Field(default=None, description="Tokens the model generated for the page.")
    compression_ratio: float | None = Field(
        default=None, description="Output text tokens per vision token (DeepSeek-OCR's headline metric)."
    )


class PageResult(_Model):
    """One page of the document as the backend saw it."""

    index: int = Field(description="0-based index of the page in the source document.")
    width: int = Field(description="Width of the page image in pixels (the image the boxes refer to).")
    height: int = Field(description="Height of the page image in pixels.")
    dpi: float | None = Field(default=None, description="Resolution the page was rendered or scanned at.")
    markdown: str = Field(default="", description="Markdown of this page.")
    blocks: list[Block] = Field(default_factory=list, description="Layout blocks in reading order.")
    boxes_image: str | None = Field(
        default=None, description="PNG of the page with every block's box drawn, base64; null when not requested."
    )
    usage: PageUsage = Field(default_factory=PageUsage, description="Per-page cost figures.")
    warnings: list[str] = Field(
        default_factory=list,
        description="What went wrong on this page without failing it (e.g. 'truncated: hit the token limit').",
    )
    backend: str | None = Field(
        default=None, description="Backend that read this page, when a cascade answered with several."
    )


class DocumentInfo(_Model):
    """What was received."""

    name: str = Field(description="File name given by the client (display only; never used as a path).")
    media_type: str = Field(description="Media type detected from the content.")
    size_bytes: int = Field(description="Size of the upload in bytes.")
    sha256: str = Field(description="SHA-256 of the upload, hex.")
    page_count: int = Field(description="Pages in the whole document.")
    pages_processed: list[int] = Field(description="0-based indices of the pages that were processed.")


class ModelInfo(_Model):
    """Which model and engine produced the result."""

    id: str = Field(description="Model id (HF id, local path or package model name).")
    version: str | None = Field(default=None, description="Version of the model or of its package.")
    engine: str = Field(description="Inference engine, e.g. 'onnxruntime', 'vllm', 'transformers', 'mineru'.")
    device: str | None = Field(default=None, description="Device the model ran on, e.g. 'cpu', 'cuda:0'.")
    adapter: str | None = Field(
        default=None,
        description="LoRA adapter that answered (its name in the backend's config); null when the base model did.",
    )


class Timings(_Model):
    """Where the time went, in seconds."""

    queue_s: float = Field(default=0.0, description="From the router receiving the request to the engine starting.")
    inference_s: float = Field(default=0.0, description="Engine time, rasterisation included.")
    total_s: float = Field(default=0.0, description="From the router receiving the request to the answer.")


class ComputeUsage(_Model):
    """Compute a request used: the replica's reserved resources x its engine time, shared among the requests in
    the engine at the same moment (so a replica's requests add up to its busy time)."""

    cpu_seconds: float = Field(default=0.0, description="CPU-seconds (reserved CPUs x share of engine time).")
    gpu_seconds: float = Field(default=0.0, description="GPU-seconds (reserved GPUs x share of engine time).")


class Usage(_Model):
    """Cost figures of the whole request."""

    pages: int = Field(description="Pages processed.")
    vision_tokens: int | None = Field(default=None, description="Sum over pages, when known.")
    output_tokens: int | None = Field(default=None, description="Sum over pages, when known.")
    compression_ratio: float | None = Field(default=None, description="output_tokens / vision_tokens, when known.")
    compute: ComputeUsage | None = Field(
        default=None, description="Compute the request used, by resource; null outside a Ray replica."
    )


class Escalation(_Model):
    """A page a cascade sent to its stronger backend, and why."""

    page: int = Field(description="0-based page index.")
    rules: list[str] = Field(description="Rules the first backend's page met (no_text, low_confidence, table...).")
    from_backend: str = Field(
        description="The cheap backend the page was meant for (it never saw pages sent straight up by the "
        "no_text_layer or first_failed rules)."
    )
    to_backend: str = Field(description="The stronger backend it was sent to.")
    answered_by: str = Field(description="Backend whose page is in the answer (the first one if the second failed).")


class BlockRef(_Model):
    """Where a piece of an answer came from: one block of one page."""

    page: int = Field(description="0-based page index (the page's `index`).")
    block: int = Field(description="Index of the block in that page's `blocks`.")


class SourceBox(_Model):
    """A box to draw on a page: where a chunk's or a field's text was read."""

    page: int = Field(description="0-based page index (the page's `index`).")
    bbox: list[float] = Field(description="[x0, y0, x1, y1] in that page image's pixels.")
    bbox_norm: list[float] = Field(description="[x0, y0, x1, y1] normalised to 0-1 by the page's width and height.")


class Chunk(_Model):
    """A piece of the document's markdown for a retrieval index, with where on which pages it came from."""

    id: str = Field(description="Stable id within this response: 'c' + the chunk's position, zero-padded.")
    text: str = Field(
        description="Markdown to index: whole markdown elements (paragraphs, headings, tables, formulas) joined "
        "by a blank line; in tokens mode, after the first `overlap_chars` characters repeated from the previous "
        "chunk."
    )
    heading_path: list[str] = Field(
        description="Headings this chunk sits under, outermost first (markdown '#' levels), the headings it opens "
        "with included; empty before the document's first heading."
    )
    pages: list[int] = Field(description="0-based indices of the pages the chunk's text is on, in order.")
    block_refs: list[BlockRef] = Field(
        description="Blocks the chunk's text was read from, in reading order (empty for text only in markdown, "
        "e.g. an engine's ungrounded preamble)."
    )
    boxes: list[SourceBox] = Field(description="Those blocks' boxes, one per block ref, to draw a hit on its page.")
    tokens: int = Field(description="Tokens of `text` (overlap included) by the response's `chunking.tokenizer`.")
    overlap_chars: int = Field(
        default=0,
        description="tokens mode: characters at the start of `text` that repeat the end of the previous chunk "
        "(context, not new content); 0 in layout mode and for the first chunk.",
    )
    oversize: bool = Field(
        default=False,
        description="The chunk is one table longer than `chunk_tokens`: kept whole, as tables are never split.",
    )


class ChunkingInfo(_Model):
    """How a response's `chunks` were cut."""

    mode: Literal["layout", "tokens"] = Field(description="'layout': by section; 'tokens': by size with overlap.")
    tokenizer: str = Field(
        description="What counted tokens: a bundled encoding ('cl100k_base', 'o200k_base') or "
        "'backend:<name> (<model>)' for a backend's own tokenizer."
    )
    chunk_tokens: int = Field(description="Most tokens of a chunk's text (overlap included), oversize tables aside.")
    chunk_overlap: int = Field(description="tokens mode: most tokens repeated from the previous chunk; 0 otherwise.")


class OCRResponse(_Model):
    """A successful OCR answer."""

    schema_version: str = Field(default=SCHEMA_VERSION, description="Version of this schema.")
    request_id: str = Field(description="Request id (the client's x-request-id when given).")
    success: Literal[True] = Field(default=True, description="Always true here; failures use ErrorResponse.")
    backend: str = Field(description="Name of the backend deployment that answered.")
    model: ModelInfo = Field(description="Model and engine that produced the result.")
    document: DocumentInfo = Field(description="What was received.")
    markdown: str = Field(description="Markdown of the whole document, pages separated by a blank line.")
    source_markdown: str | None = Field(
        default=None, description="The engine's own output text before clean-up (e.g. with grounding tags)."
    )
    pages: list[PageResult] = Field(description="One entry per processed page, in document order.")
    raw_result: Any = Field(default=None, description="The backend's native output, JSON; null when not requested.")
    timings: Timings = Field(default_factory=Timings, description="Where the time went.")
    usage: Usage = Field(description="Cost figures of the whole request.")
    warnings: list[str] = Field(default_factory=list, description="Request-level warnings (e.g. an option ignored).")
    escalations: list[Escalation] = Field(
        default_factory=list, description="Pages a cascade sent to its stronger backend (empty otherwise)."
    )
    chunks: list[Chunk] | None = Field(
        default=None,
        description="The markdown cut into pieces for a retrieval index, each with its heading path, pages, blocks "
        "and boxes (when the request asked for `chunking`); null otherwise.",
    )
    chunking: ChunkingInfo | None = Field(
        default=None, description="How `chunks` were cut (mode, tokenizer, limits); null without chunks."
    )


class ErrorCode(str, Enum):
    """Machine-readable error codes. Each has one HTTP status (``shared.errors.HTTP_STATUS``)."""

    EMPTY_DOCUMENT = "empty_document"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    INVALID_DOCUMENT = "invalid_document"
    ENCRYPTED_DOCUMENT = "encrypted_document"
    DOCUMENT_TOO_LARGE = "document_too_large"
    TOO_MANY_PAGES = "too_many_pages"
    TOO_MANY_PIXELS = "too_many_pixels"
    DOCUMENT_TOO_COMPLEX = "document_too_complex"
    UNSAFE_DOCUMENT = "unsafe_document"
    INVALID_PAGE_RANGE = "invalid_page_range"
    INVALID_OPTION = "invalid_option"
    UNKNOWN_BACKEND = "unknown_backend"
    BACKEND_UNAVAILABLE = "backend_unavailable"
    MODELS_MISSING = "models_missing"
    UNAUTHORIZED = "unauthorized"
    OVERLOADED = "overloaded"
    TIMEOUT = "timeout"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    JOB_NOT_FINISHED = "job_not_finished"
    JOB_CANCELLED = "job_cancelled"
    JOB_FINISHED = "job_finished"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    INTERNAL_ERROR = "internal_error"

    def __str__(self) -> str:
        return self.value


class ErrorDetail(_Model):
    """What went wrong, and what would have been accepted."""

    code: ErrorCode = Field(description="Machine-readable error code.")
    message: str = Field(description="Human-readable explanation.")
    accepted: Any = Field(default=None, description="What is accepted instead (names, media types, ranges...).")


class ErrorResponse(_Model):
    """The one shape of every failure, whatever the status code."""

    schema_version: str = Field(default=SCHEMA_VERSION, description="Version of this schema.")
    request_id: str | None = Field(default=None, description="Request id, when one was assigned.")
    success: Literal[False] = Field(default=False, description="Always false.")
    backend: str | None = Field(default=None, description="Backend concerned, when there is one.")
    error: ErrorDetail = Field(description="What went wrong.")


class Capabilities(_Model):
    """What a backend's engine can do, as the engine declares it (``OCREngine.capabilities``): the router chooses
    backends for extraction and token counting, and labels metrics, from this alone."""

    reads: list[str] = Field(default_factory=list, description="Media types it reads.")
    extracts: bool = Field(
        default=False, description="Extracts fields as JSON constrained to a schema (POST /v1/extract)."
    )
    counts_tokens: bool = Field(
        default=False, description="Counts text tokens with its model's own tokenizer (POST /v1/render)."
    )
    metric_options: list[str] = Field(
        default_factory=list,
        description="Per-request options whose value labels the latency metric (the engine's mode or tier).",
    )
    vision_token_modes: list[str] = Field(
        default_factory=list,
        description="Resolution modes whose vision-token cost per page the engine computes (POST /v1/render).",
    )
    prompts: dict[str, str] = Field(
        default_factory=dict,
        description="Prompts its model takes by name (backend option 'prompt'), each with its full text; empty: "
        "the engine takes no prompt (POST /v1/chat/completions then accepts only the prompts OCR clients send).",
    )
    custom_prompt: bool = Field(
        default=False, description="Takes any text as its prompt (options prompt='custom', custom_prompt=...)."
    )
    token_limit_option: str | None = Field(
        default=None, description="The backend option that caps generated tokens (OpenAI's max_tokens maps to it)."
    )


class BackendStatus(_Model):
    """One entry of ``GET /v1/backends``."""

    name: str = Field(description="Backend name, as used in requests.")
    engine: str = Field(description="Engine kind from the registry (rapidocr, deepseek, mineru...).")
    status: Literal["ready", "unhealthy", "unavailable"] = Field(description="Whether it can take requests now.")
    model: ModelInfo | None = Field(default=None, description="Model it serves, when it answered.")
    media_types: list[str] = Field(default_factory=list, description="Media types it accepts.")
    replicas: int | None = Field(default=None, description="Running replicas, when known.")
    detail: str | None = Field(default=None, description="Why it is not ready, when it is not.")
    info: dict[str, Any] = Field(default_factory=dict, description="Engine-specific health facts (versions...).")
    capabilities: Capabilities | None = Field(
        default=None, description="What the backend can do (extraction, token counting...), when it answered."
    )
    options_schema: dict[str, Any] | None = Field(
        default=None,
        description="JSON schema of the backend's per-request `options` (defaults are this deployment's), so a "
        "client (the web page) can offer them without knowing the engine.",
    )


class CompareSuccess(_Model):
    """A backend that answered, in a comparison."""

    backend: str = Field(description="Backend name.")
    ok: Literal[True] = Field(default=True, description="This backend answered successfully.")
    seconds: float = Field(description="Wall time of this backend's call, seconds.")
    result: OCRResponse = Field(description="The backend's response.")


class CompareFailure(_Model):
    """A backend that failed, in a comparison (the others still answer)."""

    backend: str = Field(description="Backend name.")
    ok: Literal[False] = Field(default=False, description="This backend failed.")
    seconds: float = Field(description="Wall time of this backend's call, seconds.")
    error: ErrorDetail = Field(description="What went wrong.")


CompareEntry = Annotated[CompareSuccess | CompareFailure, Field(discriminator="ok")]
"""One backend's answer in a comparison: its response, or its error; ``ok`` says which."""


class PairAgreement(_Model):
    """How much two backends' texts agree (OmniDocBench-normalised edit distance)."""

    a: str = Field(description="First backend.")
    b: str = Field(description="Second backend.")
    ned: float = Field(description="Normalised edit distance between their markdown, 0 = identical.")
    agreement: float = Field(description="1 - ned.")


class BlockMatch(_Model):
    """Two backends' blocks that cover the same region of a page, and how much they agree."""

    a: str = Field(description="First backend.")
    b: str = Field(description="Second backend.")
    a_index: int = Field(description="Index of the block in the first backend's page.blocks.")
    b_index: int = Field(description="Index of the block in the second backend's page.blocks.")
    iou: float = Field(description="Intersection over union of their normalised boxes.")
    agreement: float = Field(description="1 - NED of their texts (OmniDocBench normalisation); 1 = same text.")
    teds: float | None = Field(default=None, description="TEDS of the two tables, when both blocks are tables.")
    agrees: bool = Field(
        default=True, description="Whether their texts agree at least as much as the page's disagree_below."
    )


class PageComparison(_Model):
    """Block-level agreement on one page: matched blocks of every pair of backends, and what nobody else has."""

    index: int = Field(description="0-based page index.")
    matches: list[BlockMatch] = Field(description="Matched blocks of every pair of backends.")
    unmatched: dict[str, list[int]] = Field(
        description="Per backend, indices of its blocks that no other backend has a block for (by box overlap)."
    )
    disagree_below: float = Field(
        default=0.8, description="Text agreement under which a matched block disagrees (the service's rule)."
    )
    disagreements: dict[str, list[int]] = Field(
        default_factory=dict,
        description="Per backend, indices of its blocks no other backend agrees with: unmatched, or every match "
        "of theirs below disagree_below. What the web page marks.",
    )


class CompareResponse(_Model):
    """``POST /v1/compare``: one document through several backends at once."""

    schema_version: str = Field(default=SCHEMA_VERSION, description="Version of this schema.")
    request_id: str = Field(description="Request id.")
    success: Literal[True] = Field(default=True, description="True when the comparison ran (entries may have failed).")
    document: DocumentInfo = Field(description="What was received.")
    entries: list[CompareEntry] = Field(description="One per backend, in the order asked.")
    agreement: list[PairAgreement] = Field(description="Every pair of successful backends (whole-document text).")
    pages: list[PageComparison] = Field(
        default_factory=list, description="Block-level agreement, page by page (pages two or more backends read)."
    )


class CascadeInfo(_Model):
    """A cascade policy a request can name as its backend (``router.cascades``)."""

    name: str = Field(description="What a request sends as ``backend``.")
    first: str = Field(description="The cheap backend every page goes to first.")
    then: str = Field(description="The stronger backend pages meeting a rule are sent to.")
    rules: list[str] = Field(description="The escalation rules it checks (no_text, low_confidence, table...).")


class BackendList(_Model):
    """``GET /v1/backends``: what is deployed and whether it can work now."""

    backends: list[BackendStatus] = Field(description="Every deployed backend with its health.")
    auto_order: list[str] = Field(
        description="Order in which 'auto' tries backends (first ready one that reads the type)."
    )
    default_backend: str = Field(description="Backend (or cascade) used when a request names none.")
    cascades: list[CascadeInfo] = Field(
        default_factory=list, description="Cascade policies, requested like a backend (docs/engines-as-one.md)."
    )


JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
JOB_ENDED_STATES: tuple[str, ...] = ("succeeded", "failed", "cancelled")
"""States a job never leaves."""


class JobStatus(_Model):
    """``GET /v1/jobs/{id}``: where an asynchronous job stands."""

    job_id: str = Field(description="Job id (32 hex digits).")
    state: JobState = Field(
        description="queued (no chunk started yet), running, succeeded, failed (a chunk failed for good: `error`), "
        "or cancelled (DELETE /v1/jobs/{id}; the pages finished before stay readable)."
    )
    backend: str = Field(description="Backend processing it.")
    pages_total: int = Field(description="Pages to process.")
    pages_done: int = Field(default=0, description="Pages processed so far.")
    chunks_total: int = Field(default=0, description="Chunks the pages are split into (jobs.chunk_pages each).")
    chunks_done: int = Field(default=0, description="Chunks finished so far.")
    created_at: float = Field(description="Submit time, epoch seconds.")
    updated_at: float = Field(description="Last progress, epoch seconds.")
    started_at: float | None = Field(default=None, description="When the first chunk started, epoch seconds.")
    finished_at: float | None = Field(default=None, description="When the job ended, epoch seconds.")
    error: ErrorDetail | None = Field(default=None, description="Why it failed.")
    result_url: str | None = Field(default=None, description="Where the result is, once succeeded.")
    events_url: str | None = Field(default=None, description="Server-sent events of the job (progress, pages, end).")
    callback: str | None = Field(
        default=None,
        description="The end-of-job callback: waiting (for the end), pending, delivered, or failed (after its "
        "retries); null without one.",
    )


class JobPages(_Model):
    """``GET /v1/jobs/{id}/pages``: the pages a job has finished so far, for clients that show them as they come."""

    job_id: str = Field(description="Job id.")
    state: JobState = Field(description="The job's state when these pages were read.")
    pages_done: int = Field(description="Pages processed so far.")
    pages_total: int = Field(description="Pages to process.")
    start: int = Field(description="Position (0-based, in the order pages finished) of the first page in `pages`.")
    pages: list[PageResult] = Field(
        description="Finished pages from `start` on, in the order they finished: chunks run in parallel, so a "
        "later page can come first; each carries its `index`. Positions never change once given."
    )
    error: ErrorDetail | None = Field(default=None, description="Why the job failed, when it did.")


class JobPageEvent(_Model):
    """Data of a ``page`` event of ``GET /v1/jobs/{id}/events``: one finished page."""

    job_id: str = Field(description="Job id.")
    position: int = Field(description="0-based position of the page in the order pages finished (as in /pages).")
    page: PageResult = Field(description="The page, as it will be in the result.")


JOB_EVENT_KINDS: tuple[str, ...] = ("status", "page", "progress", "end")
"""Event names of the job stream: ``status`` (once, on connecting: the job's status, no id), ``page`` (a finished
page, :class:`JobPageEvent`), ``progress`` (after each finished chunk: the job's status), ``end`` (the final
status; the stream closes after it)."""


# --- fields as JSON (POST /v1/extract) -------------------------------------------------------------------------

ExtractScope = Literal["page", "document"]


EvidenceMatch = Literal["exact", "normalised", "fuzzy", "not_found"]


class FieldEvidence(_Model):
    """Where on the pages an extracted value was read (``shared.evidence``), so an auditor can check it."""

    path: str = Field(
        description="JSON pointer of the leaf field in the answer, e.g. '/total', '/line_items/0/amount'."
    )
    value: Any = Field(description="The extracted value (a string or a number).")
    match: EvidenceMatch = Field(
        description="'exact': the value as printed; 'normalised': the same after folding case, spaces, currency "
        "symbols, number formats (1,234.50 = 1234.5) or date formats (14/03/2026 = 2026-03-14); 'fuzzy': a close "
        "match (OCR slips), see score; 'not_found': no evidence on the pages - the value is flagged, not dropped."
    )
    score: float = Field(
        description="1.0 for exact and normalised matches, rapidfuzz's partial ratio / 100 for fuzzy, 0."
    )
    page: int | None = Field(default=None, description="0-based page index where it was found; null when not found.")
    block_refs: list[BlockRef] = Field(default_factory=list, description="The OCR block(s) the value was read from.")
    boxes: list[SourceBox] = Field(
        default_factory=list,
        description="Where to draw it: the OCR line or table cell holding the value when the engine reports lines or "
        "cells, else its lines in the block, else the block.",
    )
    text: str | None = Field(default=None, description="The OCR text the value was found in (line, cell or block).")
    candidates: int = Field(
        default=0,
        description="Places on the pages that match as well as the one chosen (>1: the choice was ambiguous).",
    )


class PageExtraction(_Model):
    """One page's answer to an extraction: the model's JSON, whether it holds, and the page's OCR for audit."""

    index: int = Field(description="0-based index of the page in the source document.")
    data: Any = Field(
        default=None,
        description="The page's answer parsed from the model's JSON; null when it did not parse (see errors).",
    )
    valid: bool = Field(description="Whether data parsed and validates against the schema.")
    errors: list[str] = Field(default_factory=list, description="Why data is null or does not validate.")
    text: str = Field(default="", description="The model's raw output for this page (the JSON as generated).")
    finish_reason: str | None = Field(
        default=None, description="'stop' (the JSON closed) or 'length' (max_new_tokens hit first)."
    )
    markdown: str | None = Field(
        default=None, description="The page's OCR markdown, read in the same batch (null unless include_markdown)."
    )
    usage: PageUsage = Field(default_factory=PageUsage, description="Vision and output tokens of the extraction.")
    warnings: list[str] = Field(default_factory=list, description="Page-level notes (a lowered token budget...).")
    evidence: list[FieldEvidence] | None = Field(
        default=None,
        description="Scope 'page': where each leaf value of this page's data was read on this page (needs the "
        "page's OCR, include_markdown); null otherwise.",
    )


class ExtractResponse(_Model):
    """``POST /v1/extract``: fields of a document as JSON constrained to a schema, with the OCR for audit."""

    schema_version: str = Field(default=SCHEMA_VERSION, description="Version of this schema.")
    request_id: str = Field(description="Request id (the client's x-request-id when given).")
    success: Literal[True] = Field(default=True, description="Always true here; failures use ErrorResponse.")
    backend: str = Field(description="Backend that answered.")
    model: ModelInfo = Field(description="Model, engine and adapter that produced the answer.")
    document: DocumentInfo = Field(description="What was received.")
    json_schema: str = Field(
        description="Which schema constrained the answer: 'preset:<name>' or 'custom:<sha256 of the schema, 12 hex>'."
    )
    scope: ExtractScope = Field(description="'page': one answer per page; 'document': the pages' answers merged.")
    data: Any = Field(
        default=None,
        description="Scope 'document': the document's answer (pages merged: first non-null value of each field, "
        "arrays concatenated in page order). Scope 'page': null (each page's answer is in pages[].data).",
    )
    valid: bool = Field(
        description="Scope 'document': data validates against the schema. Scope 'page': every page's data does. "
        "Checked again by the router, whatever the backend said."
    )
    errors: list[str] = Field(default_factory=list, description="Why the answer does not validate, when it does not.")
    enforced_by: str = Field(description="What constrained generation to the schema (e.g. vLLM structured outputs).")
    pages: list[PageExtraction] = Field(description="One entry per processed page, in document order.")
    markdown: str | None = Field(
        default=None, description="OCR markdown of the whole document, for audit (null unless include_markdown)."
    )
    timings: Timings = Field(default_factory=Timings, description="Where the time went.")
    usage: Usage = Field(description="Cost figures of the whole request (OCR pass included).")
    warnings: list[str] = Field(
        default_factory=list, description="Request-level warnings (merge conflicts, pages left out of the merge...)."
    )
    evidence: list[FieldEvidence] | None = Field(
        default=None,
        description="Scope 'document': for each leaf value of data, the page, block(s) and box where it was read and "
        "how well it matched (needs the pages' OCR, include_markdown); null otherwise.",
    )


# --- optical compression (POST /v1/render) -----------------------------------------------------------------------


class ModeCost(_Model):
    """What the rendered pages cost in one resolution mode of a model that reads pages as vision tokens."""

    mode: str = Field(description="Resolution mode (tiny, small, base, large, gundam).")
    model: str = Field(description="'DeepSeek-OCR' or 'DeepSeek-OCR-2' (OCR-2 has only base and gundam).")
    vision_tokens: int = Field(description="Vision tokens of all pages in this mode (the paper's count).")
    per_page: list[int] = Field(description="Vision tokens of each page.")
    compression_ratio: float | None = Field(
        description="Text tokens of the input per vision token (the paper's compression); null without text."
    )


class RenderedPage(_Model):
    """One page of rendered text."""

    index: int = Field(description="0-based page index.")
    width: int = Field(description="Width in pixels.")
    height: int = Field(description="Height in pixels.")
    dpi: float = Field(description="Resolution written into the PNG (pixels per inch).")
    text: str = Field(description="The text on this page, line breaks as drawn (what a perfect reader returns).")
    lines: int = Field(description="Lines drawn on this page.")
    text_tokens: int = Field(description="Text tokens of this page's text (same tokenizer as the response's).")
    png: str | None = Field(default=None, description="The page as a PNG, base64 (null when include_images=false).")


class RenderResponse(_Model):
    """``POST /v1/render``: text drawn into page images, and what those pages cost in vision tokens per mode."""

    schema_version: str = Field(default=SCHEMA_VERSION, description="Version of this schema.")
    request_id: str = Field(description="Request id.")
    success: Literal[True] = Field(default=True, description="Always true here; failures use ErrorResponse.")
    mode: str = Field(description="The mode the page geometry was chosen for.")
    font: str = Field(description="Font family drawn with: 'monospace' or 'proportional', and the font's name.")
    font_size_px: int = Field(description="Font size in pixels.")
    margin_px: int = Field(description="Margin on every side in pixels.")
    text_tokens: int = Field(description="Text tokens of the whole input.")
    tokenizer: str = Field(
        description="What counted text tokens: 'backend:<name> (<model>)' for a model's own tokenizer, or "
        "'estimate:...' for the fallback rule (see the README)."
    )
    characters: int = Field(description="Characters of the input.")
    pages: list[RenderedPage] = Field(description="The rendered pages, in order.")
    modes: list[ModeCost] = Field(description="Vision tokens and compression ratio of these pages in every mode.")
    warnings: list[str] = Field(default_factory=list, description="E.g. lines wider than the page were wrapped.")


class TokenCount(_Model):
    """What a backend's own tokenizer counts (``BackendDeployment.count_tokens``; used by ``/v1/render``)."""

    counts: list[int] = Field(description="Tokens of each text, in order.")
    tokenizer: str = Field(description="Whose tokenizer counted (the backend's model id).")
