"""The router: the HTTP ingress replica (the Serve deployment ``Router``), thin on purpose.

It holds the backend directory (handles by name, built from config, so adding a backend is configuration) and one
service per endpoint; the builder wraps it with ``serve.ingress``, and its HTTP app comes from
:func:`orchestrator.serving.api.create_api`, which reads this object from ``app.state`` - so the routes are
testable with a fake router and the services with fake handles.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestrator.jobs.service import JobService
from orchestrator.jobs.settings import JobSettings
from orchestrator.serving.config import RouterSettings
from orchestrator.serving.directory import BackendDirectory
from orchestrator.serving.services.compare import CompareService
from orchestrator.serving.services.extract import ExtractService
from orchestrator.serving.services.jobs import JobProxy
from orchestrator.serving.services.ocr import OCRService
from orchestrator.serving.services.render import RenderService
from orchestrator.serving.telemetry import RouterMetrics
from shared.requests import CompareOptions, JobOptions, OCROptions
from shared.schema import BackendStatus, CompareResponse, JobStatus, OCRResponse


class Router:
    """Routes OCR requests to backend deployments: the directory and the endpoints' services."""

    def __init__(
        self,
        backends: Mapping[str, Any],
        settings: RouterSettings | dict[str, Any] | None = None,
        jobs: JobService | JobSettings | dict[str, Any] | None = None,
        consumer: Any = None,
    ) -> None:
        self.settings = (
            settings if isinstance(settings, RouterSettings) else RouterSettings.model_validate(settings or {})
        )
        # the job API (None when not deployed): state in the job store, work through the queue to ``consumer``
        self.jobs = (
            jobs if isinstance(jobs, JobService) or jobs is None else JobService(JobSettings.model_validate(jobs))
        )
        self.consumer = consumer  # the job consumer deployment: bound so Serve deploys it; never called from here
        self.metrics = RouterMetrics()
        self.directory = BackendDirectory(backends, self.settings)
        self.backends = self.directory.backends
        self.ocr_service = OCRService(self.directory, self.metrics, self.jobs)
        self.compare_service = CompareService(self.directory, self.metrics)
        self.job_proxy = JobProxy(self.directory, self.jobs)
        self.extract_service = ExtractService(self.directory, self.metrics)
        self.render_service = RenderService(self.directory)

    def __serve_build_asgi_app__(self):
        from orchestrator.serving.api import create_api

        return create_api(self)

    # the names callers reach on the router itself (routes, tests, the CLI), each one line to its service

    async def statuses(self, *, max_age_s: float | None = None) -> dict[str, BackendStatus]:
        return await self.directory.statuses(max_age_s=max_age_s)

    def auto_rule(self) -> list[str]:
        return self.directory.auto_rule()

    async def ocr(self, data: bytes, filename: str, opts: OCROptions, request_id: str) -> OCRResponse:
        return await self.ocr_service.ocr(data, filename, opts, request_id)

    async def compare(self, data: bytes, filename: str, opts: CompareOptions, request_id: str) -> CompareResponse:
        return await self.compare_service.compare(data, filename, opts, request_id)

    async def submit_job(
        self, data: bytes, filename: str, opts: JobOptions, request_id: str, **kwargs: Any
    ) -> tuple[JobStatus, bool]:
        return await self.job_proxy.submit(data, filename, opts, request_id, **kwargs)
