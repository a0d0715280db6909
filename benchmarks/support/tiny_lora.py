"""Tiny random LoRA adapters for the tiny DeepSeek-OCR decoder, written by ``peft`` exactly as a fine-tune writes them.

DeepSeek-OCR's decoder (``use_mla: false``, dense layers) names its modules like a Llama decoder:
``model.layers.N.self_attn.{q,k,v,o}_proj`` and ``model.layers.N.mlp.{gate,up,down}_proj``, with the same shapes
for the same sizes. So a ``LlamaForCausalLM`` built at the tiny decoder's sizes stands in for it: ``peft`` wraps it
and ``save_pretrained`` writes ``adapter_config.json`` + ``adapter_model.safetensors`` with the keys
(``base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`` ...) that a LoRA fine-tune of DeepSeek-OCR
writes, and that vLLM maps onto ``language_model.model.layers.0.self_attn.qkv_proj``.

The ``B`` matrices are random (a fresh fine-tune starts them at zero, which would change nothing): two adapters
with different seeds steer the random decoder in different directions, which is what the tests look for.

    from benchmarks.support.tiny_lora import build_tiny_lora
    build_tiny_lora("/tmp/lora-a", base=checkpoint_dir, seed=1)
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.support.tiny_vllm import HIDDEN_SIZE, NUM_HEADS, NUM_LAYERS

TARGET_MODULES: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
"""What LoRA fine-tunes of DeepSeek-OCR usually target: every linear layer of the decoder."""

_MARKER = "tiny-lora.json"


def build_tiny_lora(
    path: str | Path, *, base: str | Path, seed: int, rank: int = 8, scale: float = 0.5, overwrite: bool = False
) -> Path:
    """Write a random rank-``rank`` LoRA adapter for the tiny decoder (reused when already built alike).

    Args:
        path: Directory to write (``adapter_config.json``, ``adapter_model.safetensors``).
        base: The checkpoint the adapter belongs to (recorded as ``base_model_name_or_path``).
        seed: Seed of the random matrices; different seeds give adapters that decode differently.
        rank: LoRA rank ``r`` (the deployment's ``max_lora_rank`` must be at least this).
        scale: Standard deviation of the random ``B`` matrices.
        overwrite: Rebuild even when ``path`` already holds this adapter.

    Returns:
        ``path``.
    """
    out = Path(path)
    stamp = {"base": str(base), "seed": seed, "rank": rank, "scale": scale}
    marker = out / _MARKER
    if marker.exists() and not overwrite and json.loads(marker.read_text()) == stamp:
        return out
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    decoder = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=16,  # embeddings are not adapted: the vocabulary does not matter
            hidden_size=HIDDEN_SIZE,
            intermediate_size=2 * HIDDEN_SIZE,
            num_hidden_layers=NUM_LAYERS,
            num_attention_heads=NUM_HEADS,
            num_key_value_heads=NUM_HEADS,
        )
    )
    lora = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=list(TARGET_MODULES), init_lora_weights=False)
    model = get_peft_model(decoder, lora)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=scale)
    model.save_pretrained(out)
    config_path = out / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = str(base)
    config_path.write_text(json.dumps(config, indent=2))
    marker.write_text(json.dumps(stamp))
    return out
