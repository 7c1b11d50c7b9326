"""The app code's import graph: no cycles, and no function-level import of the project's own modules
(the usual way to dodge a cycle)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APPS = ("reservemail", "tasks", "notifications", "preferences", "subscriptions", "series")


def _modules() -> dict[str, Path]:
    found = {}
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _targets(node: ast.Import | ast.ImportFrom, module: str, modules: dict[str, Path]) -> set[str]:
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            is_package = modules[module].name == "__init__.py"
            package = module.split(".") if is_package else module.split(".")[: -node.level]
            base = ".".join([*package, base] if base else package)
        # ``from package import module`` depends on that module; ``from module import name`` on the module.
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
    hits = set()
    for name in names:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name and name != module:
            hits.add(name)
    return hits


def _graph() -> tuple[dict[str, set[str]], list[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    nested: list[str] = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        edges: set[str] = set()
        for node in tree.body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                edges |= _targets(node, module, modules)
            elif isinstance(node, ast.If):  # TYPE_CHECKING blocks and the like still count
                for inner in ast.walk(node):
                    if isinstance(inner, ast.Import | ast.ImportFrom):
                        edges |= _targets(inner, module, modules)
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for inner in ast.walk(node):
                    if isinstance(inner, ast.Import | ast.ImportFrom) and _targets(inner, module, modules):
                        nested.append(f"{module}.{node.name}")
        graph[module] = edges
    return graph, nested


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_app_code_has_no_import_cycles():
    graph, _ = _graph()
    assert "tasks.delivery.run" in graph and "tasks.transitions" in graph
    assert _cycles(graph) == []


def test_no_function_level_import_of_project_modules():
    _, nested = _graph()
    assert nested == []


def test_the_cycle_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_scheduler_is_a_pure_adapter():
    """tasks.scheduler imports neither models nor services nor the delivery pipeline."""
    graph, _ = _graph()
    inside = {m for m in graph if m.startswith("tasks.scheduler")}
    outside = {t for m in inside for t in graph[m]} - inside
    assert outside == set(), outside


def test_only_transitions_writes_task_status():
    """No other app module passes ``status=`` to an update() or assigns ``.status`` on a Task."""
    offenders = []
    for module, path in _modules().items():
        if module == "tasks.transitions" or module.startswith("tasks.transitions."):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            update = isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "update"
            if update and any(k.arg == "status" for k in node.keywords) and "Delivery" not in ast.unparse(node.func):
                offenders.append(f"{module}:{node.lineno}")
    assert offenders == []
