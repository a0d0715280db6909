"""The suite's skip policy, run for real: a tiny test tree in a pytest subprocess, with and without ``CI=true``."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.skip_policy import ALLOWED_SKIP_REASONS, NEEDS_CUDA, in_ci

REPO = Path(__file__).resolve().parents[2]

TESTS = {
    "test_runtime.py": f"""
        import pytest
        from tests.support.skip_policy import NEEDS_CUDA

        def test_passes():
            pass

        def test_on_a_gpu_box_only():
            pytest.skip(NEEDS_CUDA)

        def test_needs_something_missing():
            pytest.skip("vllm is not installed")

        def test_reason_that_merely_starts_like_an_allowed_one():
            pytest.skip({NEEDS_CUDA!r} + " and weights nobody installed")

        @pytest.mark.skipif(True, reason="chromium is missing")
        def test_marked_skip():
            pass
        """,
    "test_collection.py": """
        import pytest

        pytest.importorskip("no_such_module_for_the_skip_policy_test")

        def test_never_runs():
            pass
        """,
}


def run_pytest(tmp_path: Path, ci: str | None, *paths: str) -> subprocess.CompletedProcess[str]:
    for name, source in TESTS.items():
        (tmp_path / name).write_text(textwrap.dedent(source))
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = str(REPO)
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.support.skip_policy", "-p", "no:cacheprovider", "-rA", *paths],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def outcomes(output: str) -> dict[str, str]:
    """``{test name: PASSED|SKIPPED|FAILED|ERROR}`` from ``-rA``'s short summary."""
    found: dict[str, str] = {}
    for line in output.splitlines():
        word, _, rest = line.partition(" ")
        if word in {"PASSED", "FAILED", "ERROR"} and "::" in rest:
            found[rest.split("::")[1].split(" ")[0]] = word
        elif word == "SKIPPED":  # "SKIPPED [1] test_runtime.py:9: reason"
            found[rest.split(": ", 1)[1]] = word
    return found


def test_under_ci_only_the_allowed_reason_may_skip(tmp_path):
    run = run_pytest(tmp_path, "true", "test_runtime.py")
    seen = outcomes(run.stdout)
    assert run.returncode == 1, run.stdout
    assert seen["test_passes"] == "PASSED" and seen[NEEDS_CUDA] == "SKIPPED"
    assert seen["test_needs_something_missing"] == "FAILED"
    assert seen["test_reason_that_merely_starts_like_an_allowed_one"] == "FAILED"  # exact reasons only
    assert seen["test_marked_skip"] == "ERROR"  # a skipif mark skips in setup: it fails there
    assert "'vllm is not installed'" in run.stdout and "tests/support/skip_policy.py" in run.stdout


def test_under_ci_a_module_skipped_at_import_stops_the_run(tmp_path):
    run = run_pytest(tmp_path, "true", ".")
    assert run.returncode == 2, run.stdout  # interrupted: collection errors, before any test ran
    assert "ERROR test_collection.py" in run.stdout and "no_such_module_for_the_skip_policy_test" in run.stdout
    assert "PASSED" not in run.stdout


@pytest.mark.parametrize("ci", [None, "false", "0"])
def test_outside_ci_skips_stay_skips_and_say_why(tmp_path, ci):
    run = run_pytest(tmp_path, ci, ".")
    assert run.returncode == 0, run.stdout
    assert "1 passed, 5 skipped" in run.stdout and "vllm is not installed" in run.stdout


def test_the_allow_list_is_short_and_ci_is_read_from_the_environment():
    assert ALLOWED_SKIP_REASONS == {NEEDS_CUDA}  # adding a reason is a decision: change this test with it
    assert in_ci({"CI": "true"}) and in_ci({"CI": "1"}) and in_ci({"CI": " True "})
    assert not in_ci({}) and not in_ci({"CI": "false"}) and not in_ci({"CI": ""})
