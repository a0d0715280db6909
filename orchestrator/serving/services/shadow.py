"""Shadow reads: a sample of answered requests read again by a paired backend, in the background, and their
agreement exported (the sampling rules are in :mod:`orchestrator.serving.shadow`)."""

from __future__ import annotations

import asyncio
import logging

from deployments.backend import call_backend
from orchestrator.serving.directory import BackendDirectory
from orchestrator.serving.shadow import ShadowSampler
from orchestrator.serving.telemetry import RouterMetrics
from shared.documents import Document
from shared.errors import OCRError
from shared.metrics import agreement
from shared.requests import OutputOptions, RunRequest
from shared.schema import ErrorCode, OCRResponse

logger = logging.getLogger("ray.serve")


class ShadowReads:
    """Sends answered documents to their shadow backend when the sampler says so; never makes a client wait."""

    def __init__(self, directory: BackendDirectory, metrics: RouterMetrics) -> None:
        self.directory = directory
        self.metrics = metrics
        self.settings = directory.settings.shadow
        self.sampler = ShadowSampler(self.settings)
        self.tasks: set[asyncio.Task[None]] = set()  # held so the loop does not drop them mid-flight

    def maybe(self, doc: Document, run: RunRequest, primary: OCRResponse) -> None:
        """Send ``doc`` to ``primary``'s shadow backend in the background, if the sampler says so.

        The task starts after the answer is built and is not awaited: the client's request never waits for it.
        """
        if primary.backend not in self.settings.pairs:
            return
        shadow, outcome = self.sampler.pick(primary.backend)
        self.metrics.shadow_request(primary.backend, shadow or self.settings.pairs[primary.backend], outcome)
        if shadow is None:
            return
        task = asyncio.get_running_loop().create_task(self._call(shadow, doc, run, primary))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _call(self, shadow: str, doc: Document, run: RunRequest, primary: OCRResponse) -> None:
        """One shadow read and its agreement with the primary answer; never raises (it has nobody to tell)."""
        busy = False
        shadow_run = run.model_copy(
            update={
                "request_id": f"{run.request_id}:shadow",
                "output": OutputOptions(include_boxes_image=False, include_raw=False),
                "options": {},  # the client's options were for the primary's engine; the shadow reads its own way
            }
        )
        try:
            answer = await call_backend(
                self.directory.handle(shadow), shadow, doc, shadow_run, timeout_s=self.settings.timeout_s
            )
            score = await asyncio.to_thread(agreement, primary.markdown, answer.markdown)
            self.metrics.shadow_agreement(primary, answer, score)
            self.metrics.shadow_request(primary.backend, shadow, "ok")
        except Exception as e:
            busy = isinstance(e, OCRError) and e.code in (ErrorCode.OVERLOADED, ErrorCode.BACKEND_UNAVAILABLE)
            logger.info("shadow %s of request %s failed: %s", shadow, run.request_id, e)
            self.metrics.shadow_request(primary.backend, shadow, "failed")
        finally:
            self.sampler.done(shadow, busy=busy)
