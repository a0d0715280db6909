"""``benchmarks/gpu_smoke.py`` on a CPU, the way the GPU machine runs it: from the repository as its docstring
says, with no Ray, no vLLM and no pydantic importable (that machine has torch and transformers, not this project's
other dependencies), printing one JSON report whose checks all pass.

Figures (seconds per page, memory) are only checked to be there: speed is measured by the script, never asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_smoke.py"
ABSENT_ON_THE_GPU_MACHINE = ("ray", "vllm", "mistral_common", "pydantic", "pydantic_core", "mineru", "fastapi")

LAUNCH = """
import runpy, sys
for name in {absent!r}:
    sys.modules[name] = None  # import fails and importlib.util.find_spec says None, as where it is not installed
sys.argv = [{script!r}, "--device", "cpu", "--repeats", "1", "--work-dir", {work!r}]
runpy.run_path({script!r}, run_name="__main__")
"""

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("gpu-smoke")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the script finds its own tree
    code = LAUNCH.format(absent=ABSENT_ON_THE_GPU_MACHINE, script=str(SCRIPT), work=str(work))
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True, timeout=1200
    )
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, f"expected one JSON line on stdout, got {result.stdout[-2000:]!r}\n{result.stderr[-3000:]}"
    parsed = json.loads(lines[0])
    parsed["_returncode"] = result.returncode
    return parsed


def test_the_smoke_run_passes_and_exits_zero(report):
    failed = {name: check for name, check in report["checks"].items() if not check.get("ok")}
    assert not failed, json.dumps(failed)[:3000]
    assert report["ok"] is True and report["_returncode"] == 0
    assert report["environment"]["device"] == "cpu" and report["environment"]["torch"]


def test_both_checkpoints_and_every_attention_ran_in_bfloat16(report):
    checkpoints = report["checks"]["checkpoints"]
    assert checkpoints["dense"]["mlp_layer_types"] == ["dense", "dense"]
    assert "sparse" in checkpoints["moe"]["mlp_layer_types"]
    runs = report["checks"]["attention"]["runs"]
    assert set(runs) == {f"{c}/{a}" for c in ("dense", "moe") for a in ("auto", "sdpa", "eager")}
    assert runs["moe/eager"]["decoder"] == "eager" and runs["dense/auto"]["decoder"] == "sdpa"  # no flash on a CPU
    assert report["checks"]["attention"]["flash_attn"]["ran"] is False
    for key, row in report["checks"]["bf16"]["runs"].items():
        assert row["parameters"] == ["torch.bfloat16"], key
        assert {"vision", "decoder_layer_0", "decoder_layer_1", "logits"} <= set(row["activations"]), key


def test_batching_guard_and_budget(report):
    equivalence = report["checks"]["batch_equivalence"]
    for name in ("dense", "moe"):
        row = equivalence[name]
        assert row["padded"] and row["alone"] == row["in_batch"] and row["first_logits_max_abs_diff"] < 1e-3
    guard = report["checks"]["ngram_guard"]
    assert guard["device_logits_ok"] and not any(guard["repeats_with_guard"]) and all(guard["repeats_without_guard"])
    budget = report["checks"]["max_new_tokens"]
    assert budget["budget"] == 5 and all(page["output_tokens"] <= 5 for page in budget["pages"])


def test_figures_are_reported(report):
    figures = report["figures"]
    assert figures["seconds_per_page"] > 0 and figures["peak_rss_mb"] > 0 and figures["pages_per_batch"] == 4
