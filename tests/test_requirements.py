"""Every package the code or the tests import is pinned in a requirements file.

CI runs the suite from a fresh virtual environment, but a developer's machine may have a
package installed globally; this test names the missing pin wherever it runs.
"""
import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
LOCAL_MODULES = {"app", "tests", "config", "run", "bench"}


def pinned_distributions(requirements: Path) -> set[str]:
    names = set()
    for line in requirements.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            names |= pinned_distributions(requirements.parent / line[3:].strip())
        elif line:
            names.add(canonical(re.split(r"[=<>!~\[; ]", line, maxsplit=1)[0]))
    return names


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_top_level_modules(paths: list[Path]) -> dict[str, str]:
    """Top-level module name -> one file importing it, for every absolute import."""
    modules = {}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                modules.setdefault(name.split(".")[0], str(path.relative_to(PROJECT)))
    return modules


def unpinned(modules: dict[str, str], pinned: set[str]) -> list[str]:
    providers = packages_distributions()
    missing = []
    for module, where in sorted(modules.items()):
        if module in sys.stdlib_module_names or module in LOCAL_MODULES:
            continue
        distributions = {canonical(name) for name in providers.get(module, [module])}
        if not distributions & pinned:
            missing.append(f"{module} (imported by {where})")
    return missing


def test_the_app_imports_only_what_requirements_txt_pins():
    paths = sorted((PROJECT / "app").rglob("*.py")) + [PROJECT / "config.py", PROJECT / "run.py"]
    assert unpinned(imported_top_level_modules(paths), pinned_distributions(PROJECT / "requirements.txt")) == []


def test_the_tests_import_only_what_requirements_dev_txt_pins():
    paths = sorted((PROJECT / "tests").rglob("*.py"))
    assert unpinned(imported_top_level_modules(paths), pinned_distributions(PROJECT / "requirements-dev.txt")) == []
