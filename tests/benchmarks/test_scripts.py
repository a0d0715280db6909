"""Every benchmark runs as its docstring says, ``.venv/bin/python benchmarks/NAME.py ...`` from the repository's root.

The scripts are found, not listed: a new one in ``benchmarks/`` is covered without a line here. Each must declare
``SMALLEST_RUN`` — the arguments (one string) of a run that only proves the script works, about a minute on a CPU, or
``None`` where no such run exists (say why beside it). Each runs as a user runs it, in a fresh interpreter whose
``sys.path[0]`` is ``benchmarks/``, with ``tests`` unimportable (as in a fresh clone, where it is not on the path):
``--help`` must answer, the smallest run must exit 0 (here, or in the module :data:`RUN_ELSEWHERE` names). No source
of ``benchmarks/`` may name ``tests`` at all, in an import or an engine's import path; what benchmarks share with the
tests lives in ``benchmarks/support/``.
"""

from __future__ import annotations

import ast
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.private_ray import private_ray_env

REPO = Path(__file__).resolve().parents[2]
BENCHMARKS = REPO / "benchmarks"
SCRIPTS = sorted(p for p in BENCHMARKS.glob("*.py") if not p.name.startswith("_"))

RUN_ELSEWHERE: dict[str, str] = {
    "gpu_smoke.py": "tests/benchmarks/test_gpu_smoke.py",
}
"""Scripts whose smallest run another test module already makes, with more checks (and the module's file): running it
here as well cost ~80 s of suite time on the CI machine for no case."""

PENDING: dict[str, str] = {}
"""Scripts known to reach into ``tests`` still, and why: strict xfail, so the day one is fixed the entry must go."""

RUNNER = """
import os, runpy, sys

class NoTests:
    def find_spec(self, name, path=None, target=None):
        if name == "tests" or name.startswith("tests."):
            raise ModuleNotFoundError(f"No module named {name!r} (a benchmark must not import the tests)", name=name)

sys.meta_path.insert(0, NoTests())
script = os.path.abspath(sys.argv[1])
sys.argv = sys.argv[1:]
sys.path[0] = os.path.dirname(script)
runpy.run_path(script, run_name="__main__")
"""
"""``python SCRIPT ARGS...`` with ``tests`` refused, whatever the environment's ``PYTHONPATH`` says."""


def _ids(paths: list[Path]) -> list[str]:
    return [p.relative_to(BENCHMARKS).as_posix() for p in paths]


def _pending(paths: list[Path]) -> list:
    """``paths`` as parameters, those in :data:`PENDING` marked strict xfail."""
    return [
        pytest.param(p, id=name, marks=pytest.mark.xfail(strict=True, reason=PENDING[name]))
        if name in PENDING
        else pytest.param(p, id=name)
        for p, name in zip(paths, _ids(paths))
    ]


def smallest_run(script: Path) -> list[str] | None:
    """The script's ``SMALLEST_RUN``, split into arguments (None when it declares that it has none)."""
    for node in ast.parse(script.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "SMALLEST_RUN" for t in node.targets):
            value = ast.literal_eval(node.value)
            assert value is None or isinstance(value, str), f"{script.name}: SMALLEST_RUN must be a string or None"
            return None if value is None else shlex.split(value)
    raise AssertionError(f"{script.name} declares no SMALLEST_RUN (a string of arguments, or None and why)")


def run(script: Path, args: list[str], *, timeout_s: float) -> subprocess.CompletedProcess[str]:
    """``script`` with ``args`` from the repository's root, on a private Ray temp dir and auth token."""
    with private_ray_env("bm") as env:
        env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        return subprocess.run(
            [sys.executable, "-c", RUNNER, str(script), *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )


def test_the_benchmarks_are_found():
    """Guard against a test that passes because it finds nothing."""
    assert {"service_overhead.py", "load.py", "load_mixed.py", "rapidocr_layout.py"} <= set(_ids(SCRIPTS))


@pytest.mark.parametrize("script", _pending(sorted(BENCHMARKS.rglob("*.py"))))
def test_no_benchmark_names_the_tests(script):
    problems = []
    for node in ast.walk(ast.parse(script.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names = [node.value] if re.match(r"tests[.:]\w", node.value) else []  # "tests.x:Engine" in a config
        else:
            continue
        problems += [f"line {node.lineno}: {n}" for n in names if n == "tests" or re.match(r"tests[.:]", n)]
    assert not problems, f"{script.relative_to(REPO)} names the tests:\n" + "\n".join(problems)


@pytest.mark.parametrize("script", SCRIPTS, ids=_ids(SCRIPTS))
def test_every_benchmark_declares_its_smallest_run(script):
    smallest_run(script)


@pytest.mark.parametrize("script", SCRIPTS, ids=_ids(SCRIPTS))
def test_help(script):
    done = run(script, ["--help"], timeout_s=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("usage:"), done.stdout[:500]


def _with_runs() -> list:
    out = []
    for param in _pending(SCRIPTS):
        script = param.values[0]
        try:
            args = smallest_run(script)
        except AssertionError:
            continue  # test_every_benchmark_declares_its_smallest_run says so
        if args is not None and script.name not in RUN_ELSEWHERE:
            out.append(pytest.param(script, args, id=script.name, marks=param.marks))
    return out


@pytest.mark.parametrize("name,module", sorted(RUN_ELSEWHERE.items()))
def test_a_smallest_run_made_elsewhere_is_made_there(name, module):
    """The module named runs the script with the same arguments: its SMALLEST_RUN, word for word."""
    args = smallest_run(BENCHMARKS / name)
    source = (REPO / module).read_text(encoding="utf-8")
    assert args and name in source, module
    assert all(f'"{a}"' in source for a in args), (name, args, module)


@pytest.mark.slow
@pytest.mark.parametrize("script,args", _with_runs())
def test_smallest_run(script, args):
    done = run(script, args, timeout_s=600)  # a hang guard: these take about a minute
    assert done.returncode == 0, f"rc {done.returncode}\nstdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-4000:]}"
