"""The layers: no import cycle between modules or apps, and the audit app on the ground floor imports no app.

An AST pass over every non-test module; an import anywhere in a file counts (inside a function too),
because a cycle through a deferred import is still a cycle in the design.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Every top-level package of the project (a new app is checked as soon as it exists), not the tests.
PACKAGES = tuple(
    sorted(
        path.parent.name
        for path in ROOT.glob("*/__init__.py")
        if path.parent.name not in ("tests", "bench") and not path.parent.name.startswith(".")
    )
)
APPS = tuple(package for package in PACKAGES if (ROOT / package / "apps.py").exists())


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def project_modules() -> dict[str, Path]:
    """Return every project module (tests, migrations and the virtualenv left out) by dotted name."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                modules[_module_name(path)] = path
    return modules


def _resolve(name: str) -> str | None:
    """Return the project module an imported name lives in (a.b.c → a.b when c is a name in a.b)."""
    modules = project_modules()
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


@cache
def imports_of(module: str) -> frozenset[str]:
    """Return the project modules a module imports, wherever in the file the import is."""
    path = project_modules()[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            names = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(target for name in names if (target := _resolve(name)) and target != module)
    return frozenset(found)


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Return the cycles of a graph: its strongly connected components of more than one node (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def module_graph() -> dict[str, set[str]]:
    return {module: set(imports_of(module)) for module in project_modules()}


def app_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {app: set() for app in APPS}
    for module, targets in module_graph().items():
        source = module.split(".")[0]
        if source in graph:
            graph[source] |= {target.split(".")[0] for target in targets} & set(APPS) - {source}
    return graph


def _describe(cycles: list[list[str]], graph: dict[str, set[str]]) -> str:
    lines = []
    for cycle in cycles:
        members = set(cycle)
        edges = [f"{source} -> {target}" for source in cycle for target in sorted(graph[source] & members)]
        lines.append(f"{len(cycle)} in a cycle: " + "; ".join(edges))
    return "\n".join(lines)


def test_the_checker_finds_a_cycle_and_resolves_names_to_modules():
    assert {"audit", "records", "rotation", "accounts", "api", "scripts"} <= set(
        APPS
    ) and "pamrotate" in PACKAGES
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []
    assert _resolve("audit.models.AuditEvent") == "audit.models"
    assert "audit.models" in imports_of("audit.events")


def test_no_module_level_import_cycle():
    graph = module_graph()
    cycles = strongly_connected(graph)
    print(f"module-level import cycles: {len(cycles)}\n{_describe(cycles, graph)}")
    assert cycles == [], _describe(cycles, graph)


def test_no_app_level_import_cycle():
    graph = app_graph()
    cycles = strongly_connected(graph)
    print(f"app-level import cycles: {len(cycles)}\n{_describe(cycles, graph)}")
    assert cycles == [], _describe(cycles, graph)


def test_the_audit_app_imports_no_other_app():
    reached = {
        f"{module} -> {target}"
        for module in project_modules()
        if module.split(".")[0] == "audit"
        for target in imports_of(module)
        if target.split(".")[0] != "audit"
    }
    assert reached == set()


# The floors, lowest first: an app imports only apps on floors below its own (a new app must be placed).
# accounts sits under records: the access policy reads targets by their configuration, not by model.
FLOORS = (("audit",), ("accounts",), ("records",), ("rotation",), ("scripts", "api", "ops"), ("access",))


def test_every_app_imports_only_apps_on_lower_floors():
    floor_of = {app: number for number, apps in enumerate(FLOORS) for app in apps}
    assert set(APPS) <= set(floor_of), f"place these apps on a floor: {sorted(set(APPS) - set(floor_of))}"
    upward = sorted(
        f"{source} -> {target}"
        for source, targets in app_graph().items()
        for target in targets
        if floor_of[target] >= floor_of[source]
    )
    assert upward == []


def test_settings_import_no_app():
    """Settings load before the apps: pamrotate.settings reaches no app module, directly or through pamrotate."""
    seen, todo = set(), ["pamrotate.settings"]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo += [target for target in imports_of(module) if target.split(".")[0] == "pamrotate"]
    reached = {
        f"{module} -> {target}"
        for module in seen
        for target in imports_of(module)
        if target.split(".")[0] in APPS
    }
    assert "pamrotate.directory_signin" in seen  # the checker follows settings' own imports
    assert reached == set()
