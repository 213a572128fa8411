"""The project's import structure: every module imports, no module imports another that
imports it back (not even from inside a function), and models and services depend one way,
billing → licensing → devices → console (docs: "Architecture").

The graph is read from the source with `ast`, so a function-level import counts as much as
one at the top of the file: a cycle that only bites at call time is still a cycle."""

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APPS = ("console", "devices", "licensing", "billing")
# An app may depend on the apps after it in this list, never on those before it.
LAYERS = ("billing", "licensing", "devices", "console")
SKIPPED_PARTS = {"tests", "migrations"}


def project_modules() -> dict[str, Path]:
    modules = {}
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if SKIPPED_PARTS.intersection(parts):
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


MODULES = project_modules()


def imported_modules(name: str, path: Path) -> set[str]:
    """The project modules `name` imports anywhere in its source (top level, functions,
    TYPE_CHECKING blocks alike). `from package import name` counts as an import of the
    submodule when there is one, else of the package."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in MODULES)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                if submodule in MODULES:
                    found.add(submodule)
                elif base in MODULES:
                    found.add(base)
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    return {name: imported_modules(name, path) for name, path in MODULES.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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


def is_layer_module(name: str) -> bool:
    """Models, services and selectors, also when split into packages or prefixed by their
    concern (console.beta_services, licensing.services.binding)."""
    return any(
        part in ("models", "services", "selectors")
        or part.endswith(("_models", "_services", "_selectors"))
        for part in name.split(".")[1:]
    )


def test_the_graph_sees_the_project():
    assert {"console.models", "licensing.models", "licensing.tasks", "console.emails"} <= set(
        MODULES
    )
    graph = import_graph()
    assert "licensing.reminders" in graph["licensing.tasks"]
    assert "console.models" in graph["devices.models"]


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_project_module_imports(name):
    importlib.import_module(name)


def test_no_import_cycle_between_project_modules():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_function_level_cycle():
    graph = {"a.jobs": {"a.tasks"}, "a.tasks": {"a.jobs"}, "a.models": set()}
    assert cycles(graph) == [["a.jobs", "a.tasks"]]


def test_tasks_import_jobs_and_services_never_the_reverse():
    graph = import_graph()
    for name, imported in graph.items():
        if name.endswith(".tasks"):
            continue
        assert not {m for m in imported if m.endswith(".tasks")}, name


def test_models_services_and_selectors_depend_one_way():
    """billing → licensing → devices → console: console's know nothing of devices,
    licensing or billing; devices' nothing of licensing or billing; licensing's nothing of
    billing."""
    graph = import_graph()
    wrong = []
    for name, imported in sorted(graph.items()):
        if not is_layer_module(name):
            continue
        app = name.split(".")[0]
        forbidden = LAYERS[: LAYERS.index(app)]
        wrong += [(name, m) for m in sorted(imported) if m.split(".")[0] in forbidden]
    assert wrong == []


def test_the_jobs_depend_one_way_too():
    """licensing's jobs are its services by concern: they may use console, devices and
    licensing, never billing."""
    graph = import_graph()
    for name in ("licensing.expiry", "licensing.reminders", "licensing.reminder_content"):
        assert not {m for m in graph[name] if m.split(".")[0] == "billing"}, name
