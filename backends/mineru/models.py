"""Which MinerU models a request needs, whether they are on disk, and the error that says what to do.

Checked *before* MinerU runs, from MinerU's own model registry (``mineru.model.registry``) and completeness markers
(``verify_model_repo``), so the answer agrees with what MinerU would load and costs a few ``stat`` calls.
MinerU itself would also fail with ``MINERU_MODEL_SOURCE=local`` (see :mod:`backends.mineru.environment`), but with a
bare ``FileNotFoundError`` naming one file; this module names the tier, every missing path and the command.

Tier -> models (mineru 4.0.x):

- flash, born-digital PDF / office / HTML / EPUB / CSV: none.
- flash on a scan (MinerU classifies the PDF as ``ocr``, or ``ocr_mode=ocr``, or an image): the small models
  (layout + OCR), i.e. what ``mineru-kit models download --tier basic`` fetches.
- basic: the small models.
- standard, advanced: the small models and the MinerU2.5 VLM (none locally when a VLM server URL is configured).
"""

from __future__ import annotations

import logging
import shlex
from dataclasses import dataclass, field
from typing import Any

from backends.mineru.config import TIERS, MinerUConfig, Tier
from shared.errors import OCRError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelCheck:
    """The models one (tier, needs OCR) combination requires and which of them are absent."""

    tier: str
    needs_ocr: bool
    required: list[str] = field(default_factory=list)
    missing: dict[str, list[str]] = field(default_factory=dict)
    """Repository name -> missing paths under the models directory."""
    models_dir: str = ""
    download_command: str = ""

    @property
    def ready(self) -> bool:
        return not self.missing


def download_tier(tier: str) -> str | None:
    """The ``--tier`` of ``mineru-kit models download`` that provides ``tier`` (None: no models needed)."""
    return {"flash": "basic", "basic": "basic", "standard": "standard", "advanced": "standard"}.get(tier)


def required_repos(tier: str, *, needs_ocr: bool, config: MinerUConfig) -> tuple[Any, ...]:
    """MinerU ``ModelRepo`` objects that ``tier`` needs (empty for flash without OCR)."""
    from mineru.model.registry import model_repos_for_tier

    from backends.mineru.environment import vlm_config

    if tier == "flash" and not needs_ocr:
        return ()
    deployment_tier = download_tier(tier)
    return tuple(model_repos_for_tier(deployment_tier, vlm_config=vlm_config(config)))


def check_models(tier: str, *, needs_ocr: bool, config: MinerUConfig) -> ModelCheck:
    """Which of the models ``tier`` needs are missing on disk (no network, no model loading)."""
    from mineru.config import config as mineru_config
    from mineru.model.download import verify_model_repo

    repos = required_repos(tier, needs_ocr=needs_ocr, config=config)
    missing: dict[str, list[str]] = {}
    for repo in repos:
        result = verify_model_repo(repo)
        if not result.ready:
            missing[repo.name] = list(result.missing_paths)
    return ModelCheck(
        tier=tier,
        needs_ocr=needs_ocr,
        required=[repo.name for repo in repos],
        missing=missing,
        models_dir=str(mineru_config.model.base_dir),
        download_command=download_command(tier, config=config, models_dir=str(mineru_config.model.base_dir)),
    )


def download_command(tier: str, *, config: MinerUConfig, models_dir: str) -> str:
    """The exact command that fetches ``tier``'s models for this engine's backends into ``models_dir``."""
    from mineru.model.runtime.device import resolve_small_model_backend
    from mineru.model.vlm.selector import resolve_vlm_engine

    deployment_tier = download_tier(tier)
    if deployment_tier is None:
        return ""
    parts = [f"MINERU_MODEL_BASE_DIR={shlex.quote(models_dir)}", "mineru-kit", "models", "download"]
    parts += ["--tier", deployment_tier, "--small-backend", resolve_small_model_backend(config.small_backend)]
    if deployment_tier == "standard" and not config.vlm_server_url:
        parts += ["--vlm-engine", resolve_vlm_engine(config.vlm_engine)]
    return " ".join(parts)


def ensure_models(tier: str, *, needs_ocr: bool, config: MinerUConfig, reason: str = "") -> ModelCheck:
    """Raise ``models_missing`` (503) naming tier, missing models and the download command, or return the check.

    Args:
        tier: The tier the request runs.
        needs_ocr: Whether the document needs OCR (matters for flash only).
        config: The engine's config (backends, VLM server).
        reason: Why models are needed, for the message (e.g. "page 1 has no text layer").
    """
    check = check_models(tier, needs_ocr=needs_ocr, config=config)
    if check.ready:
        return check
    missing = "; ".join(f"{repo}: {', '.join(paths)}" for repo, paths in check.missing.items())
    why = f" ({reason})" if reason else ""
    raise OCRError(
        "models_missing",
        f"MinerU tier {tier!r} needs models that are not in {check.models_dir}{why}: {missing}. "
        f"Download them on a machine with network access: `{check.download_command}` "
        "(then copy the directory here; the engine never downloads, MINERU_MODEL_SOURCE=local).",
        accepted={
            "tier": tier,
            "missing": check.missing,
            "models_dir": check.models_dir,
            "download_command": check.download_command,
            "tiers_without_models": ["flash (born-digital PDFs, DOCX, PPTX, XLSX, HTML, EPUB, CSV)"],
        },
    )


def tier_readiness(config: MinerUConfig) -> dict[str, dict[str, Any]]:
    """For health(): per offered tier, whether its models are on disk, and the command when they are not.

    flash is always usable for born-digital PDFs and office formats; its ``scans`` entry says whether it can OCR.
    """
    out: dict[str, dict[str, Any]] = {}
    for tier in TIERS:
        if tier not in config.tiers:
            continue
        try:
            check = check_models(tier, needs_ocr=True, config=config)
        except Exception as e:  # health must answer even if MinerU's registry changed under us
            out[tier] = {"models_present": False, "error": str(e)}
            continue
        entry: dict[str, Any] = {"models_present": check.ready, "models": check.required}
        if check.missing:
            entry["missing_files"] = {repo: len(paths) for repo, paths in check.missing.items()}
            entry["download_command"] = check.download_command
        out[tier] = {"models_present": True, "models": [], "scans": entry} if tier == "flash" else entry
    return out


def needs_models(tier: Tier, needs_ocr: bool) -> bool:
    """Whether ``tier`` needs any model for a document that does (not) need OCR."""
    return tier != "flash" or needs_ocr
