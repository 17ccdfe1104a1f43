"""The shape of the code, computed from its import graph: no module of app/ reaches itself
through imports, and the web layer is imported by nothing below it.

Every import counts, at module level or inside a function (a deferred import is still a
dependency); only `if TYPE_CHECKING:` blocks are left out, since they never run.
"""
from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "app"

def module_name(path: Path) -> str:
    parts = path.relative_to(APP.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def app_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(APP.rglob("*.py"))}


def is_type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def import_nodes(tree: ast.AST):
    """Every import statement that can run, however deep in functions and classes."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and is_type_checking(node):
            yield from (found for child in node.orelse for found in import_nodes(ast.Module([child], [])))
        else:
            yield from import_nodes(node)


def imported(name: str, node: ast.AST, modules: dict[str, Path]) -> set[str]:
    """The app's modules one import statement of module `name` loads (names handed on by a
    package count as the module they name when that is a module)."""
    if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
    else:
        package = name if modules[name].name == "__init__.py" else name.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = ".".join(part for part in (package if node.level else "", node.module or "") if part)
        targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
    found = set()
    for target in targets:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target and target != name:
            found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = app_modules()
    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        graph[name] = set().union(*(imported(name, node, modules) for node in import_nodes(tree)))
    return graph


def circles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_of_the_app_imports_itself_through_others():
    found = [sorted(circle) for circle in circles(import_graph())]
    assert found == [], "import circles: " + "; ".join(" <-> ".join(circle) for circle in found)


def test_the_web_layer_is_imported_only_by_itself_and_the_app_factory():
    below = {(name, target) for name, targets in import_graph().items() for target in targets
             if target.startswith("app.web") and not (name == "app.factory" or name.startswith("app.web"))}
    assert below == set(), f"modules below the web layer import it: {sorted(below)}"


def test_the_job_runner_names_no_job_kind_and_no_checklist():
    """What a job does joins the runner's registry from above; the runner only executes."""
    graph = import_graph()
    for module in ("app.jobs.runner", "app.jobs.registry", "app.jobs.worker", "app.jobs.logbus"):
        assert not {target for target in graph[module]
                    if target.startswith(("app.actions", "app.checklist", "app.web", "app.cli"))}, module


def test_the_graph_sees_deferred_imports_and_leaves_out_type_checking_blocks(tmp_path):
    """The reader itself: an import inside a function is an edge; one under TYPE_CHECKING is not."""
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from app.web import x\n"
                     "def f():\n    from app.jobs import runner\n")
    modules = {"app.example": Path("example.py"), "app.jobs": Path("__init__.py"),
               "app.jobs.runner": Path("runner.py"), "app.web": Path("__init__.py")}
    edges = set().union(*(imported("app.example", node, modules) for node in import_nodes(tree)))
    assert edges == {"app.jobs.runner"}
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
