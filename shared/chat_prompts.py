"""Which chat prompts a backend honours, and what each one turns into: backend options and an answer format.

What a backend does with a prompt is what its engine declares (``shared.schema.Capabilities``: ``prompts``,
``custom_prompt``, ``token_limit_option``), never its engine's name. On a prompted model (DeepSeek-OCR) the chat's
text is its prompt, passed through as is (a named prompt when it is one of the engine's, else ``custom``), and the
client's ``max_tokens`` caps generation. Engines that take no prompt (RapidOCR, MinerU's pipeline) accept only the
prompts OCR clients are known to send - each one asks for the page's text in some shape, and the answer is written
in that shape (:data:`shared.openai_api.AnswerFormat`); anything else is refused, listing them, rather than answered
as if it had been understood.

The known prompts, from the clients' own code:

- DeepSeek-OCR's model card: ``<image>\\n<|grounding|>Convert the document to markdown.``,
  ``<image>\\n<|grounding|>OCR this image.``, ``<image>\\nFree OCR.`` (the same texts the engine publishes as its
  ``prompts``; a test keeps the two equal);
- MinerU2.5's client (``mineru_vl_utils.mineru_client.DEFAULT_PROMPTS``, sent by ``vlm-http-client``):
  ``\\nLayout Detection:`` for the page, then per block crop ``\\nText Recognition:``, ``\\nTable Recognition:``,
  ``\\nFormula Recognition:``;
- olmOCR's pipeline (``olmocr.prompts.build_no_anchoring_v4_yaml_prompt``, and the earlier
  ``build_no_anchoring_yaml_prompt``): markdown with a YAML front matter;
- no text at all: the page as markdown.

A prompt matches after ``<image>`` placeholders are removed and whitespace is folded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from shared.openai_api import AnswerFormat, ChatRequestError
from shared.schema import Capabilities, ErrorCode

IMAGE_TOKEN = "<image>"
"""The placeholder clients put where the page goes in a prompt."""

OLMOCR_V4 = (
    "Attached is one page of a document that you must process. Just return the plain text representation of this "
    "document as if you were reading it naturally. Convert equations to LateX and tables to HTML.\n"
    "If there are any figures or charts, label them with the following markdown syntax "
    "![Alt text describing the contents of the figure](page_startx_starty_width_height.png)\n"
    "Return your output as markdown, with a front matter section on top specifying values for the "
    "primary_language, is_rotation_valid, rotation_correction, is_table, and is_diagram parameters."
)
"""olmOCR's pipeline prompt (``build_no_anchoring_v4_yaml_prompt``)."""

OLMOCR_YAML = (
    "Attached is one page of a document that you must process. Just return the plain text representation of this "
    "document as if you were reading it naturally. Convert equations to LateX and tables to markdown.\n"
    "Return your output as markdown, with a front matter section on top specifying values for the "
    "primary_language, is_rotation_valid, rotation_correction, is_table, and is_diagram parameters."
)
"""olmOCR's earlier prompt (``build_no_anchoring_yaml_prompt``)."""


@dataclass(frozen=True)
class KnownPrompt:
    """A prompt OCR clients send, and the answer's shape it asks for.

    Attributes:
        name: Short name (shown in the refusal's list and the answer's extension).
        text: The prompt as the client sends it.
        answer_format: How the answer is written.
        sent_by: Which client sends it.
    """

    name: str
    text: str
    answer_format: AnswerFormat
    sent_by: str


KNOWN_PROMPTS: tuple[KnownPrompt, ...] = (
    KnownPrompt("page", "", "markdown", "any client sending only the image"),
    KnownPrompt(
        "deepseek-markdown", "<image>\n<|grounding|>Convert the document to markdown.", "markdown", "DeepSeek-OCR"
    ),
    KnownPrompt("deepseek-ocr", "<image>\n<|grounding|>OCR this image.", "markdown", "DeepSeek-OCR"),
    KnownPrompt("deepseek-free", "<image>\nFree OCR.", "text", "DeepSeek-OCR"),
    KnownPrompt("mineru-layout", "\nLayout Detection:", "mineru_layout", "MinerU vlm-http-client"),
    KnownPrompt("mineru-text", "\nText Recognition:", "text", "MinerU vlm-http-client"),
    KnownPrompt("mineru-table", "\nTable Recognition:", "markdown", "MinerU vlm-http-client"),
    KnownPrompt("mineru-formula", "\nFormula Recognition:", "text", "MinerU vlm-http-client"),
    KnownPrompt("olmocr-v4", OLMOCR_V4, "olmocr", "olmOCR pipeline"),
    KnownPrompt("olmocr-yaml", OLMOCR_YAML, "olmocr", "olmOCR pipeline (earlier prompt)"),
)


def normalise_prompt(text: str) -> str:
    """The prompt without ``<image>`` placeholders, whitespace folded (clients differ in both)."""
    return re.sub(r"\s+", " ", text.replace(IMAGE_TOKEN, " ")).strip()


_BY_TEXT = {normalise_prompt(p.text): p for p in KNOWN_PROMPTS}


@dataclass(frozen=True)
class PromptPlan:
    """What a chat prompt becomes for one backend.

    Attributes:
        prompt: The known prompt it matched (``custom`` for a DeepSeek pass-through of another text).
        options: Backend options for the OCR request.
        answer_format: How to write the answer.
        ignored: Request fields that have no effect on this backend (e.g. max_tokens on RapidOCR).
    """

    prompt: str
    options: dict[str, Any]
    answer_format: AnswerFormat
    ignored: list[str] = field(default_factory=list)


def known(prompt: str) -> KnownPrompt | None:
    """The known prompt ``prompt`` is, if any."""
    return _BY_TEXT.get(normalise_prompt(prompt))


def plan_prompt(
    prompt: str, *, capabilities: Capabilities | None, backend: str, max_tokens: int | None = None
) -> PromptPlan:
    """Backend options and answer format for a chat prompt sent to ``backend``.

    Args:
        prompt: The chat's text (the text parts of the user message).
        capabilities: What the backend's engine declares (for a cascade or ``auto``, what every backend it may use
            shares); None when unknown, taken as an engine without prompts.
        backend: The backend's name, for messages.
        max_tokens: The client's cap on generated tokens.

    Raises:
        ChatRequestError: ``invalid_option`` for a prompt a prompt-less engine does not know, listing those it does.
    """
    caps = capabilities or Capabilities()
    match = known(prompt)
    text = normalise_prompt(prompt)
    named = (
        next((name for name, body in caps.prompts.items() if normalise_prompt(body) == text), None) if text else None
    )
    if named is not None or (text and caps.custom_prompt) or (not text and (caps.prompts or caps.custom_prompt)):
        options: dict[str, Any] = {}
        if named is not None:
            options["prompt"] = named
        elif text:
            options.update(prompt="custom", custom_prompt=prompt.strip())
        ignored: list[str] = []
        if max_tokens is not None:
            if caps.token_limit_option:
                options[caps.token_limit_option] = max_tokens
            else:
                ignored.append("max_tokens (no token limit on this engine)")
        answer_format: AnswerFormat = match.answer_format if match and named is not None else "markdown"
        return PromptPlan(match.name if match else "custom", options, answer_format, ignored)
    if match is None:
        raise ChatRequestError(
            ErrorCode.INVALID_OPTION,
            f"backend {backend!r} takes no prompt of its own: only the prompts OCR clients send for a page's text "
            "are understood, and this is not one of them (backends whose capabilities say custom_prompt take any)",
            param="messages",
            accepted={"prompts": [p.text for p in KNOWN_PROMPTS]},
        )
    ignored = ["max_tokens (no token limit on this engine)"] if max_tokens is not None else []
    return PromptPlan(match.name, {}, match.answer_format, ignored)
