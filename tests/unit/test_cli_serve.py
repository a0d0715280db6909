"""``ocrserve serve`` around its demo, without Ray: a failing demo is one line and the service keeps serving; the demo
sends the configured API key. The real start, secured, over HTTP: tests/e2e/test_operated.py."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from orchestrator.client import ServiceError
from orchestrator.ops import cli, local
from shared.schema import ErrorResponse


@pytest.fixture
def started(monkeypatch) -> Iterator[list[str]]:
    """``local.start``/``local.stop`` replaced: what the command started and stopped, in order. (``serve`` sets a
    SIGTERM handler; this process gets its own back.)"""
    events: list[str] = []
    monkeypatch.setattr(local, "start", lambda cfg, **kw: events.append("start") or "http://127.0.0.1:1")
    monkeypatch.setattr(local, "stop", lambda: events.append("stop"))
    handler = signal.getsignal(signal.SIGTERM)
    yield events
    signal.signal(signal.SIGTERM, handler)


def _unauthorized(url: str, out: Path, *, api_key: str | None = None) -> None:
    error = ErrorResponse.model_validate({"error": {"code": "unauthorized", "message": "missing x-api-key"}})
    raise ServiceError(401, error)


def test_a_failed_demo_is_one_line_and_once_exits_1(started, monkeypatch):
    monkeypatch.setattr(cli, "_demo", _unauthorized)
    result = CliRunner().invoke(cli.app, ["serve", "--once"])
    assert result.exit_code == 1, result.output
    failed = [line for line in result.output.splitlines() if "demo failed" in line]
    assert len(failed) == 1 and "401 unauthorized" in failed[0]
    assert "Traceback" not in result.output and started == ["start", "stop"]


def test_a_failed_demo_leaves_the_service_serving(started, monkeypatch):
    def interrupt(seconds: float) -> None:
        started.append("serving")
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_demo", lambda *a, **k: 1 / 0)
    monkeypatch.setattr(cli.time, "sleep", interrupt)
    result = CliRunner().invoke(cli.app, ["serve"])
    assert result.exit_code == 0, result.output
    assert "demo failed: ZeroDivisionError" in result.output and "Press Ctrl-C to stop." in result.output
    assert started == ["start", "serving", "stop"]  # served on after the failure, stopped only when asked


def test_a_passing_demo_with_once_exits_0(started, monkeypatch):
    monkeypatch.setattr(cli, "_demo", lambda *a, **k: None)
    result = CliRunner().invoke(cli.app, ["serve", "--once"])
    assert result.exit_code == 0 and "demo failed" not in result.output and started == ["start", "stop"]


def test_the_demo_sends_the_configs_key_else_the_environments(tmp_path, monkeypatch):
    raw = yaml.safe_load(local.profile_path("cpu").read_text())
    monkeypatch.setenv(cli.API_KEY_VAR, "from-env")
    assert cli._demo_target(local.load_config(local.profile_path("cpu")), "http://h:1") == ("http://h:1", "from-env")
    raw["applications"][0]["args"]["router"]["api_key"] = "s3cret"
    raw["applications"][0]["route_prefix"] = "/ocr"
    path = tmp_path / "secured.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert cli._demo_target(local.load_config(path), "http://h:1") == ("http://h:1/ocr", "s3cret")
