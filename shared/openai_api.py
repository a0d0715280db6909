"""OpenAI's chat-completions protocol for OCR clients: the wire models and the pure adapters around them.

Most people reach DeepSeek-OCR, MinerU's VLM or olmOCR through an OpenAI-compatible ``/v1/chat/completions``
with the page as an image in the user message (DeepSeek-OCR's vLLM recipe, MinerU's ``vlm-http-client``, olmOCR's
``--server``, the ``openai`` package itself). This module speaks that protocol over this service's own answers:

- :class:`ChatCompletionRequest` accepts OpenAI's request (sampling fields and other harmless ones are accepted
  and ignored, listed in the answer's ``ocrserve.ignored``; what cannot be honoured - ``n`` > 1, tools, logprobs,
  JSON response formats, audio - is refused);
- :func:`read_messages` turns the messages into the pages (inline ``data:`` URLs, size-checked; a remote URL is
  refused: the service never fetches) and the prompt text;
- :func:`completion` and :func:`stream_chunks` turn :class:`~shared.schema.OCRResponse` answers into a chat
  completion or its SSE chunks, with ``usage`` from the engine's tokens (DeepSeek) or, where the engine has none,
  from a named tokenizer (said in ``ocrserve.usage_source``);
- :func:`openai_error` gives any :class:`~shared.errors.OCRError` OpenAI's error shape and this project's status.

Pure (pydantic, base64): importable by clients, used by the router.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.errors import HTTP_STATUS, OCRError
from shared.schema import SCHEMA_VERSION, Block, ErrorCode, ModelInfo, OCRResponse
from shared.tokens import NamedCounter

# --- the request ----------------------------------------------------------------------------------------------


class _Loose(BaseModel):
    """OpenAI adds fields over time: unknown ones are kept (and reported as ignored), not refused."""

    model_config = ConfigDict(extra="allow")


class TextPart(_Loose):
    type: Literal["text"]
    text: str = Field(description="Prompt text.")


class ImageURL(_Loose):
    url: str = Field(description="A data URL (data:image/png;base64,...); remote URLs are refused.")
    detail: str | None = Field(default=None, description="Accepted and ignored (the page is read at full size).")


class ImagePart(_Loose):
    type: Literal["image_url"]
    image_url: ImageURL | str = Field(description="The page image (an object with url, or the URL itself).")


class FileData(_Loose):
    file_data: str | None = Field(default=None, description="A data URL of the document (PDF or image).")
    filename: str | None = Field(default=None, description="Display name.")
    file_id: str | None = Field(default=None, description="Refused: this service keeps no uploaded files.")


class FilePart(_Loose):
    type: Literal["file"]
    file: FileData = Field(description="An inline document (OpenAI's file content part).")


ContentPart = Annotated[TextPart | ImagePart | FilePart, Field(discriminator="type")]


class ChatMessage(_Loose):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = Field(default=None, description="Text, or a list of content parts.")
    name: str | None = None


class StreamOptions(_Loose):
    include_usage: bool = Field(default=False, description="Send a last chunk with the request's usage.")


class ChatCompletionRequest(_Loose):
    """``POST /v1/chat/completions``: OpenAI's request, with the pages as images in the user message."""

    model: str = Field(description="A backend or cascade name (GET /v1/models lists them).")
    messages: list[ChatMessage] = Field(min_length=1, description="One user message with the page image(s).")
    stream: bool = Field(default=False, description="Answer as server-sent events (chat.completion.chunk).")
    stream_options: StreamOptions | None = Field(default=None, description="include_usage: a last usage chunk.")
    max_tokens: int | None = Field(default=None, ge=1, description="DeepSeek backends: cap on generated tokens.")
    max_completion_tokens: int | None = Field(default=None, ge=1, description="Same as max_tokens.")
    n: int | None = Field(default=None, description="Only 1 (one answer per page).")
    logprobs: bool | None = Field(default=None, description="Refused when true (engines give no log-probabilities).")
    top_logprobs: int | None = Field(default=None, description="Refused when set.")
    tools: list[Any] | None = Field(default=None, description="Refused when non-empty (no tool calls).")
    tool_choice: Any = Field(default=None, description="Only 'none'.")
    functions: list[Any] | None = Field(default=None, description="Refused when non-empty.")
    function_call: Any = Field(default=None, description="Refused when set.")
    response_format: dict[str, Any] | None = Field(
        default=None, description="Only {'type': 'text'}: for fields as JSON use POST /v1/extract."
    )
    modalities: list[str] | None = Field(default=None, description="Only ['text'].")
    audio: Any = Field(default=None, description="Refused when set.")
    logit_bias: dict[str, Any] | None = Field(default=None, description="Refused when non-empty.")

    def token_limit(self) -> int | None:
        """The cap on generated tokens the client asked for (max_completion_tokens wins), if any."""
        return self.max_completion_tokens or self.max_tokens

    def refusals(self) -> list[tuple[str, str]]:
        """(field, why) for each asked-for thing this service cannot honour."""
        out = []
        if self.n not in (None, 1):
            out.append(("n", "only n=1 is served: one answer per page"))
        if self.logprobs or self.top_logprobs:
            out.append(("logprobs", "OCR engines give no log-probabilities"))
        if self.tools or self.functions or self.function_call not in (None, "none"):
            out.append(("tools", "no tool or function calls: the answer is the page's text"))
        if self.tool_choice not in (None, "none", "auto"):
            out.append(("tool_choice", "no tool calls"))
        if self.response_format and self.response_format.get("type", "text") != "text":
            out.append(("response_format", "only text answers; for fields as JSON use POST /v1/extract"))
        if self.modalities and set(self.modalities) != {"text"} or self.audio is not None:
            out.append(("modalities", "only text answers"))
        if self.logit_bias:
            out.append(("logit_bias", "decoding is the engine's own"))
        return out

    def ignored(self) -> list[str]:
        """Fields that were sent and change nothing (harmless sampling knobs and unknown extras)."""
        sent = self.model_fields_set | set(self.model_extra or {})
        known = {"model", "messages", "stream", "stream_options", "n"}
        used = {"max_tokens", "max_completion_tokens"}
        return sorted(f for f in sent if f not in known and f not in used and f not in self._refusable())

    @staticmethod
    def _refusable() -> set[str]:
        return {"logprobs", "top_logprobs", "tools", "tool_choice", "functions", "function_call",
                "response_format", "modalities", "audio", "logit_bias"}  # fmt: skip


# --- errors --------------------------------------------------------------------------------------------------


class ChatRequestError(OCRError):
    """An OCRError that names the request field at fault (OpenAI's ``param``)."""

    def __init__(self, code: ErrorCode | str, message: str, *, param: str | None = None, accepted: Any = None):
        super().__init__(code, message, accepted=accepted)
        self.param = param

    def __reduce__(self):
        return (_rebuild_chat_error, (self.code.value, self.message, self.param, self.accepted))


def _rebuild_chat_error(code: str, message: str, param: str | None, accepted: Any) -> ChatRequestError:
    return ChatRequestError(code, message, param=param, accepted=accepted)


OPENAI_CODES: dict[ErrorCode, str] = {ErrorCode.UNKNOWN_BACKEND: "model_not_found"}
"""This project's codes that OpenAI clients know under another name (everything else keeps its own)."""


def openai_error_type(status: int) -> str:
    """OpenAI's error ``type`` for an HTTP status."""
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 404:
        return "not_found_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


class OpenAIErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIError(BaseModel):
    """OpenAI's error shape: ``{"error": {"message", "type", "param", "code"}}``."""

    error: OpenAIErrorBody


def openai_error(error: OCRError, *, request_id: str | None = None) -> tuple[int, OpenAIError]:
    """The HTTP status (this project's, from the error's code) and OpenAI's error body for ``error``.

    What would have been accepted is said in the message, since OpenAI's shape has no field for it.
    """
    status = HTTP_STATUS[error.code]
    message = error.message
    if error.accepted is not None:
        message += f" (accepted: {json.dumps(error.accepted, default=str)[:500]})"
    if request_id:
        message += f" [request id {request_id}]"
    param = getattr(error, "param", None)
    if param is None and error.code == ErrorCode.UNKNOWN_BACKEND:
        param = "model"
    body = OpenAIErrorBody(
        message=message,
        type=openai_error_type(status),
        param=param,
        code=OPENAI_CODES.get(error.code, error.code.value),
    )
    return status, OpenAIError(error=body)


# --- reading the messages ------------------------------------------------------------------------------------

_DATA_URL = re.compile(r"data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(?:;[\w.+-]+=[^;,]*)*)(?P<b64>;base64)?,", re.I)


@dataclass
class ChatImage:
    """One page from the messages.

    Attributes:
        data: Its bytes (the type is sniffed from them later, as for any upload).
        media_type: What the data URL declared (informative only).
        name: A display name for the document.
    """

    data: bytes
    media_type: str | None
    name: str


@dataclass
class ChatInput:
    """What a chat request asks: the pages and the prompt.

    Attributes:
        images: The pages, in message order.
        prompt: The text parts of the user message(s), joined by a newline (empty when there are none).
        ignored: What was sent and is not used (system prompts, sampling fields), for the answer to say.
    """

    images: list[ChatImage]
    prompt: str
    ignored: list[str] = field(default_factory=list)


def _refuse(message: str, param: str, code: ErrorCode = ErrorCode.INVALID_OPTION, accepted: Any = None) -> None:
    raise ChatRequestError(code, message, param=param, accepted=accepted)


def decode_data_url(url: str, *, param: str, max_bytes: int) -> tuple[bytes, str | None]:
    """The bytes of an inline ``data:`` URL, the size checked before decoding.

    Raises:
        ChatRequestError: ``invalid_option`` for a remote or malformed URL or bad base64;
            ``document_too_large`` past ``max_bytes``.
    """
    url = url.strip()
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme in ("http", "https", "ftp", "file", "s3", "gs"):
        _refuse(
            f"remote URLs are refused ({scheme}://...): this service never fetches a URL a client names; send the "
            "image inline as a data URL",
            param,
            accepted={"url": "data:image/png;base64,<base64 of the image>"},
        )
    m = _DATA_URL.match(url)
    if m is None or not m.group("b64"):
        _refuse(
            "not a base64 data URL; send data:<media type>;base64,<data>",
            param,
            accepted={"url": "data:image/png;base64,<base64 of the image>"},
        )
    assert m is not None
    payload = re.sub(r"\s+", "", url[m.end() :])
    if len(payload) * 3 // 4 > max_bytes + 3:
        _refuse(
            f"the image is about {len(payload) * 3 // 4} bytes; at most {max_bytes} are accepted",
            param,
            ErrorCode.DOCUMENT_TOO_LARGE,
            accepted={"max_bytes": max_bytes},
        )
    try:
        data = base64.b64decode(payload + "=" * (-len(payload) % 4), validate=True)
    except (binascii.Error, ValueError):
        _refuse("the data URL's base64 does not decode", param)
    if not data:
        _refuse("the data URL holds no bytes", param, ErrorCode.EMPTY_DOCUMENT)
    return data, (m.group("type") or None)


def read_messages(request: ChatCompletionRequest, *, max_bytes: int, max_images: int) -> ChatInput:
    """The pages (images or inline documents) and the prompt of a chat request.

    Rules: system and developer messages are ignored (MinerU's client sends "You are a helpful assistant.");
    user messages give the pages (``image_url`` or ``file`` parts with data URLs, in order) and the prompt (their
    text parts); assistant and tool messages are refused - a page is read in one turn.

    Raises:
        ChatRequestError: ``invalid_option`` for what cannot be honoured (see :meth:`ChatCompletionRequest.refusals`),
            no image, a remote or bad URL, a conversation history; ``document_too_large`` / ``too_many_pages``.
    """
    for name, why in request.refusals():
        _refuse(f"{name} cannot be honoured: {why}", name)
    images: list[ChatImage] = []
    texts: list[str] = []
    ignored = list(request.ignored())
    total = 0
    for i, message in enumerate(request.messages):
        where = f"messages[{i}]"
        if message.role in ("system", "developer"):
            ignored.append(f"{where} ({message.role})")
            continue
        if message.role != "user":
            _refuse(
                f"{where} is a {message.role} message: this endpoint reads pages in one turn (one user message with "
                "the page image and the prompt), not a conversation",
                where,
                accepted={"messages": "[system?], user"},
            )
        parts = [TextPart(type="text", text=message.content)] if isinstance(message.content, str) else message.content
        for j, part in enumerate(parts or []):
            param = f"{where}.content[{j}]"
            if isinstance(part, TextPart):
                if part.text.strip():
                    texts.append(part.text)
                continue
            if isinstance(part, ImagePart):
                url = part.image_url if isinstance(part.image_url, str) else part.image_url.url
                name = f"image-{len(images) + 1}"
                param += ".image_url.url"
            else:
                if part.file.file_id:
                    _refuse("file_id is refused: this service keeps no files; send file_data as a data URL", param)
                if not part.file.file_data:
                    _refuse("a file part needs file_data (a data URL)", param)
                url = str(part.file.file_data)
                name = part.file.filename or f"file-{len(images) + 1}"
                param += ".file.file_data"
            if len(images) >= max_images:
                _refuse(
                    f"more than {max_images} images in one request",
                    param,
                    ErrorCode.TOO_MANY_PAGES,
                    accepted={"max_images": max_images},
                )
            data, media_type = decode_data_url(url, param=param, max_bytes=max_bytes - total)
            total += len(data)
            images.append(ChatImage(data, media_type, name))
    if not images:
        _refuse(
            "no image: put the page in the user message as an image_url part with a data URL",
            "messages",
            accepted={"content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}},
                                  {"type": "text", "text": "<prompt>"}]},
        )  # fmt: skip
    return ChatInput(images=images, prompt="\n".join(texts).strip(), ignored=ignored)


# --- answer formats ------------------------------------------------------------------------------------------

AnswerFormat = Literal["markdown", "text", "olmocr", "mineru_layout"]
"""How a page's answer is written into the message content, chosen by the prompt:

- ``markdown``: the page's markdown (headings, HTML tables, LaTeX);
- ``text``: the same without heading markers (a block crop's text, for MinerU's "Text Recognition:");
- ``olmocr``: olmOCR's YAML front matter (language, rotation, table, diagram) then the markdown;
- ``mineru_layout``: MinerU2.5's layout answer, one ``<|box_start|>x0 y0 x1 y1<|box_end|><|ref_start|>type
  <|ref_end|><|rotate_up|>`` per block on a 0-1000 grid, for MinerU's two-step client.
"""

MINERU_TYPES: dict[str, str] = {
    "text": "text",
    "title": "title",
    "table": "table",
    "figure": "image",
    "formula": "equation",
    "caption": "caption",
    "list": "text",
    "header": "header",
    "footer": "footer",
    "other": "text",
}
"""This schema's block types in MinerU's layout vocabulary (``mineru_vl_utils.structs.BLOCK_TYPES``)."""

_HEADING_MARK = re.compile(r"^#{1,6}\s+", re.M)


def _mineru_layout(blocks: Sequence[Block]) -> str:
    lines = []
    for b in blocks:
        x0, y0, x1, y1 = (min(max(round(v * 1000), 0), 1000) for v in b.bbox_norm)
        if x1 <= x0 or y1 <= y0:
            continue
        kind = MINERU_TYPES[b.type]
        lines.append(
            f"<|box_start|>{x0:03d} {y0:03d} {x1:03d} {y1:03d}<|box_end|><|ref_start|>{kind}<|ref_end|><|rotate_up|>"
        )
    return "\n".join(lines)


def _olmocr(markdown: str, blocks: Sequence[Block]) -> str:
    """olmOCR's answer: YAML front matter (its PageResponse fields) then the markdown. The language is not
    detected (null); the page is read as given (rotation valid, no correction)."""
    kinds = [b.type for b in blocks if b.type not in ("header", "footer")]
    is_table = bool(kinds) and kinds.count("table") * 2 >= len(kinds)
    is_diagram = bool(kinds) and kinds.count("figure") * 2 >= len(kinds) and "text" not in kinds
    head = (
        "---\nprimary_language: null\nis_rotation_valid: True\nrotation_correction: 0\n"
        f"is_table: {is_table}\nis_diagram: {is_diagram}\n---"
    )
    return f"{head}\n{markdown}" if markdown else head


def page_content(response: OCRResponse, answer_format: AnswerFormat) -> str:
    """The message content for one OCR answer (its pages in order), in ``answer_format``."""
    if answer_format == "mineru_layout":
        return "\n".join(_mineru_layout(p.blocks) for p in response.pages)
    if answer_format == "olmocr":
        return _olmocr(response.markdown, [b for p in response.pages for b in p.blocks])
    if answer_format == "text":
        return _HEADING_MARK.sub("", response.markdown)
    return response.markdown


# --- the answer ----------------------------------------------------------------------------------------------


class ChatMessageOut(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None


class Choice(BaseModel):
    index: int = 0
    message: ChatMessageOut
    finish_reason: Literal["stop", "length"]
    logprobs: None = None


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class OCRServeExtension(BaseModel):
    """What this service adds to OpenAI's answer (clients ignore unknown fields)."""

    request_ids: list[str] = Field(description="Request id of each page's OCR answer.")
    backends: list[str] = Field(description="Backend that answered each page (cascades name theirs).")
    model: ModelInfo | None = Field(default=None, description="Model and engine of the first answer.")
    answer_format: str = Field(description="How the content is written (markdown, text, olmocr, mineru_layout).")
    usage_source: str = Field(
        description="'engine': usage is the engine's own token counts (vision tokens as prompt tokens, generated "
        "tokens as completion tokens); 'tokenizer:<name>': the engine counts none, so the content and the prompt "
        "text were counted by that named tokenizer (the image is not counted)."
    )
    pages: int = Field(description="Pages read.")
    warnings: list[str] = Field(default_factory=list, description="The OCR answers' warnings.")
    ignored: list[str] = Field(default_factory=list, description="Request fields and messages accepted but unused.")


class ChatCompletion(BaseModel):
    """OpenAI's ``chat.completion`` object."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: CompletionUsage
    system_fingerprint: str = f"ocrserve-{SCHEMA_VERSION}"
    ocrserve: OCRServeExtension


class DeltaOut(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: DeltaOut
    finish_reason: Literal["stop", "length"] | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    """OpenAI's ``chat.completion.chunk`` object (one server-sent event)."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: CompletionUsage | None = None
    system_fingerprint: str = f"ocrserve-{SCHEMA_VERSION}"


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "ocrserve"


class ModelList(BaseModel):
    """``GET /v1/models``: the backends and cascades a request can name as ``model``."""

    object: Literal["list"] = "list"
    data: list[ModelCard]


def model_list(names: Iterable[str], *, created: int) -> ModelList:
    """OpenAI's model list for the given backend and cascade names (in order, without repeats)."""
    seen: list[str] = []
    for name in names:
        if name not in seen:
            seen.append(name)
    return ModelList(data=[ModelCard(id=n, created=created) for n in seen])


TRUNCATION_MARK = "truncated"
"""Page warnings starting with this word mean the engine hit its token limit (``finish_reason: length``)."""


def finish_reason(responses: Sequence[OCRResponse]) -> Literal["stop", "length"]:
    truncated = any(w.startswith(TRUNCATION_MARK) for r in responses for p in r.pages for w in p.warnings)
    return "length" if truncated else "stop"


def usage(
    responses: Sequence[OCRResponse], content: str, prompt: str, counter: NamedCounter
) -> tuple[CompletionUsage, str]:
    """The completion's usage and where it came from (the engine's tokens, else the named tokenizer's count)."""
    vision = [r.usage.vision_tokens for r in responses]
    output = [r.usage.output_tokens for r in responses]
    if all(v is not None for v in vision) and all(o is not None for o in output):
        prompt_tokens, completion_tokens = sum(vision), sum(output)  # type: ignore[arg-type]
        source = "engine"
    else:
        prompt_tokens, completion_tokens = counter.count([prompt, content])
        source = f"tokenizer:{counter.name}"
    total = prompt_tokens + completion_tokens
    return CompletionUsage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, total_tokens=total), source


def completion(
    responses: Sequence[OCRResponse],
    *,
    model: str,
    chat: ChatInput,
    answer_format: AnswerFormat,
    counter: NamedCounter,
    created: int,
    completion_id: str,
) -> ChatCompletion:
    """One chat completion from the OCR answers of the request's pages (one per image, in order).

    The content is each answer's content in ``answer_format``, joined by a blank line.
    """
    content = "\n\n".join(page_content(r, answer_format) for r in responses)
    counted, source = usage(responses, content, chat.prompt, counter)
    return ChatCompletion(
        id=completion_id,
        created=created,
        model=model,
        choices=[Choice(message=ChatMessageOut(content=content), finish_reason=finish_reason(responses))],
        usage=counted,
        ocrserve=_extension(responses, chat, answer_format, source),
    )


def _extension(
    responses: Sequence[OCRResponse], chat: ChatInput, answer_format: AnswerFormat, source: str
) -> OCRServeExtension:
    return OCRServeExtension(
        request_ids=[r.request_id for r in responses],
        backends=[r.backend for r in responses],
        model=responses[0].model if responses else None,
        answer_format=answer_format,
        usage_source=source,
        pages=sum(len(r.pages) for r in responses),
        warnings=[w for r in responses for w in [*r.warnings, *(x for p in r.pages for x in p.warnings)]],
        ignored=chat.ignored,
    )


def content_pieces(content: str) -> list[str]:
    """The content cut where a stream sends it: at blank lines (whole paragraphs, tables, layout lines)."""
    pieces = re.split(r"(?<=\n\n)", content)
    return [p for p in pieces if p]


def stream_chunks(
    answer: ChatCompletion, *, include_usage: bool = False, pieces: Sequence[str] | None = None
) -> Iterator[ChatCompletionChunk]:
    """``answer`` as OpenAI's stream: a role chunk, content chunks, a finish chunk, then (when asked) a usage chunk.

    Args:
        answer: The completed answer (the engines answer a page whole; the stream hands it on piece by piece).
        include_usage: ``stream_options.include_usage``: a last chunk with no choices and the usage.
        pieces: The content's pieces, in order; default: :func:`content_pieces`.
    """

    def chunk(choices: list[ChunkChoice], usage: CompletionUsage | None = None) -> ChatCompletionChunk:
        return ChatCompletionChunk(
            id=answer.id, created=answer.created, model=answer.model, choices=choices, usage=usage
        )

    yield chunk([ChunkChoice(delta=DeltaOut(role="assistant", content=""))])
    for piece in content_pieces(answer.choices[0].message.content or "") if pieces is None else pieces:
        yield chunk([ChunkChoice(delta=DeltaOut(content=piece))])
    yield chunk([ChunkChoice(delta=DeltaOut(), finish_reason=answer.choices[0].finish_reason)])
    if include_usage:
        yield chunk([], answer.usage)


def sse(events: Iterable[BaseModel]) -> Iterator[str]:
    """Server-sent events as OpenAI sends them: ``data: <json>`` blocks, then ``data: [DONE]``."""
    for event in events:
        yield f"data: {event.model_dump_json(exclude_none=False)}\n\n"
    yield "data: [DONE]\n\n"


def sse_error(error: OCRError, *, request_id: str | None = None) -> str:
    """An error met after a stream started (the status is already sent): one event in OpenAI's error shape."""
    return f"data: {openai_error(error, request_id=request_id)[1].model_dump_json()}\n\n"
