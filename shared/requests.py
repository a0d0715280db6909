"""What a client asks for, and what the router hands a backend deployment. Pure data, importable by clients."""

from __future__ import annotations

import json
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.errors import OCRError, validation_problems
from shared.schema import ErrorCode


def json_object(v: Any) -> Any:
    """Multipart forms carry ``options`` as a JSON string; JSON bodies as an object. Either way, an object."""
    if v is None or v == "":
        return {}
    if isinstance(v, str):
        try:
            v = json.loads(v)
        except json.JSONDecodeError as e:
            raise ValueError(f"options must be a JSON object: {e}") from None
    if not isinstance(v, dict):
        raise ValueError("options must be a JSON object")
    return v


class OutputOptions(BaseModel):
    """What an answer carries besides its text, common to every backend: request fields that travel to the backend
    whole, as ``RunRequest.output``, and are read by ``backends.pipeline.run_document``. A new one is a field here
    (``OCROptions`` and ``JobOptions`` inherit it; :meth:`RunRequest.of` passes on every field a request model has)
    and the client's and CLI's flag. Options the router applies to the answer itself (a chunking of the markdown)
    belong on ``OCROptions``, not here: they are not the backend's business."""

    model_config = ConfigDict(extra="forbid")

    include_boxes_image: bool = Field(default=True, description="Return a PNG per page with the boxes drawn.")
    include_raw: bool = Field(default=False, description="Return the backend's native output as raw_result.")


ChunkingMode = Literal["none", "layout", "tokens"]

MAX_CHUNK_TOKENS = 8192


class ChunkingOptions(BaseModel):
    """Chunks for a retrieval index (``shared.chunking``): request fields to nest in a request's options."""

    model_config = ConfigDict(extra="forbid")

    chunking: ChunkingMode = Field(
        default="none",
        description="'none': no chunks; 'layout': one chunk per section (a heading and what follows it, headings "
        "carried down as the heading path, tables whole, a section longer than chunk_tokens cut between "
        "paragraphs); 'tokens': chunks of at most chunk_tokens with chunk_overlap tokens repeated from the previous "
        "one, cut between paragraphs, then sentences, then words - never inside a table or a word.",
    )
    chunk_tokens: int = Field(
        default=512,
        ge=32,
        le=MAX_CHUNK_TOKENS,
        description="Most tokens of a chunk's text, overlap included (a single table longer than this is one chunk, "
        "flagged oversize).",
    )
    chunk_overlap: int = Field(
        default=0,
        ge=0,
        description="tokens mode: tokens of the previous chunk's end repeated at the start of the next (whole "
        "words, never from a table); at most half of chunk_tokens. Must be 0 in layout mode.",
    )
    tokenizer: str = Field(
        default="cl100k_base",
        description="What counts tokens: 'cl100k_base' or 'o200k_base' (OpenAI's encodings, bundled), or "
        "'backend:<name>' for that backend's own model tokenizer (DeepSeek's).",
    )

    @model_validator(mode="after")
    def _check(self) -> ChunkingOptions:
        if self.chunk_overlap and self.chunking != "tokens":
            raise ValueError("chunk_overlap is only used by chunking 'tokens'")
        if self.chunk_overlap * 2 > self.chunk_tokens:
            raise ValueError(f"chunk_overlap ({self.chunk_overlap}) may be at most half of chunk_tokens")
        return self


class OCROptions(OutputOptions, ChunkingOptions):
    """Options of ``POST /v1/ocr``, common to every backend (multipart form fields or JSON body fields): the output
    options of :class:`OutputOptions` (carried to the backend) and the chunking fields of :class:`ChunkingOptions`
    (the answer's ``chunks``, cut by the router after any cascade)."""

    model_config = ConfigDict(extra="forbid")

    backend: str | None = Field(
        default=None,
        description="Backend name from GET /v1/backends, or 'auto'; absent: the server's default_backend (auto).",
    )
    pages: str | None = Field(default=None, description="1-based page range, e.g. '1-3,7'; all pages when absent.")
    dpi: float | None = Field(default=None, description="Rasterisation DPI for PDF pages (default 144).")
    options: dict[str, Any] = Field(
        default_factory=dict, description="Backend-specific options (e.g. DeepSeek 'mode'/'prompt', MinerU 'tier')."
    )
    timeout_s: float | None = Field(default=None, gt=0, description="Give up after this long (capped by the server).")

    @field_validator("options", mode="before")
    @classmethod
    def _options_from_json(cls, v: Any) -> Any:
        return json_object(v)


class Base64File(BaseModel):
    """A document inside a JSON body (the alternative to a multipart upload)."""

    model_config = ConfigDict(extra="forbid")

    file_base64: str = Field(description="The document's bytes, base64.")
    filename: str = Field(default="document", description="Display name of the document.")


class OCRJSONRequest(OCROptions, Base64File):
    """``POST /v1/ocr`` with a JSON body instead of a multipart upload."""


class JobOptions(OCROptions):
    """Options of ``POST /v1/jobs``: those of ``/v1/ocr``, and where to say that the job ended."""

    callback_url: str | None = Field(
        default=None,
        max_length=2048,
        description="http(s) URL POSTed (signed, see X-OCRServe-Signature) when the job ends; its host must be on "
        "the server's jobs.callback_hosts allow-list (empty by default: callbacks refused).",
    )

    @model_validator(mode="after")
    def _no_chunks(self) -> JobOptions:
        if self.chunking != "none":
            raise ValueError(
                "chunking is not done for jobs: cut the job's result with shared.chunking.chunk_response (the "
                "client's ocr_chunks does), or send the document to POST /v1/ocr"
            )
        return self


class JobJSONRequest(JobOptions, Base64File):
    """``POST /v1/jobs`` with a JSON body instead of a multipart upload."""


class RunRequest(BaseModel):
    """What the router sends a backend deployment along with the document, carried whole from the route to
    ``backends.pipeline.run_document``. Small and serialisable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    request_id: str
    received_at: float = Field(
        default_factory=time.time, description="Router receive time (epoch seconds), for queue timing."
    )
    output: OutputOptions = Field(default_factory=OutputOptions, description="What the answer carries.")
    options: dict[str, Any] = Field(default_factory=dict, description="The engine's own options.")

    @model_validator(mode="before")
    @classmethod
    def _nest_flat_output(cls, data: Any) -> Any:
        """Runs stored before the output options were nested (jobs in a job store) carried them flat."""
        if isinstance(data, dict) and OutputOptions.model_fields.keys() & data.keys():
            data = dict(data)
            flat = {k: data.pop(k) for k in OutputOptions.model_fields if k in data}
            data["output"] = {**flat, **dict(data.get("output") or {})}
        return data

    @classmethod
    def of(cls, request: BaseModel, *, request_id: str, received_at: float, options: dict[str, Any]) -> RunRequest:
        """The run of a client's request (``OCROptions``, ``JobOptions``, ``CompareOptions``): its output options,
        by field name, and the engine ``options`` meant for this backend."""
        fields = type(request).model_fields
        output = {name: getattr(request, name) for name in OutputOptions.model_fields if name in fields}
        return cls(request_id=request_id, received_at=received_at, output=OutputOptions(**output), options=options)


def parse_options(model: type[BaseModel] | None = None, **fields: Any) -> Any:
    """``model`` (OCROptions by default) from loose fields, validation errors turned into a 400 listing the fields.

    Raises:
        OCRError: ``invalid_option``.
    """
    from pydantic import ValidationError

    model = model or OCROptions
    try:
        return model.model_validate({k: v for k, v in fields.items() if v is not None})
    except ValidationError as e:
        raise OCRError(
            ErrorCode.INVALID_OPTION,
            f"bad request options: {validation_problems(e)}",
            accepted={name: f.description for name, f in model.model_fields.items()},
        ) from None


class CompareOptions(BaseModel):
    """Options of ``POST /v1/compare`` (multipart form fields or JSON body fields)."""

    model_config = ConfigDict(extra="forbid")

    backends: list[str] = Field(
        default_factory=list, description="Backends to compare (comma-separated in forms); empty means all deployed."
    )
    pages: str | None = Field(default=None, description="1-based page range, e.g. '1-3,7'.")
    dpi: float | None = Field(default=None, description="Rasterisation DPI for PDF pages.")
    include_boxes_image: bool = Field(default=False, description="Return boxes images (large; off by default).")
    options: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Per-backend options: {backend name: {option: value}}."
    )
    timeout_s: float | None = Field(default=None, gt=0, description="Per-backend time limit (capped by the server).")

    @field_validator("backends", mode="before")
    @classmethod
    def _split(cls, v: Any) -> Any:
        if isinstance(v, str):
            return [b.strip() for b in v.split(",") if b.strip() and b.strip() != "all"]
        return v

    @field_validator("options", mode="before")
    @classmethod
    def _options_from_json(cls, v: Any) -> Any:
        return json_object(v)


class CompareJSONRequest(CompareOptions, Base64File):
    """``POST /v1/compare`` with a JSON body."""


class PageImageOptions(BaseModel):
    """Options of ``POST /v1/page-image``: which page of the document to render, and how finely."""

    model_config = ConfigDict(extra="forbid")

    page: int = Field(default=1, ge=1, description="1-based page (or TIFF frame) to render.")
    dpi: float | None = Field(
        default=None, description="Rasterisation DPI for PDF pages (default 144): the DPI the OCR request used."
    )


class PageImageJSONRequest(PageImageOptions, Base64File):
    """``POST /v1/page-image`` with a JSON body."""


class ExtractOptions(BaseModel):
    """Options of ``POST /v1/extract`` (multipart form fields or JSON body fields)."""

    model_config = ConfigDict(extra="forbid")

    json_schema: dict[str, Any] | None = Field(
        default=None,
        description="JSON Schema the answer must satisfy (an object; a JSON string in forms). Give this or preset. "
        'Let fields be null ("type": ["string", "null"]) so the model can say it found nothing.',
    )
    preset: str | None = Field(
        default=None, description="Name of a shipped schema instead of json_schema: receipt, invoice, id_card."
    )
    backend: str | None = Field(
        default=None,
        description="Backend that extracts (one that enforces schemas); absent or 'auto': the first "
        "ready one that can.",
    )
    scope: Literal["page", "document"] = Field(
        default="document",
        description="'page': one answer per page; 'document': the pages' answers merged into one (single-page "
        "documents: the page's answer).",
    )
    prompt: str | None = Field(
        default=None,
        description="Instruction instead of the default one built from the schema's field names (e.g. the prompt an "
        "adapter was fine-tuned with); <image> is prepended when absent.",
    )
    include_markdown: bool = Field(
        default=True, description="Also OCR every page (same batch) and return the markdown alongside, for audit."
    )
    pages: str | None = Field(default=None, description="1-based page range, e.g. '1-3,7'; all pages when absent.")
    dpi: float | None = Field(default=None, description="Rasterisation DPI for PDF pages (default 144).")
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Backend options (DeepSeek: adapter, mode, max_new_tokens...), as for /v1/ocr.",
    )
    timeout_s: float | None = Field(default=None, gt=0, description="Give up after this long (capped by the server).")

    @field_validator("options", mode="before")
    @classmethod
    def _options_from_json(cls, v: Any) -> Any:
        return json_object(v)

    @field_validator("json_schema", mode="before")
    @classmethod
    def _schema_from_json(cls, v: Any) -> Any:
        return None if v is None or v == "" else json_object(v)


class ExtractJSONRequest(ExtractOptions, Base64File):
    """``POST /v1/extract`` with a JSON body."""


class ExtractRunRequest(BaseModel):
    """What the router sends a backend deployment for an extraction, besides the document. Serialisable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    request_id: str
    received_at: float = Field(description="Router receive time (epoch seconds), for queue timing.")
    json_schema: dict[str, Any] = Field(description="The schema, already checked to be a valid JSON Schema.")
    schema_name: str = Field(description="'preset:<name>' or 'custom:<hash>', echoed in the response.")
    scope: Literal["page", "document"] = "document"
    prompt: str | None = None
    include_markdown: bool = True
    options: dict[str, Any] = Field(default_factory=dict)


class RenderRequest(BaseModel):
    """``POST /v1/render`` (JSON body): text to draw into page images for a DeepSeek resolution mode."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, description="The text to render (lines kept; long lines wrapped).")
    mode: Literal["tiny", "small", "base", "large", "gundam"] = Field(
        default="small",
        description="Mode the pages are made for: the page size is the mode's view (tiny 512, small 640, base 1024, "
        "large 1280 px squares; gundam 1280 x 1920, two by three 640 px tiles).",
    )
    font: Literal["monospace", "proportional"] = Field(
        default="monospace", description="monospace (DejaVu Sans Mono, shipped) or proportional (Pillow's Aileron)."
    )
    font_size_px: int | None = Field(
        default=None, ge=6, le=96, description="Font size in pixels; default chosen for the mode (see the README)."
    )
    margin_px: int | None = Field(default=None, ge=0, le=400, description="Margin on every side; default per mode.")
    dpi: float = Field(default=144.0, ge=36, le=600, description="Resolution written into each PNG (metadata).")
    max_pages: int = Field(default=50, ge=1, le=200, description="Refuse text that needs more pages than this.")
    backend: str | None = Field(
        default=None,
        description="Backend whose model tokenizer counts text tokens; absent: the first ready backend with a "
        "tokenizer, else the documented estimate.",
    )
    include_images: bool = Field(default=True, description="Return each page's PNG (false: only the figures).")
