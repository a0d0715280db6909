"""A tiny, randomly initialised DeepSeek-OCR-2 checkpoint, built offline in about a second.

Why it exists: the real checkpoints (6-7 GB) cannot be downloaded on CI machines or here, yet the transformers
engine path (processor, image tiling, ``generate()``, decoding, loading with ``from_pretrained``) is exactly the
code that breaks on a library upgrade. A checkpoint with the real *architecture* and the real processor at toy
sizes exercises all of it on a CPU. Its output is noise, so tests check shapes, plumbing and bookkeeping, never
recognition quality.

The geometry is scaled down consistently so the processor and the model agree on token counts, as in the real
model: a 128 px global view (SAM patch 2, two stride-2 convs -> 16 x 16 = 256 queries, like 1024 px / 16 / 4)
and 96 px tiles (-> 12 x 12 = 144 queries, like 768 px). The decoder has a dense first layer and a
mixture-of-experts second layer (8 routed experts, 2 per token, 1 shared), as DeepSeek-OCR-2's has; ``moe=False``
makes both layers dense, so a run can tell the MoE path from the rest.

It lives beside the benchmarks because ``benchmarks/gpu_smoke.py`` builds its checkpoints on a GPU machine that has
torch and transformers and nothing of this project's other dependencies (torch, transformers, tokenizers and
safetensors are all it needs); the tests, the serving end-to-end test and ``benchmarks/deepseek_gpu.py`` use it too::

    from benchmarks.support.tiny_deepseek import build_tiny_model
    path = build_tiny_model("/tmp/tiny-deepseek-ocr2")             # MoE decoder; moe=False for a dense one
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

logger = logging.getLogger(__name__)

TINY_GLOBAL_SIZE = 128
"""Global view side of the tiny model (the real one: 1024)."""
TINY_TILE_SIZE = 96
"""Tile side of the tiny model (the real one: 768)."""
TINY_PATCH_SIZE = 2
TINY_DOWNSAMPLE_RATIO = 4

SPECIAL_TOKENS: tuple[str, ...] = (
    "<｜begin▁of▁sentence｜>",
    "<｜end▁of▁sentence｜>",
    "<｜▁pad▁｜>",
    "<image>",
    "<|grounding|>",
    "<|ref|>",
    "<|/ref|>",
    "<|det|>",
    "<|/det|>",
)
"""Control tokens of the real DeepSeek-OCR tokenizer that the engine relies on (BOS, EOS, pad, image, grounding)."""

_WORDS: tuple[str, ...] = (
    # prompt words, so prompts tokenize without <unk>
    "Convert",
    "the",
    "document",
    "to",
    "markdown",
    "OCR",
    "this",
    "image",
    "Free",
    "Parse",
    "figure",
    "Describe",
    "in",
    "detail",
    "Locate",
    "Hello",
    # grounding vocabulary, so random output at least looks like the real alphabet
    "text",
    "title",
    "sub_title",
    "table",
    "table_caption",
    "image_caption",
    "equation",
    "<table>",
    "</table>",
    "<tr>",
    "</tr>",
    "<td>",
    "</td>",
    "#",
    ".",
    ",",
    "[",
    "]",
    "[[",
    "]]",
    "\\[",
    "\\]",
    "\n",
)
_MARKER = "tiny-deepseek-ocr2.json"


def _vocab() -> dict[str, int]:
    tokens = ["<unk>", *SPECIAL_TOKENS, *_WORDS, *(str(i) for i in range(0, 1000, 37))]
    return {tok: i for i, tok in enumerate(dict.fromkeys(tokens))}


def build_tiny_model(path: str | Path, *, seed: int = 0, moe: bool = True, overwrite: bool = False) -> Path:
    """Write a tiny random DeepSeek-OCR-2 checkpoint (model, processor, tokenizer) to ``path``.

    Deterministic for a given ``seed`` and fully offline. An existing checkpoint built by this function is
    reused unless ``overwrite`` is set, so sessions and test runs can share one directory.

    Args:
        path: Directory to write; created if missing.
        seed: Seed for the random weights.
        moe: Make the second decoder layer a mixture of experts (as the real model); False: both layers dense.
        overwrite: Rebuild even when ``path`` already holds a tiny checkpoint.

    Returns:
        ``path``, ready for ``from_pretrained`` (and for ``DeepSeekConfig(engine="transformers", model=path)``).
    """
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        DeepseekOcr2Config,
        DeepseekOcr2ForConditionalGeneration,
        DeepseekOcr2ImageProcessorPil,
        DeepseekOcr2Processor,
        PreTrainedTokenizerFast,
    )

    out = Path(path)
    marker = out / _MARKER
    if marker.exists() and not overwrite:
        stamp = json.loads(marker.read_text())
        if stamp.get("seed") == seed and stamp.get("moe", True) == moe:
            return out
    out.mkdir(parents=True, exist_ok=True)

    vocab = _vocab()
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<｜begin▁of▁sentence｜>",
        eos_token="<｜end▁of▁sentence｜>",
        pad_token="<｜▁pad▁｜>",
        unk_token="<unk>",
        additional_special_tokens=list(SPECIAL_TOKENS[3:]),
    )
    tokenizer.padding_side = "left"

    config = DeepseekOcr2Config(
        vision_config={
            "sam_config": {
                "hidden_size": 32,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "patch_size": TINY_PATCH_SIZE,
                "image_size": TINY_GLOBAL_SIZE,
                "output_channels": 16,
                "downsample_channels": [16, 32],
                "window_size": 4,
                "global_attn_indexes": [1],
                "mlp_dim": 64,
            },
            "encoder_config": {
                "vocab_size": 16,
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_hidden_layers": 1,
                "num_attention_heads": 2,
                "num_key_value_heads": 2,
                "max_position_embeddings": 1024,
            },
        },
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": 128,
            "intermediate_size": 256,
            "moe_intermediate_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
            "n_routed_experts": 8,
            "n_shared_experts": 1,
            "num_experts_per_tok": 2,
            "mlp_layer_types": ["dense", "sparse" if moe else "dense"],
            "max_position_embeddings": 2048,
            "bos_token_id": vocab["<｜begin▁of▁sentence｜>"],
            "eos_token_id": vocab["<｜end▁of▁sentence｜>"],
            "pad_token_id": vocab["<｜▁pad▁｜>"],
        },
        image_token_id=vocab["<image>"],
    )
    torch.manual_seed(seed)
    model = DeepseekOcr2ForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = vocab["<｜end▁of▁sentence｜>"]
    model.generation_config.pad_token_id = vocab["<｜▁pad▁｜>"]
    model.generation_config.bos_token_id = vocab["<｜begin▁of▁sentence｜>"]

    processor = DeepseekOcr2Processor(
        image_processor=DeepseekOcr2ImageProcessorPil(
            size={"height": TINY_GLOBAL_SIZE, "width": TINY_GLOBAL_SIZE}, tile_size=TINY_TILE_SIZE
        ),
        tokenizer=tokenizer,
        patch_size=TINY_PATCH_SIZE,
        downsample_ratio=TINY_DOWNSAMPLE_RATIO,
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)
    marker.write_text(json.dumps({"seed": seed, "moe": moe, "vocab_size": len(vocab)}))
    logger.info("tiny DeepSeek-OCR-2 checkpoint written to %s", out)
    return out
