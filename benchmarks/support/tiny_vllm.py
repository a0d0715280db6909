"""Tiny DeepSeek-OCR and DeepSeek-OCR-2 checkpoints in DeepSeek's own layout, for the real vLLM engine on a CPU.

Why they exist: vLLM serves DeepSeek's own repositories (``model_type: deepseek_vl_v2`` with
``architectures: [DeepseekOCRForCausalLM]`` or ``[DeepseekOCR2ForCausalLM]``), not transformers' native
conversion, and the production engine must be exercised against vLLM itself, on a machine with no GPU and no
download. vLLM builds the vision towers at their published sizes whatever the config says (SAM ViT-B + CLIP-L for
OCR, SAM ViT-B + the Qwen2-style encoder for OCR-2), so only the language model can shrink. With
``load_format="dummy"`` vLLM fills every parameter with random values, so a directory with just a
``config.json`` and a tokenizer is a complete checkpoint: no weights are written or read.

What is real here: vLLM's model classes, its multimodal processor (Gundam tiling, placeholder expansion), its
scheduler and continuous batching, its logits-processor plumbing (the n-gram guard) and its CPU kernels. What is
not: the weights (random), the tokenizer (a few hundred words), the language model's size (H=256, 4 heads of 64
— the CPU attention kernels refuse head size 16 —, 2 layers, no MLA, as DeepSeek-OCR's own decoder).

The decoder is dense by default (both layers plain MLPs). ``moe=True`` makes the second layer a mixture of experts
as in the real DeepSeek-OCR (``first_k_dense_replace: 1``: 4 routed experts, 1 shared, 2 per token, greedy top-k
in one group), so vLLM builds its ``FusedMoE`` layers - ``CPUUnquantizedExperts`` on a CPU, and, with LoRA
enabled, ``FusedMoEWithLoRA`` over the Triton experts (which vLLM's CPU build cannot run: see docs/deepseek.md).

    from benchmarks.support.tiny_vllm import build_tiny_vllm_model
    path = build_tiny_vllm_model("/tmp/tiny-ocr", variant="ocr")   # or variant="ocr2"; moe=True for the MoE decoder
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Literal

logger = logging.getLogger(__name__)

Variant = Literal["ocr", "ocr2"]

ARCHITECTURES: dict[str, str] = {"ocr": "DeepseekOCRForCausalLM", "ocr2": "DeepseekOCR2ForCausalLM"}
"""vLLM model class each variant's config.json names."""

PROJECTOR_INPUT_DIM: dict[str, int] = {"ocr": 2048, "ocr2": 896}
"""Width of the vision features the projector reads: CLIP-L 1024 + SAM 1024 (OCR), the Qwen2 encoder's 896 (OCR-2)."""

NUM_HEADS = 4
HEAD_DIM = 64
"""vLLM's CPU attention supports head size 64 and refuses 16 ("Unsupported CPU attention configuration")."""
HIDDEN_SIZE = NUM_HEADS * HEAD_DIM
NUM_LAYERS = 2
MAX_POSITIONS = 8192

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
PAD = "<｜▁pad▁｜>"
IMAGE = "<image>"
SPECIAL_TOKENS: tuple[str, ...] = (BOS, EOS, PAD, IMAGE, "<|grounding|>", "<|ref|>", "<|/ref|>", "<|det|>", "<|/det|>")
"""DeepSeek-OCR's control tokens the engine relies on: sentence markers, the image placeholder, grounding tags."""

_WORDS: tuple[str, ...] = (
    # prompt words, so every preset tokenizes without <unk>
    *"Convert the document to markdown OCR this image Free Parse figure Describe in detail Locate".split(),
    # grounding vocabulary and table markup, so random output uses the real alphabet
    *"text title sub_title table table_caption image_caption equation <table> </table> <tr> </tr> <td> </td>".split(),
    *"# . , [ ] [[ ]] \\[ \\] Hello World Total Invoice".split(),
)
_MARKER = "tiny-vllm-deepseek.json"


def vocabulary() -> dict[str, int]:
    """Token -> id of the tiny tokenizer (stable: ids are part of what tests assert)."""
    tokens = ["<unk>", *SPECIAL_TOKENS, *_WORDS, *(str(i) for i in range(0, 1000, 9))]
    return {tok: i for i, tok in enumerate(dict.fromkeys(tokens))}


def hf_config(variant: Variant, vocab_size: int, *, head_dim: int = HEAD_DIM, moe: bool = False) -> dict[str, Any]:
    """config.json in DeepSeek's layout, with a small DeepSeek-V2 decoder (no MLA) as language model.

    Args:
        variant: ``ocr`` or ``ocr2``.
        vocab_size: The tokenizer's size.
        head_dim: Attention head size of the decoder (another value than 64 makes a checkpoint vLLM's CPU
            kernels refuse, which is how tests provoke an engine-core failure).
        moe: Make every layer after the first a mixture of experts, as in DeepSeek-OCR (else all layers dense).
    """
    vocab = vocabulary()
    hidden = NUM_HEADS * head_dim
    return {
        "architectures": [ARCHITECTURES[variant]],
        "model_type": "deepseek_vl_v2",
        "tile_tag": "2D",
        "global_view_pos": "head",
        "candidate_resolutions": [[1024, 1024]],
        "vision_config": {"image_size": 1024, "model_type": "vision"},
        "projector_config": {
            "model_type": "mlp_projector",
            "projector_type": "linear",
            "input_dim": PROJECTOR_INPUT_DIM[variant],
            "n_embed": hidden,
        },
        "language_config": {
            "architectures": ["DeepseekV2ForCausalLM"],
            "model_type": "deepseek_v2",
            "vocab_size": vocab_size,
            "hidden_size": hidden,
            "intermediate_size": 2 * hidden,
            "moe_intermediate_size": hidden,
            "num_hidden_layers": NUM_LAYERS,
            "first_k_dense_replace": 1 if moe else NUM_LAYERS,
            "num_attention_heads": NUM_HEADS,
            "num_key_value_heads": NUM_HEADS,
            "n_routed_experts": 4,
            "n_shared_experts": 1,
            "num_experts_per_tok": 2,
            # DeepSeek-OCR's routing: greedy top-k over one group (vLLM's router asserts n_group / topk_group)
            "n_group": 1,
            "topk_group": 1,
            "topk_method": "greedy",
            "norm_topk_prob": False,
            "scoring_func": "softmax",
            "routed_scaling_factor": 1.0,
            "kv_lora_rank": None,
            "q_lora_rank": None,
            "qk_nope_head_dim": 0,
            "qk_rope_head_dim": 0,
            "v_head_dim": 0,
            "use_mla": False,
            "max_position_embeddings": MAX_POSITIONS,
            "bos_token_id": vocab[BOS],
            "eos_token_id": vocab[EOS],
            "pad_token_id": vocab[PAD],
            "torch_dtype": "float32",
        },
        "bos_token_id": vocab[BOS],
        "eos_token_id": vocab[EOS],
        "torch_dtype": "float32",
    }


def _write_tokenizer(out: Path, vocab: dict[str, int]) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token="<unk>",
        additional_special_tokens=list(SPECIAL_TOKENS[3:]),
    )
    tokenizer.save_pretrained(out)


def build_tiny_vllm_model(
    path: str | Path, *, variant: Variant = "ocr", head_dim: int = HEAD_DIM, moe: bool = False, overwrite: bool = False
) -> Path:
    """Write a tiny DeepSeek-OCR (``ocr``) or DeepSeek-OCR-2 (``ocr2``) checkpoint for ``load_format="dummy"``.

    Offline and deterministic (the weights come from vLLM's dummy loader, itself seeded). A directory already
    built by this function for the same variant is reused unless ``overwrite`` is set.

    Args:
        path: Directory to write; created if missing.
        variant: ``ocr`` (DeepseekOCRForCausalLM) or ``ocr2`` (DeepseekOCR2ForCausalLM).
        head_dim: Decoder attention head size (64 runs on vLLM's CPU kernels; see :func:`hf_config`).
        moe: A mixture-of-experts decoder (see :func:`hf_config`).
        overwrite: Rebuild even when ``path`` already holds this checkpoint.

    Returns:
        ``path``, ready for ``DeepSeekConfig(engine="vllm", model=path, load_format="dummy")``.
    """
    out = Path(path)
    marker = out / _MARKER
    stamp = {"variant": variant, "head_dim": head_dim, "moe": moe, "vocab_size": len(vocabulary())}
    if marker.exists() and not overwrite and json.loads(marker.read_text()) == stamp:
        return out
    out.mkdir(parents=True, exist_ok=True)
    vocab = vocabulary()
    _write_tokenizer(out, vocab)
    config = hf_config(variant, len(vocab), head_dim=head_dim, moe=moe)
    (out / "config.json").write_text(json.dumps(config, indent=2))
    marker.write_text(json.dumps(stamp))
    logger.info("tiny %s checkpoint (DeepSeek layout, dummy weights) written to %s", ARCHITECTURES[variant], out)
    return out


CPU_ENV: dict[str, str] = {
    "VLLM_CPU_OMP_THREADS_BIND": "nobind",
    "OMP_NUM_THREADS": str(len(os.sched_getaffinity(0))),
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
}
"""vLLM-on-CPU settings for a small machine shared with other processes.

- No OpenMP thread pinning: vLLM's ``auto`` pins threads and binds memory to NUMA nodes, which slows everything
  else on two cores.
- The machine's cores for the engine's torch threads, as torch itself would take outside Ray: Ray sets
  ``OMP_NUM_THREADS`` to a replica's ``num_cpus`` (1 for the fractional share the tests give a vLLM replica), which
  vLLM's engine process inherits, so a page's vision pass used one core of two (measured: the real-vLLM serving
  modules ~1.5x faster with both).
- The model in the engine-core process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``: vLLM's single-process executor, the
  layout vLLM uses on one GPU) instead of the CPU build's extra worker process: one interpreter fewer importing torch
  and vLLM per engine start (~6 s of a 24 s start measured alone, more when the cores are shared). The serving
  path is unchanged: the engine core still runs in its own process behind ``AsyncLLM``. The CPU build's own
  multiprocessing worker (what thread binding needs) is still exercised where a test provokes a binding failure
  (tests/e2e/test_deepseek_vllm_http.py ``ENGINE_CORE_FAILS``)."""


def tiny_dtype() -> str:
    """The tiny engines' dtype: bfloat16 where the CPU multiplies it natively (AVX512-BF16 / AMX), else float32.

    The vision towers are full size, so every page is ~400 M parameters of matrix products: on a CPU with AMX,
    bfloat16 read a page 2.7x faster than float32 (2.5 s against 6.7 s, measured with vLLM's CPU build), which is
    most of what the real-vLLM tests spend. bfloat16 is also what the models run in on a GPU. Without native
    bfloat16, torch emulates it and float32 is the faster one.
    """
    import torch

    supported = getattr(torch.cpu, "_is_avx512_bf16_supported", None)  # the check vLLM's CPU platform makes
    return "bfloat16" if supported is not None and supported() else "float32"


def tiny_engine_config(model_dir: str | Path, variant: Variant, **overrides: Any) -> dict[str, Any]:
    """``engine_config`` serving a tiny checkpoint on CPU vLLM: dummy weights (allowed explicitly: the answers are
    noise, and the backend says so), :func:`tiny_dtype`, eager, small KV cache.

    ``max_model_len`` 2048 holds the largest Gundam page of either variant (1,154 positions at most) plus a
    few hundred output tokens; ``warmup`` is off because every vision pass costs seconds on a CPU.
    """
    return {
        "engine": "vllm",
        "model": str(model_dir),
        "variant": variant,
        "load_format": "dummy",
        "allow_random_weights": True,
        "dtype": tiny_dtype(),
        "enforce_eager": True,
        "max_model_len": 2048,
        "max_num_seqs": 8,
        "kv_cache_memory_gb": 0.25,
        "max_new_tokens": 48,
        "warmup": False,
        **overrides,
    }
