"""The backend directory: which backends are deployed, how each is doing, what each can do, and which one a request
goes to (the ``auto`` rule). Every service asks it; nothing else holds backend handles."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from deployments.backend import with_process_transport
from orchestrator.serving.config import RouterSettings
from orchestrator.serving.selection import AUTO, auto_candidates, choose_backend
from shared.errors import OCRError
from shared.schema import BackendStatus, Capabilities, ErrorCode

logger = logging.getLogger("ray.serve")

DESCRIBE_TIMEOUT_S = 5.0
REPLICAS_TTL_S = 5.0
"""How long replica counts from Serve's controller are reused (they feed ``BackendStatus.replicas``)."""


class BackendDirectory:
    """Backend handles by name (from config), their statuses (asked of all at once, reused for a while), and the
    choice of a backend for a request."""

    def __init__(self, backends: Mapping[str, Any], settings: RouterSettings) -> None:
        self.backends = {name: with_process_transport(h) for name, h in backends.items()}  # gRPC where configured
        self.settings = settings
        self._statuses: dict[str, BackendStatus] = {}
        self._statuses_at = 0.0
        self._replica_counts: dict[str, int] = {}
        self._replicas_at = float("-inf")

    def handle(self, name: str) -> Any:
        """The deployment handle of backend ``name`` (a name :meth:`resolve` or :meth:`require` accepted)."""
        return self.backends[name]

    def require(self, name: str) -> str:
        """``name``, when such a backend is deployed.

        Raises:
            OCRError: ``unknown_backend``, listing the deployed ones.
        """
        if name not in self.backends:
            raise OCRError(
                ErrorCode.UNKNOWN_BACKEND, f"no backend named {name!r} is deployed", accepted=sorted(self.backends)
            )
        return name

    def timeout_s(self, asked: float | None) -> float:
        """The request's own time limit, or the default, capped by the server's maximum."""
        return min(asked or self.settings.request_timeout_s, self.settings.max_request_timeout_s)

    async def statuses(self, *, max_age_s: float | None = None) -> dict[str, BackendStatus]:
        """Every backend's health, asked of all at once and reused for ``status_ttl_s``."""
        ttl = self.settings.status_ttl_s if max_age_s is None else max_age_s
        if self._statuses and time.monotonic() - self._statuses_at <= ttl:
            return self._statuses
        names = list(self.backends)
        answers, replicas = await asyncio.gather(asyncio.gather(*(self._describe(n) for n in names)), self._replicas())
        for status in answers:
            status.replicas = replicas.get(status.name)
        self._statuses = dict(zip(names, answers))
        self._statuses_at = time.monotonic()
        return self._statuses

    def forget_statuses(self) -> None:
        """Ask every backend again next time (one just failed under a request)."""
        self._statuses_at = 0.0

    async def _replicas(self) -> dict[str, int]:
        """Running replicas per backend, from Serve's controller (``serve.status()``), reused for
        ``REPLICAS_TTL_S`` so that a router asking for health on every ``auto`` request does not ask the controller
        as often; {} outside Serve or when the controller does not answer in time (``replicas`` then stays null)."""
        if time.monotonic() - self._replicas_at > REPLICAS_TTL_S:
            try:
                self._replica_counts = await asyncio.wait_for(
                    asyncio.to_thread(running_replicas, list(self.backends)), DESCRIBE_TIMEOUT_S
                )
            except Exception as e:  # not in a Serve replica (tests with fake handles), or the controller is busy
                logger.debug("replica counts unavailable: %s", e)
                self._replica_counts = {}
            self._replicas_at = time.monotonic()
        return self._replica_counts

    async def _describe(self, name: str) -> BackendStatus:
        try:
            return await asyncio.wait_for(self.backends[name].describe.remote(), DESCRIBE_TIMEOUT_S)
        except asyncio.TimeoutError:
            return BackendStatus(name=name, engine="?", status="unavailable", detail="no health answer in time")
        except Exception as e:  # replica starting, dead or unreachable
            return BackendStatus(name=name, engine="?", status="unavailable", detail=f"{type(e).__name__}: {e}"[:300])

    def auto_rule(self) -> list[str]:
        """The deployed backends in the order ``auto`` tries them."""
        return auto_candidates(list(self.backends), self.settings.auto_order)

    async def resolve(self, requested: str, media_type: str, exclude: list[str]) -> str:
        """The backend a request naming ``requested`` (a name or ``auto``) goes to."""
        statuses = await self.statuses() if requested == AUTO else {}
        return choose_backend(
            requested,
            deployed=list(self.backends),
            statuses=statuses,
            media_type=media_type,
            auto_order=self.settings.auto_order,
            exclude=exclude,
        )

    def metric_mode(self, name: str, options: dict[str, Any]) -> str:
        """The latency metric's ``mode`` label: the request's value of the backend's mode/tier option, as its last
        known status declares it (``default`` before it answered one)."""
        values = [options.get(o) for o in capabilities_of(self._statuses.get(name)).metric_options]
        return str(next((v for v in values if v), "default"))


def capabilities_of(status: BackendStatus | None) -> Capabilities:
    """What a backend declared it can do (nothing when it has not answered)."""
    return status.capabilities if status is not None and status.capabilities is not None else Capabilities()


def running_replicas(names: list[str]) -> dict[str, int]:
    """Replicas in the RUNNING state of each named deployment of this router's own application.

    Blocking (it asks Serve's controller): call it in a thread. Raises outside a Serve replica.
    """
    from ray import serve

    app = serve.get_replica_context().app_name
    application = serve.status().applications.get(app)
    if application is None:
        return {}
    out: dict[str, int] = {}
    for name in names:
        deployment = application.deployments.get(name)
        if deployment is not None:
            out[name] = sum(n for state, n in deployment.replica_states.items() if str(state).endswith("RUNNING"))
    return out
