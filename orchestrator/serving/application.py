"""``build_app(args)``: the typed application builder that ``serve run serve_config.yaml`` calls.

Validates first (every backend's engine settings included, see :mod:`orchestrator.serving.config`), then binds one
``BackendDeployment`` per enabled backend (each under its own name, with its own Ray options) and hands them to the
router as a dict of handles. With the job API on, the job consumer (:class:`~orchestrator.jobs.consumer.JobConsumer`)
becomes a ``@task_consumer`` deployment with the same handles, scaled on the queue's length when it autoscales.
"""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve import Application
from ray.serve.task_consumer import task_consumer

from deployments.backend import BackendDeployment
from orchestrator.jobs.autoscaling import queue_policy
from orchestrator.jobs.consumer import JobConsumer
from orchestrator.jobs.queue import processor_config
from orchestrator.jobs.settings import JobSettings
from orchestrator.serving.config import JOBS_NAME, ROUTER_NAME, AppArgs, DeploymentOptions
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
    consumer = None
    if app_args.jobs_enabled:
        consumer = job_consumer(options[JOBS_NAME], app_args.jobs).bind(handles, app_args.jobs)
    router = serve.deployment(name=ROUTER_NAME, **options[ROUTER_NAME].to_serve_options())(serve.ingress()(Router))
    return router.bind(handles, app_args.router, app_args.jobs if app_args.jobs_enabled else None, consumer)


def job_consumer(options: DeploymentOptions, settings: JobSettings) -> Any:
    """The job consumer deployment: :class:`JobConsumer` as a task consumer of the job queue."""
    serve_options = options.to_serve_options()
    if options.autoscaling_config:
        serve_options["autoscaling_config"] = queue_policy(options.autoscaling_config, settings)
    consumer = task_consumer(task_processor_config=processor_config(settings))(JobConsumer)
    return serve.deployment(name=JOBS_NAME, **serve_options)(consumer)
