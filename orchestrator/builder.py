"""``build_app(args)``: the typed application builder that ``serve run serve_config.yaml`` calls.

Validates first, then binds one ``BackendDeployment`` per enabled backend (each under its own name, with its
own Ray options) and hands them to the router as a dict of handles.
"""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve import Application

from deployments.backend import BackendDeployment
from orchestrator.config import AppArgs, BackendConfig, DeploymentOptions
from orchestrator.jobs import JobWorker
from orchestrator.router import Router

ROUTER_NAME = "router"
JOBS_NAME = "jobs"


def backend_deployment(name: str, config: BackendConfig) -> Application:
    """One backend as a bound Serve deployment, named after the backend."""
    deployment = serve.deployment(BackendDeployment).options(
        name=name,
        user_config={"default_options": dict(config.default_options)},
        **config.deployment.to_serve_options(),
    )
    return deployment.bind(config.spec(name))


def router_deployment(options: DeploymentOptions):
    """The router class wrapped as the HTTP ingress (its FastAPI app is built per replica)."""
    return serve.deployment(serve.ingress()(Router)).options(name=ROUTER_NAME, **options.to_serve_options())


def jobs_deployment(app_args: AppArgs, handles: dict[str, Application]) -> Application:
    """The job runner: one replica (job state lives in it, mirrored to disk), calling the same backends."""
    options = app_args.jobs_deployment.to_serve_options()
    return serve.deployment(JobWorker).options(name=JOBS_NAME, **options).bind(handles, app_args.jobs)


def build_app(args: AppArgs | dict[str, Any] | None = None) -> Application:
    """The whole application from ``args`` (a dict from YAML, or an ``AppArgs``)."""
    app_args = args if isinstance(args, AppArgs) else AppArgs.model_validate(args or {})
    handles = {name: backend_deployment(name, cfg) for name, cfg in app_args.enabled_backends().items()}
    jobs = jobs_deployment(app_args, handles) if app_args.jobs_enabled else None
    return router_deployment(app_args.router_deployment).bind(handles, app_args.router, jobs)
