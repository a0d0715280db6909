"""The session's Serve applications: each deployed once by name, each taken down once no later test needs it.

Why take them down: an idle replica still costs ~1.5 % of a core (health checks, metrics pushes, its event loop:
40 idle replicas of 10 small applications measured 69 % of a core against 10 % for Serve alone), and the suite
deploys dozens of replicas on a 2-core machine. Left up until the session ended, every module's application slowed
every test after it, the placement tests' own clusters included. So a module's application goes down at the
module's end (its fixture calls :meth:`Apps.retire`), a session application (one several modules share) after the
last collected test that uses it, and the session's Ray cluster after the last test that needs it at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

SESSION_APPS: dict[str, str] = {}
"""Session fixture -> the application it deploys; filled by :func:`retire_after_last_use`."""

CLUSTER_FIXTURE = "serve_url"
"""The session fixture that starts the session's Ray cluster and Serve."""

_sessions: list[Apps] = []
_retire_after: dict[str, list[str]] = {}  # test nodeid -> applications taken down once it is torn down
_cluster_ends_after: list[str] = []  # the nodeid of the last test that needs the cluster


def retire_after_last_use(fixture: str, app: str) -> None:
    """Declare that session fixture ``fixture`` deploys application ``app``, so it goes down after its last user."""
    SESSION_APPS[fixture] = app


class Apps:
    """``apps(name, args) -> base_url`` runs ``build_app(args)`` as application ``name`` at ``/name`` (once: a
    second call returns the same URL); ``apps.retire(name)`` deletes it."""

    def __init__(self, serve_url: str, jobs_dir: Path) -> None:
        self.serve_url = serve_url
        self.jobs_dir = jobs_dir
        self.deployed: dict[str, str] = {}
        _sessions.append(self)

    def __call__(self, name: str, args: dict[str, Any]) -> str:
        from ray import serve

        from orchestrator.builder import build_app

        if args.get("jobs_enabled", True):  # this session's own job store, unless the args say where
            args = {**args, "jobs": {"state_dir": str(self.jobs_dir / "{app}"), **args.get("jobs", {})}}
        if name not in self.deployed:
            serve.run(build_app(args), name=name, route_prefix=f"/{name}")
            self.deployed[name] = f"{self.serve_url}/{name}"
        return self.deployed[name]

    def retire(self, name: str) -> None:
        """Delete application ``name`` (Serve waits for its replicas to stop, so engines close what they started)
        and forget it: a later call deploys it afresh."""
        import ray
        from ray import serve

        if self.deployed.pop(name, None) is not None and ray.is_initialized():
            serve.delete(name)

    def close(self) -> None:
        """The cluster is going down: nothing is deployed any more."""
        self.deployed.clear()
        if self in _sessions:
            _sessions.remove(self)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Find the last test (in run order, after -k and friends) that uses each session application and the
    cluster."""
    last: dict[str, str] = {}
    cluster_last = None
    for item in session.items:
        names = getattr(item, "fixturenames", ())
        for fixture, app in SESSION_APPS.items():
            if fixture in names:
                last[app] = item.nodeid
        if CLUSTER_FIXTURE in names:
            cluster_last = item.nodeid
    _retire_after.clear()
    for app, nodeid in last.items():
        _retire_after.setdefault(nodeid, []).append(app)
    _cluster_ends_after[:] = [cluster_last] if cluster_last else []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None):
    """After the test's own teardown (its module's fixtures included, when the next test is elsewhere)."""
    yield
    for app in _retire_after.get(item.nodeid, ()):
        for apps in list(_sessions):
            apps.retire(app)
    if _cluster_ends_after == [item.nodeid] and nextitem is not None:  # at the very end pytest tears it down
        import ray
        from ray import serve

        for apps in list(_sessions):
            apps.close()
        if ray.is_initialized():
            serve.shutdown()
            ray.shutdown()
