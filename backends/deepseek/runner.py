"""What the DeepSeek engine and its two runners (vLLM, transformers) exchange: small, model-free data.

The engine decides *what* to run (prompt, mode, token budget) and turns generations into schema pages; a runner
only knows *how* to run a model. Keeping the contract here, free of torch and vLLM, lets the engine's logic be
tested with a fake runner and lets the two runners stay thin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from PIL import Image

from backends.deepseek.modes import ModeSpec


@dataclass(frozen=True)
class RunPlan:
    """One request's decisions, shared by all its pages.

    Attributes:
        prompt: Full prompt, ``<image>`` placeholder included.
        spec: Resolution mode that will run (already mapped to what the engine honours).
        max_new_tokens: Cap on generated tokens per page.
        ngram_guard: Whether the no-repeat n-gram guard applies to this request's pages.
        adapter: Name of the LoRA adapter that generates (None: the base model).
        json_schema: A JSON Schema the output is constrained to (structured outputs), or None for free text.
    """

    prompt: str
    spec: ModeSpec
    max_new_tokens: int
    ngram_guard: bool = True
    adapter: str | None = None
    json_schema: dict[str, Any] | None = field(default=None, hash=False, compare=False)


@dataclass
class Generation:
    """One page's model output.

    Attributes:
        text: Decoded output with special tokens kept (grounding tags, end-of-sequence marker).
        output_tokens: Tokens generated, the end-of-sequence token excluded.
        finish_reason: ``stop`` (end-of-sequence reached) or ``length`` (token budget used up).
        vision_tokens: Vision tokens the page really cost, when the runner can count them (else computed
            from the mode).
        warnings: Page-level notes from the runner (e.g. the token budget was lowered to fit the context).
        prompt_tokens: Prompt length the engine really processed (image positions included), when known.
        image_positions: Prompt positions the engine filled with the image, when known (vLLM).
        timeline: The engine's own timestamps for this page (vLLM: queued/scheduled/first/last token), when known.
        token_ids: The generated token ids (end-of-sequence excluded), when the runner keeps them (transformers).
    """

    text: str
    output_tokens: int
    finish_reason: str
    vision_tokens: int | None = None
    warnings: list[str] = field(default_factory=list)
    prompt_tokens: int | None = None
    image_positions: int | None = None
    timeline: dict[str, float] | None = None
    token_ids: list[int] | None = None


class Runner(Protocol):
    """A loaded model that turns page images into generations (implemented for vLLM and transformers)."""

    name: str
    """Engine name reported in health and ModelInfo: ``vllm`` or ``transformers``."""

    def load(self) -> None:
        """Load the model; raises ``OCRError('models_missing')`` when the files are not there."""

    def adapt(self, spec: ModeSpec) -> ModeSpec:
        """``spec`` in the loaded checkpoint's own geometry (identity for the real models)."""

    def generate(self, images: list[Image.Image], plan: RunPlan) -> list[Generation]:
        """One generation per image, in order; all images are submitted together (no page-by-page loop)."""

    def info(self) -> dict[str, Any]:
        """Facts for the health answer (device, attention implementation, versions)."""

    def device(self) -> str | None:
        """Device the model runs on."""

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Tokens of each text by the model's own tokenizer (special tokens not added)."""

    def close(self) -> None:
        """Release the model (GPU memory, background threads)."""
