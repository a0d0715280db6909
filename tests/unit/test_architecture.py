"""The house rules, checked on the source: layers import only downward, engines stay free of Ray and web
frameworks, the orchestrator's subpackages keep to their jobs, and no two modules import each other in a circle.

Imports are read with ``ast`` (function-local imports count; ``if TYPE_CHECKING:`` blocks do not, since they never
run), so a violation fails here even when no test happens to execute the offending line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from backends.registry import ENGINES

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("shared", "backends", "deployments", "orchestrator")
LAYER = {name: i for i, name in enumerate(PACKAGES)}
"""shared <- backends <- deployments <- orchestrator: each may import only its own layer and those before it."""

FORBIDDEN_LIBRARIES: dict[str, tuple[str, ...]] = {
    "shared": ("ray", "torch", "vllm", "transformers", "mineru", "rapidocr", "onnxruntime", "fastapi", "starlette"),
    "backends": ("ray", "fastapi", "starlette"),
}
"""shared is pure (no Ray, no models, no web framework); engines never import Ray or a web framework."""

ORCHESTRATOR_MAY_IMPORT: dict[str, set[str]] = {
    "serving": {"serving", "jobs"},
    "jobs": {"jobs"},
    "client": {"client"},
    "evaluation": {"evaluation", "client"},
    "ops": {"ops", "serving", "jobs", "client", "evaluation"},
}
"""Which orchestrator subpackages each one may import (the serving side never reaches the client or the tools)."""


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path, module: str) -> set[str]:
    """Every module ``path`` imports (absolute names), outside ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's package, up level - 1 more
                package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                base = package[: len(package) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            found.add(prefix)
            found.update(f"{prefix}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


MODULES = _modules()
IMPORTS = {name: _imports(path, name) for name, path in MODULES.items()}


def _internal(name: str) -> str | None:
    """The project module ``name`` refers to (a module, or the module holding the imported name)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def test_layers_import_only_downward():
    problems = []
    for module, imported in IMPORTS.items():
        layer = LAYER[module.split(".")[0]]
        for name in imported:
            top = name.split(".")[0]
            if top in LAYER and LAYER[top] > layer:
                problems.append(f"{module} imports {name} (a layer above)")
    assert not problems, "\n".join(sorted(problems))


@pytest.mark.parametrize("package", sorted(FORBIDDEN_LIBRARIES))
def test_pure_layers_import_no_forbidden_library(package):
    banned = FORBIDDEN_LIBRARIES[package]
    problems = [
        f"{module} imports {name}"
        for module, imported in IMPORTS.items()
        if module.split(".")[0] == package
        for name in imported
        if name.split(".")[0] in banned
    ]
    assert not problems, "\n".join(sorted(problems))


def test_orchestrator_subpackages_keep_to_their_jobs():
    problems = []
    for module, imported in IMPORTS.items():
        parts = module.split(".")
        if parts[0] != "orchestrator" or len(parts) < 2 or parts[1] not in ORCHESTRATOR_MAY_IMPORT:
            continue
        allowed = ORCHESTRATOR_MAY_IMPORT[parts[1]]
        for name in imported:
            target = name.split(".")
            if target[0] == "orchestrator" and len(target) > 1 and target[1] in ORCHESTRATOR_MAY_IMPORT:
                if target[1] not in allowed:
                    problems.append(f"{module} imports {name}")
    assert not problems, "\n".join(sorted(problems))


def test_client_runs_without_ray():
    client = {m: i for m, i in IMPORTS.items() if m.startswith("orchestrator.client")}
    assert client, "orchestrator.client not found"
    assert not [f"{m} imports {n}" for m, i in client.items() for n in i if n.split(".")[0] in ("ray", "fastapi")]


def test_no_import_cycles():
    graph = {m: {t for n in imported if (t := _internal(n)) and t != m} for m, imported in IMPORTS.items()}
    # a package's __init__ importing its own submodules is how packages re-export; not a cycle of design
    graph = {m: {t for t in targets if not m.startswith(t + ".")} for m, targets in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def dfs(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                dfs(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            dfs(module)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_the_checker_sees_real_imports():
    """Guard against a checker that passes because it reads nothing."""
    assert "shared.schema" in IMPORTS["shared.errors"] or "shared.schema.ErrorCode" in IMPORTS["shared.errors"]
    assert "ray" in IMPORTS["orchestrator.serving.application"]
    assert len(MODULES) > 50


ENGINE_KINDS = tuple(ENGINES)
"""The registered engine kinds (``backends.registry.ENGINES``), each a package under ``backends/``."""
KNOWS_ENGINES: dict[str, str] = {
    "orchestrator.serving.config": "the default application's configuration names the engine kinds it deploys",
}
"""Orchestrator modules allowed to name an engine, and why; every other one knows engines only through the typed
capabilities they publish (``shared.schema.Capabilities``) and ``backends.registry``."""


def test_every_registered_engine_is_a_package_of_its_own():
    assert ENGINE_KINDS
    assert all((REPO / "backends" / kind).is_dir() for kind in ENGINE_KINDS)


def test_no_orchestrator_module_imports_an_engine_package():
    problems = [
        f"{module} imports {name}"
        for module, imported in IMPORTS.items()
        if module.startswith("orchestrator.") and module not in KNOWS_ENGINES
        for name in imported
        if name.split(".")[:2] in (["backends", kind] for kind in ENGINE_KINDS)
    ]
    assert not problems, "\n".join(sorted(problems))


def _code_strings(path: Path) -> list[tuple[int, str]]:
    """String constants and names in ``path``'s code (docstrings left out: prose may name what it talks about)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            out.append((node.lineno, node.value))
        elif isinstance(node, ast.Name | ast.Attribute):
            out.append((node.lineno, node.id if isinstance(node, ast.Name) else node.attr))
    return out


def test_the_serving_code_names_no_engine():
    """The router works from capabilities: a new engine that extracts, counts tokens or has modes needs no edit
    under orchestrator/serving (its summaries and error texts included)."""
    problems = [
        f"{module}:{line}: {text[:80]!r}"
        for module, path in MODULES.items()
        if module.startswith("orchestrator.serving") and module not in KNOWS_ENGINES
        for line, text in _code_strings(path)
        if any(kind in text.lower().replace("-", "") for kind in ENGINE_KINDS)
    ]
    assert not problems, "\n".join(sorted(problems))


MAX_SERVING_CLASS_LINES = 200


def test_no_class_in_the_serving_package_outgrows_one_job():
    """The router is a thin ingress over a backend directory and one service per endpoint: a class that grows past
    this is taking on a second endpoint's work (split it, as ``services/`` does)."""
    problems = []
    for module, path in MODULES.items():
        if not module.startswith("orchestrator.serving"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > MAX_SERVING_CLASS_LINES:
                problems.append(f"{module}.{node.name}: {node.end_lineno - node.lineno + 1} lines")
    assert not problems, "\n".join(problems)
