"""``build_app(args)``: the typed application builder that ``serve run serve_config.yaml`` calls.

Validates first (every backend's engine settings included, see :mod:`orchestrator.serving.config`), then binds one
``BackendDeployment`` per enabled backend (each under its own name, with its own Ray options) and hands them to the
router as a dict of handles; the job runner gets the same handles.
"""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve import Application

from deployments.backend import BackendDeployment
from orchestrator.jobs.worker import JobWorker
from orchestrator.serving.config import JOBS_NAME, ROUTER_NAME, AppArgs
from orchestrator.serving.router import Router


def build_app(args: AppArgs | dict[str, Any] | None = None) -> Application:
    """The whole application from ``args`` (a dict from YAML, or an ``AppArgs``)."""
    app_args = args if isinstance(args, AppArgs) else AppArgs.model_validate(args or {})
    options = app_args.deployments()
    handles = {
        name: serve.deployment(
            name=name,
            user_config={"default_options": dict(cfg.default_options)},
            **options[name].to_serve_options(),
        )(BackendDeployment).bind(cfg.spec(name))
        for name, cfg in app_args.enabled_backends().items()
    }
    jobs = None
    if app_args.jobs_enabled:
        jobs = serve.deployment(name=JOBS_NAME, **options[JOBS_NAME].to_serve_options())(JobWorker).bind(
            handles, app_args.jobs
        )
    router = serve.deployment(name=ROUTER_NAME, **options[ROUTER_NAME].to_serve_options())(serve.ingress()(Router))
    return router.bind(handles, app_args.router, jobs)
