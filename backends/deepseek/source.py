"""Where the weights come from: a hub id or a local directory, online or offline, checked before loading.

A GPU replica that cannot find its weights must say so once, clearly (what to download and where), and stay
up reporting ``ready=False`` - not crash-loop through a multi-minute model load, nor hang retrying a hub it
cannot reach. So the files are checked here first, cheaply, and only then handed to vLLM or transformers.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.errors import OCRError

logger = logging.getLogger(__name__)

WEIGHT_PATTERNS: tuple[str, ...] = ("*.safetensors", "*.bin", "*.safetensors.index.json", "*.bin.index.json")


@dataclass(frozen=True)
class ModelSource:
    """A model location the engines can load.

    Attributes:
        ref: What to pass to ``from_pretrained`` / vLLM's ``model=``: a local directory, or a hub id when online.
        hub_id: The hub id, when the model was named by one.
        local_files_only: True when nothing may be fetched (offline, or a local directory).
        hf_config: The checkpoint's config.json, when it is already on disk.
    """

    ref: str
    hub_id: str | None
    local_files_only: bool
    hf_config: dict[str, Any] | None


def looks_like_path(model: str) -> bool:
    """Whether ``model`` is meant as a filesystem path rather than a hub id (``org/name``)."""
    if model.startswith(("/", "./", "../", "~", ".\\")) or Path(model).expanduser().exists():
        return True
    return model.count("/") != 1 or "\\" in model


def download_hint(hub_id: str, local_dir: str | None = None) -> str:
    """The command that fetches ``hub_id`` (into ``local_dir`` when given)."""
    target = local_dir or f"/models/{hub_id.split('/')[-1]}"
    return f"hf download {hub_id} --local-dir {target}  (huggingface_hub < 1.0: huggingface-cli download ...)"


TOKENIZER_FILES: tuple[str, ...] = ("tokenizer.json", "tokenizer.model", "vocab.json", "*.tiktoken")
"""Files one of which a checkpoint's tokenizer needs (fast, SentencePiece, BPE or tiktoken)."""


def check_tokenizer(source: ModelSource, default_hub_id: str) -> None:
    """Fail with ``models_missing`` when a local checkpoint has no tokenizer files.

    vLLM needs the tokenizer even with dummy weights (the DeepSeek-OCR models look up the ``<image>`` token id
    while they are built), and without one it fails deep inside its engine core; this says so first.

    Raises:
        OCRError: ``models_missing`` naming the directory and the download command.
    """
    if source.hub_id is not None and not source.local_files_only:
        return  # online hub id: vLLM fetches the tokenizer with the rest
    directory = Path(source.ref)
    if not directory.is_dir() or any(any(directory.glob(p)) for p in TOKENIZER_FILES):
        return
    hint = download_hint(source.hub_id or default_hub_id, None if source.hub_id else str(directory))
    raise OCRError(
        "models_missing",
        f"{directory} has no tokenizer files ({', '.join(TOKENIZER_FILES)}); vLLM needs them to build the model; "
        f"download the model with: {hint}",
    )


def _has_weights(directory: Path) -> bool:
    return any(any(directory.glob(p)) for p in WEIGHT_PATTERNS)


def _read_config(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise OCRError("models_missing", f"{path} is not a readable config.json ({e})") from None


def resolve_source(
    model: str,
    *,
    offline: bool,
    default_hub_id: str,
    download_dir: str | None = None,
    revision: str | None = None,
    need_weights: bool = True,
) -> ModelSource:
    """Check that ``model`` can be loaded under the current network policy, and say how to load it.

    Args:
        model: Hub id or local directory.
        offline: No hub access: the model must be a local directory or already in the HF cache.
        default_hub_id: Repo to suggest downloading when a local directory is empty or missing.
        download_dir: HF cache directory (None: the default cache).
        revision: Hub revision to look up in the cache.
        need_weights: False when only config and tokenizer are needed (vLLM's dummy weights).

    Raises:
        OCRError: ``models_missing`` naming what is missing and the command that fetches it.
    """
    if looks_like_path(model):
        directory = Path(model).expanduser()
        hint = download_hint(default_hub_id, str(directory))
        if not directory.is_dir():
            raise OCRError("models_missing", f"model directory {directory} does not exist; download it with: {hint}")
        config_path = directory / "config.json"
        if not config_path.is_file():
            raise OCRError("models_missing", f"{directory} has no config.json; download the model with: {hint}")
        if need_weights and not _has_weights(directory):
            raise OCRError(
                "models_missing",
                f"{directory} has a config.json but no weights (*.safetensors); download them with: {hint}",
            )
        return ModelSource(ref=str(directory), hub_id=None, local_files_only=True, hf_config=_read_config(config_path))

    if not offline:
        return ModelSource(ref=model, hub_id=model, local_files_only=False, hf_config=None)

    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(model, "config.json", cache_dir=download_dir, revision=revision)
    if not isinstance(cached, str):
        where = download_dir or "the default Hugging Face cache (HF_HOME)"
        raise OCRError(
            "models_missing",
            f"offline (HF_HUB_OFFLINE=1 or offline: true) and {model} is not in {where}; on a connected machine run: "
            f"{download_hint(model)} and set model to that directory, or fill the cache with `hf download {model}`",
        )
    snapshot = Path(cached).parent
    if need_weights and not _has_weights(snapshot):
        raise OCRError(
            "models_missing",
            f"offline and only part of {model} is cached in {snapshot} (no weights); run: {download_hint(model)}",
        )
    logger.info("offline: loading %s from the cache at %s", model, snapshot)
    return ModelSource(ref=str(snapshot), hub_id=model, local_files_only=True, hf_config=_read_config(Path(cached)))
