"""Prompt presets: the exact strings DeepSeek-OCR was trained on, chosen by name per request.

The model is sensitive to the wording (the grounding prompts are the only ones that emit boxes), so clients pick
a preset instead of typing prompts; ``custom`` stays available for experiments. Every preset starts with the
``<image>`` placeholder the processors replace with the page's vision tokens.
"""

from __future__ import annotations

import re
from typing import Literal

from shared.errors import OCRError

Preset = Literal["markdown", "ocr", "free", "figure", "describe", "locate", "custom"]
PRESETS: tuple[str, ...] = Preset.__args__  # type: ignore[attr-defined]

IMAGE_TOKEN = "<image>"

PROMPT_BODIES: dict[str, str] = {
    "markdown": "<|grounding|>Convert the document to markdown.",
    "ocr": "<|grounding|>OCR this image.",
    "free": "Free OCR.",
    "figure": "Parse the figure.",
    "describe": "Describe this image in detail.",
    "locate": "Locate <|ref|>{text}<|/ref|> in the image.",
}
"""Text after ``<image>\\n`` for each preset (from the model card)."""


PROMPT_TEXT_TOKENS = 32
"""Upper estimate of a prompt's text tokens (BOS + preset wording), for context budgets; the image placeholders
are counted exactly (:func:`backends.deepseek.modes.placeholder_tokens`)."""

_CONTROL = re.compile(r"<\|[^|<>]*\|>|<｜[^｜<>]*｜>")
MAX_LOCATE_CHARS = 200


def build_prompt(preset: str, *, locate_text: str | None = None, custom_prompt: str | None = None) -> str:
    """The full prompt for ``preset``: ``<image>\\n`` + the preset's text.

    Args:
        preset: One of :data:`PRESETS`.
        locate_text: The text to find; required by ``locate`` and refused by every other preset.
        custom_prompt: Free prompt text; required by ``custom`` and refused by every other preset. ``<image>`` is
            prepended when absent; it may appear at most once.

    Raises:
        OCRError: ``invalid_option`` for a missing, superfluous or malformed argument.
    """
    if preset not in PRESETS:
        raise OCRError("invalid_option", f"unknown prompt preset {preset!r}", accepted=list(PRESETS))
    if locate_text is not None and preset != "locate":
        raise OCRError(
            "invalid_option",
            f"locate_text is only used by prompt 'locate', not {preset!r}",
            accepted={"prompt": "locate"},
        )
    if custom_prompt is not None and preset != "custom":
        raise OCRError(
            "invalid_option",
            f"custom_prompt is only used by prompt 'custom', not {preset!r}",
            accepted={"prompt": "custom"},
        )
    if preset == "locate":
        text = (locate_text or "").strip()
        if not text:
            raise OCRError(
                "invalid_option",
                "prompt 'locate' needs a non-empty locate_text",
                accepted={"locate_text": "text to find"},
            )
        if len(text) > MAX_LOCATE_CHARS or _CONTROL.search(text) or "\n" in text:
            raise OCRError(
                "invalid_option",
                f"locate_text must be one line of at most {MAX_LOCATE_CHARS} characters without control tokens",
                accepted={"locate_text": "plain text"},
            )
        return f"{IMAGE_TOKEN}\n" + PROMPT_BODIES["locate"].format(text=text)
    if preset == "custom":
        text = (custom_prompt or "").strip()
        if not text or text == IMAGE_TOKEN:
            raise OCRError(
                "invalid_option",
                "prompt 'custom' needs a non-empty custom_prompt",
                accepted={"custom_prompt": "prompt text"},
            )
        count = text.count(IMAGE_TOKEN)
        if count > 1:
            raise OCRError(
                "invalid_option",
                "custom_prompt may contain <image> at most once (one page per prompt)",
                accepted={"custom_prompt": "prompt text"},
            )
        return text if count == 1 else f"{IMAGE_TOKEN}\n{text}"
    return f"{IMAGE_TOKEN}\n{PROMPT_BODIES[preset]}"


def is_grounded(prompt: str) -> bool:
    """Whether a prompt asks for boxes (it carries ``<|grounding|>`` or a ``<|ref|>`` to locate)."""
    return "<|grounding|>" in prompt or "<|ref|>" in prompt
