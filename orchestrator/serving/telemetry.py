"""Custom Ray Serve metrics of the router, exported through Ray's Prometheus endpoint next to ``ray_serve_*``.

Names (Prometheus adds the ``ray_`` prefix): ``ocrserve_requests_total`` (backend, outcome, code, adapter),
``ocrserve_request_seconds`` (backend, mode, adapter), ``ocrserve_extractions_total`` (backend, adapter, valid),
``ocrserve_queue_wait_seconds`` (backend), ``ocrserve_pages_total``
(backend), ``ocrserve_vision_tokens_total`` / ``ocrserve_output_tokens_total`` (backend) and
``ocrserve_compression_ratio`` (backend), ``ocrserve_compute_seconds_total`` (backend, resource: CPU/GPU
resource-seconds, see ``deployments.cost``). ``adapter`` is the LoRA adapter that answered (``none``: the base
model, or a backend without adapters). Cascades and shadow traffic (``docs/engines-as-one.md``):
``ocrserve_cascade_pages_total`` (policy, outcome: kept/escalated), ``ocrserve_escalations_total`` (policy, rule),
``ocrserve_shadow_requests_total`` (primary, shadow, outcome: sent/ok/failed/not_sampled/dropped/backoff) and
``ocrserve_shadow_agreement`` (primary, shadow, primary_model, shadow_model: 1 - NED of the two texts). Outside a
Ray worker (unit tests) recording is a no-op.
"""

from __future__ import annotations

import logging
from typing import Any

from shared.schema import ExtractResponse, OCRResponse

logger = logging.getLogger("ray.serve")

LATENCY_BOUNDARIES = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600]
RATIO_BOUNDARIES = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20]
AGREEMENT_BOUNDARIES = [
    0.1,
    0.2,
    0.3,
    0.4,
    0.5,
    0.6,
    0.7,
    0.8,
    0.85,
    0.9,
    0.92,
    0.94,
    0.96,
    0.97,
    0.98,
    0.99,
    0.995,
    1.0,
]
"""Fine near 1, where agreeing pairs live: Ray's exporter reports a histogram's ``_sum`` from the midpoints of the
buckets its observations fell in, so the mean read from it is off by up to half a bucket (0.0025 at the top)."""
NO_ADAPTER = "none"
"""``adapter`` label of answers no LoRA adapter gave."""


def _tags(*keys: str) -> Any:
    """Tag keys as the tuple Ray's metrics want (Ray annotates them as a 1-tuple, whatever their number)."""
    return keys


class RouterMetrics:
    """The router's counters and histograms; every method is safe to call when metrics are unavailable."""

    def __init__(self) -> None:
        try:
            from ray.serve.metrics import Counter, Histogram

            self.requests = Counter(
                "ocrserve_requests_total",
                description="OCR requests by backend and outcome.",
                tag_keys=_tags("backend", "outcome", "code", "adapter"),
            )
            self.latency = Histogram(
                "ocrserve_request_seconds",
                description="Router receipt to answer, seconds.",
                boundaries=LATENCY_BOUNDARIES,
                tag_keys=_tags("backend", "mode", "adapter"),
            )
            self.extractions = Counter(
                "ocrserve_extractions_total",
                description="Field extractions (POST /v1/extract) by backend, adapter and whether they validated.",
                tag_keys=_tags("backend", "adapter", "valid"),
            )
            self.queue_wait = Histogram(
                "ocrserve_queue_wait_seconds",
                description="Router receipt to engine start, seconds.",
                boundaries=LATENCY_BOUNDARIES,
                tag_keys=_tags("backend"),
            )
            self.pages = Counter("ocrserve_pages_total", description="Pages processed.", tag_keys=_tags("backend"))
            self.vision_tokens = Counter(
                "ocrserve_vision_tokens_total", description="Vision tokens encoded.", tag_keys=_tags("backend")
            )
            self.output_tokens = Counter(
                "ocrserve_output_tokens_total", description="Tokens generated.", tag_keys=_tags("backend")
            )
            self.compute = Counter(
                "ocrserve_compute_seconds_total",
                description="Reserved resource-seconds used by requests (replica resources x share of engine time).",
                tag_keys=_tags("backend", "resource"),
            )
            self.compression = Histogram(
                "ocrserve_compression_ratio",
                description="Output tokens per vision token, per request.",
                boundaries=RATIO_BOUNDARIES,
                tag_keys=_tags("backend"),
            )
            self.cascade_pages = Counter(
                "ocrserve_cascade_pages_total",
                description="Pages answered by cascades: kept from the first backend or escalated to the second.",
                tag_keys=_tags("policy", "outcome"),
            )
            self.escalations = Counter(
                "ocrserve_escalations_total",
                description="Escalation rules met by cascade pages (a page meeting two rules counts in both).",
                tag_keys=_tags("policy", "rule"),
            )
            self.shadow_requests = Counter(
                "ocrserve_shadow_requests_total",
                description="Shadow reads by outcome (sent, ok, failed, not_sampled, dropped, backoff).",
                tag_keys=_tags("primary", "shadow", "outcome"),
            )
            self.shadow_agreements = Histogram(
                "ocrserve_shadow_agreement",
                description="Agreement (1 - NED) of a shadow backend's text with the answer the client got.",
                boundaries=AGREEMENT_BOUNDARIES,
                tag_keys=_tags("primary", "shadow", "primary_model", "shadow_model"),
            )
            self.enabled = True
        except Exception as e:  # not in a Ray worker
            logger.debug("metrics disabled: %s", e)
            self.enabled = False

    def success(self, result: OCRResponse, mode: str = "default") -> None:
        """A request answered; ``mode``: the value of its backend's mode or tier option (its metric_options)."""
        if not self.enabled:
            return
        b = {"backend": result.backend}
        adapter = result.model.adapter or NO_ADAPTER
        self.requests.inc(tags={**b, "outcome": "ok", "code": "ok", "adapter": adapter})
        self.latency.observe(
            result.timings.total_s,
            tags={**b, "mode": mode, "adapter": adapter},
        )
        self.queue_wait.observe(result.timings.queue_s, tags=b)
        self.pages.inc(result.usage.pages, tags=b)
        if result.usage.vision_tokens:
            self.vision_tokens.inc(result.usage.vision_tokens, tags=b)
        if result.usage.output_tokens:
            self.output_tokens.inc(result.usage.output_tokens, tags=b)
        if result.usage.compute is not None:
            for resource, seconds in (
                ("CPU", result.usage.compute.cpu_seconds),
                ("GPU", result.usage.compute.gpu_seconds),
            ):
                if seconds:
                    self.compute.inc(seconds, tags={**b, "resource": resource})
        if result.usage.compression_ratio is not None:
            self.compression.observe(result.usage.compression_ratio, tags=b)

    def failure(self, backend: str | None, code: str, *, adapter: str | None = None) -> None:
        if self.enabled:
            tags = {"backend": backend or "none", "outcome": "error", "code": code, "adapter": adapter or NO_ADAPTER}
            self.requests.inc(tags=tags)

    def extraction(self, result: ExtractResponse) -> None:
        """One answered extraction (its pages and tokens count with the OCR figures of the same backend)."""
        if not self.enabled:
            return
        adapter = result.model.adapter or NO_ADAPTER
        b = {"backend": result.backend}
        self.extractions.inc(tags={**b, "adapter": adapter, "valid": str(result.valid).lower()})
        self.pages.inc(result.usage.pages, tags=b)
        if result.usage.vision_tokens:
            self.vision_tokens.inc(result.usage.vision_tokens, tags=b)
        if result.usage.output_tokens:
            self.output_tokens.inc(result.usage.output_tokens, tags=b)

    def cascade(self, policy: str, *, pages: int, plan: dict[int, list[str]]) -> None:
        """One cascade answer: how many pages were kept and escalated, and by which rules."""
        if not self.enabled:
            return
        if pages - len(plan):
            self.cascade_pages.inc(pages - len(plan), tags={"policy": policy, "outcome": "kept"})
        if plan:
            self.cascade_pages.inc(len(plan), tags={"policy": policy, "outcome": "escalated"})
        for rules in plan.values():
            for rule in rules:
                self.escalations.inc(tags={"policy": policy, "rule": rule})

    def shadow_request(self, primary: str, shadow: str, outcome: str) -> None:
        if self.enabled:
            self.shadow_requests.inc(tags={"primary": primary, "shadow": shadow, "outcome": outcome})

    def shadow_agreement(self, primary: OCRResponse, shadow: OCRResponse, score: float) -> None:
        """Agreement of a shadow read, labelled with both backends and both model versions (a drop after an
        upgrade says which one changed)."""
        if self.enabled:
            self.shadow_agreements.observe(
                score,
                tags={
                    "primary": primary.backend,
                    "shadow": shadow.backend,
                    "primary_model": model_label(primary),
                    "shadow_model": model_label(shadow),
                },
            )


def model_label(result: OCRResponse) -> str:
    """``id@version`` of the model that answered (``id`` alone when it has no version)."""
    model = result.model
    return f"{model.id}@{model.version}" if model.version else model.id
