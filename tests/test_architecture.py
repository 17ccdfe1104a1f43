"""The shape of the code, held by tests: a pure core, and SQLite behind the engine seam.

Imports are read from every module's syntax tree (function-level imports included), so a
lazy `import flask` inside a function counts as much as one at the top.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
APP = PROJECT_ROOT / "app"
CORE = APP / "core"
SQLITE_ENGINE = CORE / "engines" / "sqlite"

def module_name(path: Path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, text: str | None = None) -> set[str]:
    """Every module `path` imports, anywhere in it, as absolute dotted names."""
    source = path.read_text(encoding="utf-8") if text is None else text
    tree = ast.parse(source, filename=str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = parts[: len(parts) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def relative(path: Path) -> str:
    return path.relative_to(PROJECT_ROOT).as_posix()


CORE_MODULES = sorted(CORE.rglob("*.py"))


def test_the_import_reader_sees_function_level_and_relative_imports():
    text = "def f():\n    import flask\n    from . import base\n    from ..errors import X\n"
    names = imported_modules(CORE / "engines" / "example.py", text)
    assert {"flask", "app.core.engines.base", "app.core.errors.X"} <= names


@pytest.mark.parametrize("path", CORE_MODULES, ids=relative)
def test_the_core_imports_neither_the_web_stack_nor_the_app_around_it(path):
    offending = sorted(
        name for name in imported_modules(path)
        if name.split(".")[0] in ("flask", "sqlalchemy", "flask_sqlalchemy", "werkzeug", "jinja2")
        or (name.startswith("app.") and not name.startswith("app.core")) or name == "app"
    )
    assert not offending, f"{relative(path)} imports {offending}: app/core must stay pure"


def sqlite3_importers() -> set[str]:
    return {
        relative(path) for path in APP.rglob("*.py")
        if SQLITE_ENGINE not in path.parents and any(
            name == "sqlite3" or name.startswith("sqlite3.") for name in imported_modules(path))
    }


def test_nothing_outside_the_sqlite_engine_imports_sqlite3():
    importers = sqlite3_importers()
    assert not importers, f"{sorted(importers)} import sqlite3: reach SQLite through engine_for(...) instead"


def test_nothing_outside_the_core_imports_sqlite3():
    outside = {path for path in sqlite3_importers() if not path.startswith("app/core/")}
    assert not outside, f"{sorted(outside)} import sqlite3: the dashboard reaches targets through app.core"


def test_the_engine_folder_is_the_only_place_that_names_the_engines_modules_from_outside_the_core():
    # Code outside app/core reaches SQLite through the core's neutral modules, never the folder.
    reaching_in = sorted(
        relative(path) for path in APP.rglob("*.py")
        if CORE not in path.parents and path.parent != CORE
        and any(name.startswith("app.core.engines.sqlite") for name in imported_modules(path))
    )
    assert not reaching_in, f"{reaching_in} import the SQLite engine's modules directly"



ENGINES = CORE / "engines"
# The demo builds two SQLite files and says so: it may use the SQLite engine's tools.
BUILDS_SQLITE_FILES = {"app/core/demo.py"}


def engine_internals_importers() -> set[str]:
    """Core modules outside app/core/engines/ that import a module of one engine's folder."""
    engine_folders = {f"app.core.engines.{p.name}" for p in ENGINES.iterdir() if (p / "__init__.py").exists()}
    return {
        relative(path) for path in CORE.rglob("*.py")
        if ENGINES not in path.parents
        and any(name == folder or name.startswith(folder + ".")
                for name in imported_modules(path) for folder in engine_folders)
    }


def test_neutral_core_modules_reach_an_engine_only_through_the_interface():
    importers = engine_internals_importers() - BUILDS_SQLITE_FILES
    assert not importers, f"{sorted(importers)} import an engine's modules: ask the target's engine (engine_for) instead"

# Imported through the real `app` package: its __init__ loads the Flask factory only on demand.
IMPORTS_NO_FLASK = """
import importlib, sys
importlib.import_module({module!r})
web = sorted(name for name in sys.modules if name.split(".")[0] in ("flask", "sqlalchemy", "werkzeug"))
print(",".join(web))
"""


@pytest.mark.parametrize("module", ["app.core", *sorted({module_name(p) for p in CORE_MODULES})])
def test_importing_the_core_does_not_import_flask(module):
    result = subprocess.run(
        [sys.executable, "-c", IMPORTS_NO_FLASK.format(module=module)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, check=True, timeout=60,
    )
    assert result.stdout.strip() == "", f"importing {module} imports {result.stdout.strip()}"


def test_every_engine_implements_the_whole_interface_and_is_picked_by_name():
    from app.core.engines import Engine, engine_for
    from app.core.engines.sqlite import SQLiteEngine
    from app.core.errors import ConfigError

    engine = engine_for(PROJECT_ROOT / "x.db")
    assert isinstance(engine, SQLiteEngine) and isinstance(engine, Engine)
    assert engine_for(engine) is engine
    assert not SQLiteEngine.__abstractmethods__
    from app.core.engines.postgresql import PostgresqlEngine

    postgres = engine_for("postgresql://app@db/shop", kind="postgresql")
    assert isinstance(postgres, PostgresqlEngine) and not PostgresqlEngine.__abstractmethods__
    with pytest.raises(ConfigError) as refused:
        engine_for("postgresql://db/app", kind="oracle")
    assert "no 'oracle' engine" in refused.value.message
