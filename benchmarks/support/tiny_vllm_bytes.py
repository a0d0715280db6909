"""A tiny DeepSeek-OCR checkpoint with a byte-level tokenizer, for constrained decoding on the real vLLM engine.

Why a second tiny checkpoint: :mod:`benchmarks.support.tiny_vllm`'s WordLevel tokenizer joins tokens with spaces and has
no ``{``, ``"`` or ``:``, so no JSON can be spelt with it and vLLM's structured outputs (xgrammar) would have no
token to allow. Real DeepSeek-OCR has a byte-level BPE tokenizer; this one is the same kind with no merges: each
byte is a token (GPT-2's byte-to-unicode alphabet), plus DeepSeek's control tokens as added tokens. Every JSON
document is then spellable, decoding concatenates exactly what was generated, and xgrammar reads the vocabulary
as a byte-level one, as it does for the real tokenizer.

The config is :func:`benchmarks.support.tiny_vllm.hf_config` (DeepSeek's layout, small DeepSeek-V2 decoder, full-size
vision towers, dummy weights) with this tokenizer's size and control-token ids.

    from benchmarks.support.tiny_vllm_bytes import build_byte_vllm_model
    path = build_byte_vllm_model("/tmp/tiny-ocr-bytes")
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.support.tiny_vllm import BOS, EOS, PAD, SPECIAL_TOKENS, Variant, hf_config

_MARKER = "tiny-vllm-bytes.json"


def _byte_alphabet() -> list[str]:
    """The 256 characters GPT-2's byte-level BPE uses for the bytes 0-255, in byte order."""
    from tokenizers import pre_tokenizers

    return sorted(pre_tokenizers.ByteLevel.alphabet(), key=_byte_of)


def _byte_of(char: str) -> int:
    """The byte a byte-level alphabet character stands for (GPT-2's ``bytes_to_unicode`` inverted)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    if ord(char) in printable:
        return ord(char)
    others = [b for b in range(256) if b not in printable]
    return others[ord(char) - 256]


def vocabulary() -> dict[str, int]:
    """Token -> id: ``<unk>``, DeepSeek's control tokens (same order as the WordLevel tiny model), 256 bytes."""
    tokens = ["<unk>", *SPECIAL_TOKENS, *_byte_alphabet()]
    return {tok: i for i, tok in enumerate(dict.fromkeys(tokens))}


def _write_tokenizer(out: Path, vocab: dict[str, int]) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token="<unk>",
        additional_special_tokens=list(SPECIAL_TOKENS[3:]),
    )
    tokenizer.save_pretrained(out)


def build_byte_vllm_model(path: str | Path, *, variant: Variant = "ocr", overwrite: bool = False) -> Path:
    """Write the tiny checkpoint with a byte-level tokenizer (reused when already built for ``variant``).

    Args:
        path: Directory to write; created if missing.
        variant: ``ocr`` (DeepseekOCRForCausalLM) or ``ocr2`` (DeepseekOCR2ForCausalLM).
        overwrite: Rebuild even when ``path`` already holds this checkpoint.

    Returns:
        ``path``, ready for ``tiny_engine_config(path, variant)``.
    """
    out = Path(path)
    marker = out / _MARKER
    vocab = vocabulary()
    stamp = {"variant": variant, "vocab_size": len(vocab)}
    if marker.exists() and not overwrite and json.loads(marker.read_text()) == stamp:
        return out
    out.mkdir(parents=True, exist_ok=True)
    _write_tokenizer(out, vocab)
    config = hf_config(variant, len(vocab))
    ids = {"bos_token_id": vocab[BOS], "eos_token_id": vocab[EOS], "pad_token_id": vocab[PAD]}
    config.update({k: v for k, v in ids.items() if k != "pad_token_id"})
    config["language_config"].update(ids)
    (out / "config.json").write_text(json.dumps(config, indent=2))
    marker.write_text(json.dumps(stamp))
    return out
