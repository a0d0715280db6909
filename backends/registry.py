"""Engine kinds by name, imported lazily.

Lazy on purpose: the router and CPU-only installs must not import torch, vLLM or MinerU just because those
engines exist. Adding an engine is one line here; adding a *backend* (a named deployment of an engine) is
configuration only.
"""

from __future__ import annotations

import importlib
from typing import Any

from backends.base import OCREngine
from shared.errors import OCRError

ENGINES: dict[str, str] = {
    "rapidocr": "backends.rapidocr_engine:RapidOCREngine",
    "deepseek": "backends.deepseek.engine:DeepSeekEngine",
    "mineru": "backends.mineru:MinerUEngine",
    "fake": "backends.fake_engine:FakeEngine",
}


def engine_class(kind: str) -> type[OCREngine]:
    """The engine class registered as ``kind``.

    Raises:
        OCRError: ``unknown_backend`` for a name not in the registry.
    """
    target = ENGINES.get(kind)
    if target is None:
        raise OCRError("unknown_backend", f"no engine kind {kind!r}", accepted=sorted(ENGINES))
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def create_engine(kind: str, config: dict[str, Any] | None = None) -> OCREngine:
    """An engine instance, configured but not started."""
    return engine_class(kind)(config)
