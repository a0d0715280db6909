"""What ``scripts/bootstrap.sh`` decides about vLLM's CPU build, run for real with ``--plan`` (installs nothing).

The platform is faked by an ``uname`` put first on ``PATH``, so every case runs the same on any machine.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TEST_EXTRAS = "deepseek,mineru,test"  # what scripts/test.sh asks for


def plan(tmp_path: Path, *, extras: str = TEST_EXTRAS, platform=("Linux", "x86_64"), **env: str):
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    uname = fake / "uname"
    uname.write_text(f'#!/bin/sh\ncase "$1" in -s) echo {platform[0]} ;; -m) echo {platform[1]} ;; esac\n')
    uname.chmod(0o755)
    base = {k: v for k, v in os.environ.items() if k not in ("CI", "OCRSERVE_VLLM_CPU")}
    return subprocess.run(
        ["bash", str(REPO / "scripts" / "bootstrap.sh"), "--plan", extras],
        env={**base, "PATH": f"{fake}:{base['PATH']}", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("ci", ["true", None])
def test_linux_x86_64_installs_vllm_for_the_tests(tmp_path, ci):
    run = plan(tmp_path, **({"CI": ci} if ci else {}))
    assert run.returncode == 0 and run.stdout.strip() == f"extras={TEST_EXTRAS} with_vllm=1", run.stderr


def test_an_unsupported_platform_fails_loudly_under_ci_and_skips_with_a_reason_elsewhere(tmp_path):
    ci = plan(tmp_path, platform=("Darwin", "arm64"), CI="true")
    assert ci.returncode == 1 and "Linux x86_64 only" in ci.stderr and "Darwin-arm64" in ci.stderr
    assert "with_vllm" not in ci.stdout
    local = plan(tmp_path, platform=("Darwin", "arm64"))
    assert local.returncode == 0 and local.stdout.strip().endswith("with_vllm=0")
    assert "will skip" in local.stderr


def test_leaving_vllm_out_is_refused_under_ci_only(tmp_path):
    ci = plan(tmp_path, CI="true", OCRSERVE_VLLM_CPU="0")
    assert ci.returncode == 1 and "OCRSERVE_VLLM_CPU=0 under CI=true" in ci.stderr
    local = plan(tmp_path, OCRSERVE_VLLM_CPU="0")
    assert local.returncode == 0 and local.stdout.strip().endswith("with_vllm=0")


def test_serving_extras_never_want_vllm_even_under_ci(tmp_path):
    run = plan(tmp_path, extras="mineru", platform=("Darwin", "arm64"), CI="true")
    assert run.returncode == 0 and run.stdout.strip() == "extras=mineru with_vllm=0", run.stderr
