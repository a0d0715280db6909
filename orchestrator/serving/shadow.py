"""Drift watch without labels: a sample of live traffic also read by a second backend, in the background.

An OCR model or engine upgrade can break output silently (it has happened to DeepSeek-OCR on a vLLM release); with
no reference transcriptions in production, the signal is two independent engines suddenly agreeing less. So a
configured fraction of successful requests is sent again, after the client has its answer, to the backend paired
with the one that answered; their agreement (1 - OmniDocBench NED of the two texts) is exported per backend pair
and model version as ``ocrserve_shadow_agreement``, and a drop shows on a dashboard or fires an alert within
minutes (``docs/engines-as-one.md``).

Bounded by construction: at most ``max_in_flight`` shadow calls per router replica (the rest are dropped and
counted), none for ``backoff_s`` after the shadow backend said it was busy, and a shadow never waits in a queue
(Serve's backpressure refuses it instead). The client's request never waits for any of it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field


class ShadowSettings(BaseModel):
    """``router.shadow``: which backends are shadowed by which, and how much traffic it may cost."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fraction: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Share of successful requests also sent to the shadow backend."
    )
    pairs: dict[str, str] = Field(
        default_factory=dict,
        description="Backend that answered -> backend that reads the same document in the background.",
    )
    max_in_flight: int = Field(
        default=2, ge=1, description="Shadow calls at once per router replica; beyond it a sample is dropped."
    )
    backoff_s: float = Field(
        default=30.0, ge=0.0, description="No shadow calls this long after the shadow backend was busy or down."
    )
    timeout_s: float = Field(default=300.0, gt=0, description="Time limit of one shadow call.")


class ShadowSampler:
    """Decides, per answered request, whether a shadow call goes out; keeps its bounds."""

    def __init__(
        self,
        settings: ShadowSettings,
        *,
        rng: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._rng = rng
        self._clock = clock
        self.in_flight = 0
        self._quiet_until: dict[str, float] = {}

    def pick(self, primary: str) -> tuple[str | None, str]:
        """The shadow backend for a request ``primary`` answered, or None; and why (a metrics outcome)."""
        shadow = self.settings.pairs.get(primary)
        if shadow is None or self.settings.fraction <= 0:
            return None, "unpaired"
        if self._rng() >= self.settings.fraction:
            return None, "not_sampled"
        if self._clock() < self._quiet_until.get(shadow, 0.0):
            return None, "backoff"
        if self.in_flight >= self.settings.max_in_flight:
            return None, "dropped"
        self.in_flight += 1
        return shadow, "sent"

    def done(self, shadow: str, *, busy: bool) -> None:
        """A shadow call ended; ``busy``: it was refused or its backend was down, so back off."""
        self.in_flight = max(0, self.in_flight - 1)
        if busy:
            self._quiet_until[shadow] = self._clock() + self.settings.backoff_s
