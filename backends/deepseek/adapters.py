"""LoRA adapters served beside the base model: what each configured name points to, checked before vLLM sees it.

Teams fine-tune DeepSeek-OCR with LoRA per document type and serve the adapters from one deployment, chosen per
request (``options.adapter``). vLLM batches requests for different adapters, and for the base model, together
(multi-LoRA, ``enable_lora``); an adapter is a PEFT directory (``adapter_config.json`` + weights).

Checked here so mistakes surface early and in plain words: at build time for local directories (the file is
there, it is a LoRA, its rank fits ``max_lora_rank``), at replica start for hub ids (downloaded, or refused
with the command that fetches them when offline). vLLM itself then loads every adapter once at start, so a
checkpoint it cannot apply (modules the model does not have) fails the start, not a request.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backends.deepseek.source import download_hint, looks_like_path
from shared.errors import OCRError

logger = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
"""Adapter names: what clients send and what metrics are labelled with."""
RESERVED_NAMES = frozenset({"base", "none"})
"""Names that mean "no adapter" in metrics and listings."""


@dataclass(frozen=True)
class Adapter:
    """One adapter as the replica serves it.

    Attributes:
        name: Name clients send in ``options.adapter``.
        source: What the config says (local directory or hub id).
        path: Local directory vLLM loads.
        lora_id: vLLM's integer id for it (1-based, stable: configured order).
        rank: LoRA rank ``r`` from its config.
        target_modules: Modules it adapts, from its config.
        base_model: ``base_model_name_or_path`` from its config, when given.
    """

    name: str
    source: str
    path: str
    lora_id: int
    rank: int
    target_modules: tuple[str, ...]
    base_model: str | None

    def describe(self) -> dict[str, Any]:
        """The listing form (``GET /v1/backends`` → ``info.adapters``)."""
        return {
            "source": self.source,
            "rank": self.rank,
            "target_modules": list(self.target_modules),
            "base_model": self.base_model,
        }


def check_name(name: str) -> None:
    """Refuse a name clients could not send or that means "no adapter" (raises ``ValueError``)."""
    if not NAME_PATTERN.match(name) or name.lower() in RESERVED_NAMES:
        raise ValueError(
            f"adapter name {name!r} must match {NAME_PATTERN.pattern} and not be one of {sorted(RESERVED_NAMES)}"
        )


def read_adapter_config(path: Path) -> dict[str, Any]:
    """``adapter_config.json`` of a PEFT LoRA directory.

    Raises:
        ValueError: no such file, not JSON, or not a LoRA adapter.
    """
    file = path / "adapter_config.json"
    try:
        config = json.loads(file.read_text())
    except OSError:
        raise ValueError(f"{path} has no adapter_config.json (a PEFT LoRA adapter directory is expected)") from None
    except ValueError as e:
        raise ValueError(f"{file} is not JSON ({e})") from None
    if not isinstance(config, dict) or str(config.get("peft_type", "LORA")).upper() != "LORA":
        raise ValueError(f"{file} is not a LoRA adapter (peft_type {config.get('peft_type')!r})")
    if not isinstance(config.get("r"), int) or config["r"] < 1:
        raise ValueError(f"{file} has no LoRA rank 'r'")
    return config


def check_local(name: str, source: str, *, max_rank: int) -> None:
    """Build-time check of an adapter given as a local directory that exists here (others are checked at start).

    Raises:
        ValueError: unreadable config, not a LoRA, or a rank above ``max_rank``.
    """
    path = Path(source).expanduser()
    if not path.is_dir():
        return  # a path mounted only on the GPU nodes: checked when the replica starts
    rank = read_adapter_config(path)["r"]
    if rank > max_rank:
        raise ValueError(f"adapter {name!r} has rank {rank}, above max_lora_rank {max_rank}; raise max_lora_rank")


def _local_dir(name: str, source: str, *, offline: bool, download_dir: str | None) -> Path:
    """The directory holding ``source``: itself when it is a path, the hub snapshot when it is an id."""
    if looks_like_path(source):
        path = Path(source).expanduser()
        if not path.is_dir():
            raise OCRError("models_missing", f"adapter {name!r}: directory {source} does not exist on this node")
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(source, cache_dir=download_dir, local_files_only=offline))
    except Exception as e:  # offline and not cached, no such repo, no network
        raise OCRError(
            "models_missing",
            f"adapter {name!r}: cannot get {source} ({type(e).__name__}); fetch it with: "
            f"{download_hint(source, f'/models/adapters/{name}')} and configure the directory",
        ) from None


def resolve_adapters(
    adapters: dict[str, str], *, max_rank: int, offline: bool, download_dir: str | None = None
) -> dict[str, Adapter]:
    """Every configured adapter as a local directory with its facts, in configured order.

    Raises:
        OCRError: ``models_missing`` for an adapter that cannot be found or fetched; ``backend_unavailable`` for
            one that is not a usable LoRA (bad config, rank above ``max_rank``).
    """
    out: dict[str, Adapter] = {}
    for lora_id, (name, source) in enumerate(adapters.items(), start=1):
        path = _local_dir(name, source, offline=offline, download_dir=download_dir)
        try:
            config = read_adapter_config(path)
        except ValueError as e:
            raise OCRError("backend_unavailable", f"adapter {name!r}: {e}") from None
        if config["r"] > max_rank:
            raise OCRError(
                "backend_unavailable",
                f"adapter {name!r} has rank {config['r']}, above max_lora_rank {max_rank}",
            )
        targets = config.get("target_modules") or []
        out[name] = Adapter(
            name=name,
            source=source,
            path=str(path),
            lora_id=lora_id,
            rank=int(config["r"]),
            target_modules=tuple(sorted(targets if isinstance(targets, list) else [str(targets)])),
            base_model=config.get("base_model_name_or_path"),
        )
        logger.info("adapter %s: %s (rank %d)", name, path, config["r"])
    return out


NULL_ADAPTER_NAME = "ocrserve-base"
"""vLLM's name for the zero adapter base requests carry on a CPU (never a client's: see ``needs_null_adapter``)."""


def needs_null_adapter(device: str, adapters: dict[str, Adapter]) -> bool:
    """Whether requests without an adapter must carry an all-zero one.

    On a CPU, vLLM 0.32's LoRA ops (``vllm/lora/ops/torch_ops``, used by ``PunicaWrapperCPU``) index the stacked
    adapter weights with the request's slot, and a request without an adapter has slot -1: in a batch with adapter
    requests, that picks the *last* loaded adapter (found by ``tests/e2e/test_deepseek_features_vllm_http.py``:
    a base request batched with two adapters decoded exactly as the second adapter). The GPU kernels skip -1.
    A zero adapter in a slot of its own gives base requests exactly the base model's output.
    """
    return device == "cpu" and bool(adapters)


def write_null_adapter(template: Adapter, directory: Path) -> Path:
    """An adapter with ``template``'s config and every weight zero, written to ``directory`` (returned)."""
    from safetensors.torch import load_file, save_file

    source = Path(template.path)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "adapter_config.json").write_text((source / "adapter_config.json").read_text())
    weights = next((source / name for name in ("adapter_model.safetensors",) if (source / name).exists()), None)
    if weights is None:
        raise OCRError(
            "backend_unavailable",
            f"adapter {template.name!r}: no adapter_model.safetensors to shape the base model's zero adapter on",
        )
    save_file({k: v.new_zeros(v.shape) for k, v in load_file(str(weights)).items()}, str(directory / weights.name))
    return directory
