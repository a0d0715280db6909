"""Scaling consumer replicas on the queue's length: Ray Serve's ``AsyncInferenceAutoscalingPolicy``, told where
the queue is.

Ray's policy reads the length of a Redis (or RabbitMQ) queue and asks for ``queue length / target_ongoing_requests``
replicas (with HTTP load added, none for a consumer). This subclass only resolves what the job settings leave to
run time: ``{app}`` in the queue's name (from the autoscaling context's application) and ``env:NAME`` in the store
URL (read in Serve's controller, which runs the policy). The builder installs it for the consumer deployment when
its ``autoscaling_config`` names no policy of its own (:func:`queue_policy`).
"""

from __future__ import annotations

from typing import Any

from ray.serve.async_inference_autoscaling_policy import AsyncInferenceAutoscalingPolicy

from orchestrator.jobs.settings import APP_PLACEHOLDER, JobSettings, safe_app_name


class QueueLengthPolicy(AsyncInferenceAutoscalingPolicy):
    """Ray's queue-length policy on the job queue of the application being scaled."""

    def __init__(self, store: str, queue_name: str, poll_interval_s: float) -> None:
        settings = JobSettings(store=store, queue_name=queue_name)
        super().__init__(broker_url=settings.store_url(), queue_name=queue_name, poll_interval_s=poll_interval_s)

    def __call__(self, ctx: Any) -> Any:
        if APP_PLACEHOLDER in self._queue_name:
            self._queue_name = self._queue_name.replace(APP_PLACEHOLDER, safe_app_name(ctx.app_name))
        return super().__call__(ctx)


def queue_policy(autoscaling_config: dict[str, Any], settings: JobSettings) -> dict[str, Any]:
    """``autoscaling_config`` with the queue-length policy, unless it names a policy of its own."""
    if "policy" in autoscaling_config:
        return autoscaling_config
    return {
        **autoscaling_config,
        "policy": {
            "policy_function": f"{__name__}:QueueLengthPolicy",
            "policy_kwargs": {
                "store": settings.store,
                "queue_name": settings.queue_name,
                "poll_interval_s": settings.queue_poll_s,
            },
        },
    }
