"""Custom Ray Serve metrics of the router, exported through Ray's Prometheus endpoint next to ``ray_serve_*``.

Names (Prometheus adds the ``ray_`` prefix): ``ocrserve_requests_total`` (backend, outcome, code),
``ocrserve_request_seconds`` (backend, mode), ``ocrserve_queue_wait_seconds`` (backend), ``ocrserve_pages_total``
(backend), ``ocrserve_vision_tokens_total`` / ``ocrserve_output_tokens_total`` (backend) and
``ocrserve_compression_ratio`` (backend), ``ocrserve_compute_seconds_total`` (backend, resource: CPU/GPU
resource-seconds, see ``deployments.cost``). Outside a Ray worker (unit tests) recording is a no-op.
"""

from __future__ import annotations

import logging
from typing import Any

from shared.schema import OCRResponse

logger = logging.getLogger("ray.serve")

LATENCY_BOUNDARIES = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600]
RATIO_BOUNDARIES = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20]


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
                tag_keys=_tags("backend", "outcome", "code"),
            )
            self.latency = Histogram(
                "ocrserve_request_seconds",
                description="Router receipt to answer, seconds.",
                boundaries=LATENCY_BOUNDARIES,
                tag_keys=_tags("backend", "mode"),
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
            self.enabled = True
        except Exception as e:  # not in a Ray worker
            logger.debug("metrics disabled: %s", e)
            self.enabled = False

    def success(self, result: OCRResponse, options: dict[str, Any]) -> None:
        if not self.enabled:
            return
        b = {"backend": result.backend}
        self.requests.inc(tags={**b, "outcome": "ok", "code": "ok"})
        self.latency.observe(
            result.timings.total_s, tags={**b, "mode": str(options.get("mode") or options.get("tier") or "default")}
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

    def failure(self, backend: str | None, code: str) -> None:
        if self.enabled:
            self.requests.inc(tags={"backend": backend or "none", "outcome": "error", "code": code})
