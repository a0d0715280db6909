"""Process settings MinerU reads: offline model source, model directory, device, heap trimming.

MinerU takes its settings from ``MINERU_*`` environment variables, and most of them only once, when
``mineru.config`` is first imported. So :func:`apply_environment` sets the variables *and*, when MinerU was
imported earlier in this process (a test, a second engine), updates its already-loaded config object too; otherwise
the engine's ``models_dir`` would silently not apply. A Serve replica hosts one engine, so process-wide settings
are the engine's own.

Offline by construction: ``MINERU_MODEL_SOURCE=local`` makes MinerU fail at once when a model is absent instead
of probing huggingface.co and then retrying modelscope.cn for ~25 s; the ``HF_*_OFFLINE`` variables make any
other hub client (transformers, huggingface_hub) fail fast too.

vLLM's model runner: when MinerU's VLM runs on a local vLLM, MinerU registers ``MinerULogitsProcessor``
(mineru-vl-utils, a v1-interface processor) on every CUDA GPU (``mineru.model.vlm.engine_utils.
enable_custom_logits_processors``), which vLLM 0.32's default V2 model runner refuses while the engine is built.
So the parse process gets ``VLLM_USE_V2_MODEL_RUNNER=0`` (:func:`vlm_runner_env`, :mod:`backends.vllm_env`).
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass

from backends.devices import check_visible, visible_gpus
from backends.mineru.config import MinerUConfig
from backends.vllm_env import v1_runner_env

logger = logging.getLogger(__name__)

VLM_TIERS = frozenset({"standard", "advanced"})
"""Tiers that run the MinerU2.5 VLM."""
PROCESSOR = "MinerULogitsProcessor (mineru-vl-utils' no-repeat n-gram guard)"

OFFLINE_ENV: dict[str, str] = {
    "MINERU_MODEL_SOURCE": "local",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
}


@dataclass(frozen=True)
class Environment:
    """What the engine runs with, resolved once at start."""

    device: str
    models_dir: str
    env: dict[str, str]


def resolve_device(setting: str) -> str:
    """The MinerU device for ``setting`` ('auto', 'cpu', 'cuda', 'cuda:N').

    auto follows Ray's placement: a replica given ``num_gpus: 1`` gets ``CUDA_VISIBLE_DEVICES`` naming its GPU,
    which torch then sees as ``cuda:0``. Without that variable (or with torch unable to use CUDA, e.g. the CPU
    wheel) the answer is cpu; torch is only imported when a GPU was assigned, so CPU replicas stay light.

    Raises:
        OCRError: ``backend_unavailable`` for ``cuda:N`` naming a GPU this process cannot see
            (:func:`backends.devices.check_visible`).
    """
    if setting != "auto":
        _check_visible(setting)
        return setting
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    if not visible or visible in {"-1", "none", "NoDevFiles"}:
        return "cpu"
    try:
        import torch
    except ImportError:
        logger.warning("CUDA_VISIBLE_DEVICES=%s but torch is not installed: MinerU runs on cpu", visible)
        return "cpu"
    try:
        if torch.cuda.is_available():
            return "cuda"
    except Exception as e:  # a broken driver must not take the replica down; cpu still works
        logger.warning("torch cannot query CUDA (%s): MinerU runs on cpu", e)
    return "cpu"


def _check_visible(setting: str) -> None:
    """Refuse ``cuda:N`` naming a GPU this process cannot see (counted from ``CUDA_VISIBLE_DEVICES``, else torch)."""
    if not setting.startswith("cuda:"):
        return
    count = visible_gpus()
    if count is None:
        try:
            import torch

            count = torch.cuda.device_count()
        except Exception:  # no torch, or no driver: MinerU will say so itself
            return
    check_visible(setting, count=count, what="MinerU")


def apply_environment(config: MinerUConfig) -> Environment:
    """Set MinerU's process environment from ``config`` (and patch its config if already imported).

    Returns:
        The resolved runtime (device, model directory, the variables set).
    """
    device = resolve_device(config.device)
    env = dict(OFFLINE_ENV)
    env["MINERU_DEVICE_MODE"] = device
    env["MINERU_LOG_LEVEL"] = config.log_level
    env["MINERU_MODEL_SMALL_BACKEND"] = config.small_backend
    env["MINERU_MODEL_VLM_ENGINE"] = config.vlm_engine
    if config.models_dir:
        env["MINERU_MODEL_BASE_DIR"] = os.path.expanduser(config.models_dir)
    if config.render_processes is not None:
        env["DOCVORTEX_PDF_RENDER_THREADS"] = str(config.render_processes)
    if config.malloc_trim:
        env["MINERU_MALLOC_TRIM"] = "1"
    else:
        os.environ.pop("MINERU_MALLOC_TRIM", None)
    os.environ.update(env)
    _patch_loaded_config(config, env)
    runner = vlm_runner_env(config)  # after the device and engine settings it depends on
    os.environ.update(runner)
    env.update(runner)

    from mineru.config import config as mineru_config

    models_dir = os.path.expanduser(mineru_config.model.base_dir)
    logger.info("MinerU runtime: device=%s models_dir=%s (source local, offline)", device, models_dir)
    return Environment(device=device, models_dir=models_dir, env=env)


def local_vlm_engine(config: MinerUConfig) -> str | None:
    """The local engine MinerU runs its VLM on for this config (None: no VLM tier offered, or a VLM server).

    Reads MinerU's own choice (``resolve_vlm_engine``), so call it once the environment is applied: ``auto``
    depends on the device (vLLM on a CUDA GPU where it imports, else lmdeploy or llama.cpp).
    """
    if config.vlm_server_url or not VLM_TIERS & set(config.tiers):
        return None
    from mineru.model.vlm.selector import resolve_vlm_engine

    return resolve_vlm_engine(config.vlm_engine)


def vlm_runner_env(config: MinerUConfig) -> dict[str, str]:
    """``VLLM_USE_V2_MODEL_RUNNER=0`` when this config's VLM runs on a local vLLM, else nothing.

    Raises:
        OCRError: ``backend_unavailable`` when the environment forces vLLM's V2 runner, which would refuse
            MinerU's logits processor at the first VLM request.
    """
    if local_vlm_engine(config) != "vllm":
        return {}
    return v1_runner_env(who=PROCESSOR)


def _patch_loaded_config(config: MinerUConfig, env: dict[str, str]) -> None:
    """Bring an already-imported ``mineru.config.config`` in line with ``env`` (it reads env at import only)."""
    module = sys.modules.get("mineru.config")
    if module is None:
        return  # first import will read the environment we just set
    loaded = module.config
    loaded.model.source = "local"
    loaded.model.small_backend = config.small_backend
    loaded.model.vlm.engine = config.vlm_engine
    loaded.log.level = config.log_level
    if "MINERU_MODEL_BASE_DIR" in env:
        loaded.model.base_dir = env["MINERU_MODEL_BASE_DIR"]


def vlm_config(config: MinerUConfig):
    """MinerU's VLM settings for this engine (a remote server when configured, else the local engine)."""
    from mineru.config import VlmConfig

    return VlmConfig(engine=config.vlm_engine, server_url=config.vlm_server_url)


def mineru_version() -> str:
    from mineru.version import __version__

    return __version__
