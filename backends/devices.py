"""Which GPU an engine may name: under Ray, a replica sees only the GPUs it was given, numbered from ``cuda:0``.

Ray sets ``CUDA_VISIBLE_DEVICES`` in a replica to the GPU ids it assigned (``num_gpus: 1`` on a node's third GPU:
``CUDA_VISIBLE_DEVICES=2``), and CUDA renumbers what is visible from 0. A config that says ``device: cuda:1`` (the
second GPU of the machine, as its author saw it) therefore names a device the replica cannot see, and the first
tensor moved there fails with "invalid device ordinal". :func:`check_visible` refuses such a setting at start with
what to write instead. Pure: the caller counts the devices (torch, or the environment).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from shared.errors import OCRError

HIDDEN = frozenset({"", "-1", "none", "NoDevFiles"})
"""``CUDA_VISIBLE_DEVICES`` values that hide every GPU."""


def cuda_index(device: str) -> int | None:
    """``cuda:N`` -> N, ``cuda`` -> 0, anything else (``cpu``, ``auto``, ``mps``) -> None."""
    if device == "cuda":
        return 0
    if device.startswith("cuda:") and device[5:].isdigit():
        return int(device[5:])
    return None


def visible_gpus(environ: Mapping[str, str] | None = None) -> int | None:
    """How many GPUs ``CUDA_VISIBLE_DEVICES`` leaves visible (None when unset: every GPU of the machine)."""
    value = (os.environ if environ is None else environ).get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return None
    value = value.strip()
    if value in HIDDEN:
        return 0
    return len([v for v in value.split(",") if v.strip()])


def check_visible(device: str, *, count: int, what: str, environ: Mapping[str, str] | None = None) -> None:
    """Refuse a ``cuda:N`` setting this process cannot see.

    Args:
        device: The configured device (``cuda:N``; other values pass).
        count: GPUs this process sees (``torch.cuda.device_count()``, or :func:`visible_gpus`).
        what: The engine, for the message.
        environ: The environment to quote (default ``os.environ``).

    Raises:
        OCRError: ``backend_unavailable`` naming the setting, what is visible and what to write instead.
    """
    index = cuda_index(device)
    if index is None or index < count:
        return
    visible = (os.environ if environ is None else environ).get("CUDA_VISIBLE_DEVICES")
    raise OCRError(
        "backend_unavailable",
        f"{what} is configured with device {device!r}, but this process sees {count} GPU(s) "
        f"(CUDA_VISIBLE_DEVICES={visible!r}): under Ray a replica sees only the GPUs it was given, numbered from "
        "cuda:0. Use device: auto (or cuda) and let Ray choose the GPU (ray_actor_options num_gpus; a custom "
        "resource or label_selector to pin a kind of GPU)",
    )
