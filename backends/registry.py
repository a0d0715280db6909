"""Engine kinds by name, imported lazily; or any engine class named ``module:Class``.

Lazy on purpose: the router and CPU-only installs must not import torch, vLLM or MinerU just because those
engines exist (engine modules keep heavy imports inside ``start()``, see :mod:`backends.base`). Adding an engine
kind is one line here; adding a *backend* (a named deployment of an engine) is configuration only. An engine that
is not registered - your own, or the test suite's fake - is named by its import path, ``package.module:Class``,
and an application deploys one only when its config says ``allow_custom_engines: true``
(:func:`check_engine_kind`): an import path in a config is code that runs in every replica, and the tests' fake
engine obeys requests to sleep, fail or kill its process.
"""

from __future__ import annotations

import importlib
from typing import Any

from pydantic import ValidationError

from backends.base import EngineConfig, OCREngine
from shared.errors import OCRError, validation_problems
from shared.schema import ErrorCode, ModeCost

ENGINES: dict[str, str] = {
    "rapidocr": "backends.rapidocr:RapidOCREngine",
    "deepseek": "backends.deepseek.engine:DeepSeekEngine",
    "mineru": "backends.mineru:MinerUEngine",
}


def is_registered(kind: str) -> bool:
    """Whether ``kind`` is one of the product's engine kinds (not an import path)."""
    return kind in ENGINES


def check_engine_kind(kind: str, *, allow_custom: bool) -> None:
    """Refuse an engine named by import path unless the application allows custom engines; imports nothing.

    A name that is neither registered nor an import path is left to :func:`check_engine_settings` (unknown kind).

    Raises:
        ValueError: naming the engine, the registered kinds and the setting that allows it.
    """
    if is_registered(kind) or allow_custom or ":" not in kind:
        return
    raise ValueError(
        f"engine {kind!r} is not one of the registered kinds ({', '.join(sorted(ENGINES))}); an engine named by "
        "import path runs only with allow_custom_engines: true in the application's args"
    )


def engine_class(kind: str) -> type[OCREngine]:
    """The engine class registered as ``kind``, or the class at ``kind`` when it is ``module:Class``.

    Raises:
        OCRError: ``unknown_backend`` for a name that is neither registered nor an importable engine class.
    """
    target = ENGINES.get(kind) or (kind if ":" in kind else None)
    if target is None:
        raise OCRError(
            ErrorCode.UNKNOWN_BACKEND,
            f"no engine kind {kind!r}",
            accepted=sorted(ENGINES) + ["module:Class (an OCREngine subclass)"],
        )
    module_name, _, attr = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise OCRError(
            ErrorCode.UNKNOWN_BACKEND, f"cannot import engine {target!r}: {e}", accepted=sorted(ENGINES)
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, OCREngine)):
        raise OCRError(ErrorCode.UNKNOWN_BACKEND, f"{target!r} is not an OCREngine subclass", accepted=sorted(ENGINES))
    return cls


def vision_token_costs(sizes: list[tuple[int, int]]) -> list[ModeCost]:
    """What pages of ``sizes`` cost in every resolution mode of every registered engine that reads pages as
    vision tokens (``OCREngine.vision_token_costs``), in registry order; pure arithmetic, no model loaded."""
    return [cost for kind in ENGINES for cost in engine_class(kind).vision_token_costs(sizes)]


def create_engine(kind: str, config: dict[str, Any] | None = None) -> OCREngine:
    """An engine instance, configured but not started."""
    return engine_class(kind)(config)


def check_engine_settings(kind: str, config: dict[str, Any], default_options: dict[str, Any]) -> EngineConfig:
    """Validate a backend's ``engine_config`` and ``default_options`` against the engine's own models.

    Called when the application is built, so a mistyped kind, field or value fails ``serve run`` at once with the
    field's name instead of when a replica starts (or when the first request arrives).

    Returns:
        The validated engine config (what placement reads: :meth:`EngineConfig.devices_per_replica`).

    Raises:
        ValueError: naming the engine kind and the offending fields.
    """
    try:
        cls = engine_class(kind)
    except OCRError as e:
        raise ValueError(f"{e.message}; known kinds: {', '.join(sorted(ENGINES))}") from None
    validated: list[Any] = []
    for what, model, value in (
        ("engine_config", cls.Config, config),
        ("default_options", cls.Options, default_options),
    ):
        try:
            validated.append(model.model_validate(value))
        except ValidationError as e:
            raise ValueError(f"{what} of engine {kind!r}: {validation_problems(e)}") from None
    engine_config: EngineConfig = validated[0]
    return engine_config
