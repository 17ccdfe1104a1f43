"""The demo workspace replays the seed story: dev migrated, production drifted and half-migrated."""

import ast
import re
import shutil
import sqlite3
import tomllib
from contextlib import closing
from importlib import resources
from pathlib import Path

import pytest

from app.core import demo
from app.core.demo import create_demo_workspace
from app.core.errors import ConfigError

MIGRATION = "plans/migrate_database_improvements.sql"
HOTFIX = "plans/hotfix_activity_instances.sql"
PHASE_1_TABLES = {"goals", "practice_sessions", "activity_instances", "metric_values"}
ROOT_ID_TABLES = PHASE_1_TABLES | {"activity_groups", "activity_definitions", "metric_definitions"}
ADD_COLUMN = re.compile(r"ALTER\s+TABLE\s+(\w+)\s+ADD\s+COLUMN\s+(\w+)", re.IGNORECASE)
CREATE_INDEX = re.compile(r"CREATE\s+INDEX\s+IF\s+NOT\s+EXISTS\s+(\w+)", re.IGNORECASE)


# --------------------------------------------------------------------------- helpers

@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """One workspace for the read-only tests; tests that write use copies or their own."""
    return create_demo_workspace(tmp_path_factory.mktemp("demo")).parent


def read_only(path: Path) -> sqlite3.Connection:
    return closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True))


def query(path: Path, sql: str) -> list[tuple]:
    with read_only(path) as connection:
        return connection.execute(sql).fetchall()


def count(path: Path, table: str) -> int:
    return query(path, f"SELECT COUNT(*) FROM {table}")[0][0]


def tables(path: Path) -> set[str]:
    rows = query(path, "SELECT name FROM sqlite_master WHERE type = 'table' "
                       "AND name NOT LIKE 'sqlite_%'")
    return {name for (name,) in rows}


def columns(path: Path, table: str) -> list[str]:
    return [row[1] for row in query(path, f"PRAGMA table_info({table})")]


def table_columns(path: Path) -> set[tuple[str, str]]:
    return {(table, column) for table in tables(path) for column in columns(path, table)}


def index_names(path: Path) -> set[str]:
    return {name for (name,) in query(path, "SELECT name FROM sqlite_master WHERE type = 'index'")}


def index_sql(path: Path) -> dict[str, str]:
    rows = query(path, "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
    return dict(rows)


def split_plan(text: str) -> list[tuple[str, list[str]]]:
    """The plan format, read independently of app.core.demo: phases of complete statements."""
    phases: list[tuple[str, list[str]]] = []
    buffer: list[str] = []
    for line in text.splitlines():
        marker = re.match(r"^--\s*phase:\s*(.+?)\s*$", line)
        if marker and not buffer:
            phases.append((marker.group(1), []))
        elif buffer or (line.strip() and not line.lstrip().startswith("--")):
            buffer.append(line)  # comments between statements explain; they are not SQL
            if sqlite3.complete_statement("\n".join(buffer)):
                phases[-1][1].append("\n".join(buffer).strip())
                buffer = []
    assert buffer == [], f"plan ends inside a statement: {buffer}"
    return phases


def plan_statements(folder: Path) -> list[str]:
    return [statement
            for plan in (MIGRATION, HOTFIX)
            for _, statements in split_plan((folder / plan).read_text(encoding="utf-8"))
            for statement in statements]


def run_plan_in_autocommit(database: Path, statements: list[str]) -> list[tuple[str, str]]:
    """Run statements one by one as the original script did; return the skipped ADD COLUMNs."""
    skipped = []
    with closing(sqlite3.connect(database, isolation_level=None)) as connection:
        for statement in statements:
            added = ADD_COLUMN.search(statement)
            existing = added and added.group(2) in [
                row[1] for row in connection.execute(f"PRAGMA table_info({added.group(1)})")]
            if existing:
                skipped.append((added.group(1), added.group(2)))
                continue
            connection.execute(statement)
    return skipped


def workspace_files(folder: Path) -> set[str]:
    return {path.relative_to(folder).as_posix() for path in folder.rglob("*")}


# --------------------------------------------------------------------------- layout and config

def test_workspace_holds_databases_plans_backup_folders_and_config(workspace):
    assert workspace_files(workspace) == {
        "cutover.toml", "goals_dev.db", "goals.db", "plans", MIGRATION, HOTFIX,
        "backups", "backups/local", "backups/offsite", "backups/development",
    }
    for backup_dir in ("backups/local", "backups/offsite", "backups/development"):
        assert list((workspace / backup_dir).iterdir()) == []


def test_config_names_both_environments_plans_and_checks(workspace):
    config = tomllib.loads((workspace / "cutover.toml").read_text(encoding="utf-8"))
    assert config["environments"] == {
        "development": {"database": "goals_dev.db", "reference": True,
                        "backup_dirs": ["backups/development"]},
        "production": {"database": "goals.db", "backup_dirs": ["backups/local", "backups/offsite"]},
    }
    assert config["migration"] == {"plans": [MIGRATION, HOTFIX]}
    assert config["checks"] == {
        "null_root_id_activity_instances":
            "SELECT COUNT(*) FROM activity_instances WHERE root_id IS NULL",
        "null_root_id_goals": "SELECT COUNT(*) FROM goals WHERE root_id IS NULL",
    }
    assert (workspace / "cutover.toml").read_text(encoding="utf-8").startswith(
        "# Cutover demo workspace: development is migrated; "
        "production is partially migrated and drifted.\n")


def test_workspace_plans_are_the_packaged_plans(workspace):
    packaged = resources.files("app.core") / "demo_plans"
    for plan in (MIGRATION, HOTFIX):
        name = plan.removeprefix("plans/")
        assert (workspace / plan).read_bytes() == (packaged / name).read_bytes()


# --------------------------------------------------------------------------- plans

def test_migration_plan_has_four_phases_with_these_statement_counts(workspace):
    phases = split_plan((workspace / MIGRATION).read_text(encoding="utf-8"))
    assert [(title, len(statements)) for title, statements in phases] == [
        ("Add root_id columns", 4),
        ("Backfill root_id", 4),
        ("Indexes for root_id and hot lookups", 10),
        ("Soft deletes and audit trail", 13),
    ]
    assert ("CREATE INDEX IF NOT EXISTS idx_activity_definitions_group_id "
            "ON activity_definitions(group_id);") in phases[2][1]


def test_hotfix_plan_is_exactly_the_seed_statements(workspace):
    assert split_plan((workspace / HOTFIX).read_text(encoding="utf-8")) == [
        ("Hotfix: activity_instances columns", [
            "ALTER TABLE activity_instances ADD COLUMN completed BOOLEAN DEFAULT 0;",
            "ALTER TABLE activity_instances ADD COLUMN notes STRING;",
            "ALTER TABLE activity_instances ADD COLUMN data STRING;",
        ]),
    ]


def test_every_plan_statement_is_complete_and_nothing_breaks_a_transaction(workspace):
    statements = plan_statements(workspace)
    assert len(statements) == 34
    assert all(sqlite3.complete_statement(statement) for statement in statements)
    for plan in (MIGRATION, HOTFIX):
        text = (workspace / plan).read_text(encoding="utf-8")
        assert re.findall(r"\b(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|PRAGMA|VACUUM|ATTACH)\b",
                          text, re.IGNORECASE) == []


# --------------------------------------------------------------------------- development

def test_development_has_the_seed_data_volume(workspace):
    dev = workspace / "goals_dev.db"
    assert (count(dev, "goals"), count(dev, "activity_instances"), count(dev, "metric_values")) \
        == (45, 79, 116)
    assert count(dev, "practice_sessions") == 30
    assert count(dev, "activity_groups") == 8
    assert count(dev, "audit_log") == 0


def test_development_has_the_hotfix_and_thirteen_activity_instance_columns(workspace):
    assert columns(workspace / "goals_dev.db", "activity_instances") == [
        "id", "practice_session_id", "activity_definition_id", "time_start", "time_stop",
        "duration_seconds", "created_at", "root_id", "deleted_at", "updated_at",
        "completed", "notes", "data",
    ]


def test_development_is_the_plan_fully_applied(workspace):
    dev = workspace / "goals_dev.db"
    planned_indexes = {CREATE_INDEX.search(s).group(1)
                       for s in plan_statements(workspace) if CREATE_INDEX.search(s)}
    assert planned_indexes <= index_names(dev)
    for table, column in (ADD_COLUMN.search(s).groups()
                          for s in plan_statements(workspace) if ADD_COLUMN.search(s)):
        assert column in columns(dev, table)
    for table in ROOT_ID_TABLES:
        assert query(dev, f"SELECT COUNT(*) FROM {table} WHERE root_id IS NULL") == [(0,)]


def test_development_goal_trees_are_three_levels_deep_under_each_root(workspace):
    dev = workspace / "goals_dev.db"
    roots = query(dev, "SELECT id FROM goals WHERE parent_id IS NULL ORDER BY id")
    assert len(roots) == 4
    assert query(dev, "SELECT COUNT(*) FROM goals WHERE parent_id IS NULL AND root_id != id") \
        == [(0,)]
    depths = query(dev, """
        WITH RECURSIVE tree(id, root, depth) AS (
            SELECT id, id, 0 FROM goals WHERE parent_id IS NULL
            UNION ALL
            SELECT g.id, tree.root, tree.depth + 1 FROM goals g JOIN tree ON g.parent_id = tree.id)
        SELECT root, MAX(depth), COUNT(*) FROM tree GROUP BY root ORDER BY root""")
    assert [max_depth for _, max_depth, _ in depths] == [3, 3, 3, 3]
    assert sum(size for _, _, size in depths) == 45  # every goal hangs under a root


def test_development_timestamps_are_iso_and_within_2025(workspace):
    dev = workspace / "goals_dev.db"
    for table, column in (("goals", "created_at"), ("practice_sessions", "started_at"),
                          ("activity_instances", "time_stop"), ("metric_values", "created_at")):
        low, high, bad = query(dev, f"""
            SELECT MIN({column}), MAX({column}),
                   SUM(datetime({column}) IS NULL OR datetime({column}) != {column})
            FROM {table}""")[0]
        assert low >= "2025-01-01" and high < "2026-01-01" and bad == 0, (table, low, high)


# --------------------------------------------------------------------------- production

def test_production_has_more_data_than_development(workspace):
    prod = workspace / "goals.db"
    assert (count(prod, "goals"), count(prod, "practice_sessions"),
            count(prod, "activity_instances"), count(prod, "metric_values")) \
        == (200, 220, 600, 1100)


def test_production_lacks_the_hotfix_and_the_drifted_schema(workspace):
    prod = workspace / "goals.db"
    assert {"completed", "notes", "data"} & set(columns(prod, "activity_instances")) == set()
    assert "group_id" not in columns(prod, "activity_definitions")
    assert "target_date" not in columns(prod, "goals")
    assert "activity_groups" not in tables(prod)
    assert "activity_groups" in tables(workspace / "goals_dev.db")


def test_production_ran_part_of_phases_one_to_three_and_none_of_phase_four(workspace):
    prod = workspace / "goals.db"
    have_root_id = {t for t in PHASE_1_TABLES if "root_id" in columns(prod, t)}
    assert have_root_id == {"goals", "practice_sessions"}
    assert index_names(prod) == {"idx_goals_root_id", "idx_goals_parent_id",
                                 "idx_practice_sessions_root_id", "idx_practice_sessions_goal_id"}
    assert "audit_log" not in tables(prod)
    assert not any("deleted_at" in columns(prod, t) for t in tables(prod))


def test_production_indexes_match_the_plan_so_they_reconcile_as_already_existing(workspace):
    dev_indexes = index_sql(workspace / "goals_dev.db")
    for name, sql in index_sql(workspace / "goals.db").items():
        assert sql == dev_indexes[name]


def test_production_backfill_was_partial(workspace):
    prod = workspace / "goals.db"
    for table in ("goals", "practice_sessions"):
        filled, missing = query(
            prod, f"SELECT COUNT(root_id), SUM(root_id IS NULL) FROM {table}")[0]
        assert filled > 0 and missing > 0, table


def test_foreign_key_check_finds_exactly_the_two_production_orphans(workspace):
    with read_only(workspace / "goals.db") as connection:
        orphans = connection.execute("PRAGMA foreign_key_check").fetchall()
    assert sorted((table, parent) for table, _, parent, _ in orphans) == [
        ("activity_instances", "practice_sessions"), ("metric_values", "activity_instances")]
    assert query(workspace / "goals_dev.db", "PRAGMA foreign_key_check") == []


@pytest.mark.parametrize("database", ["goals_dev.db", "goals.db"])
def test_integrity_check_is_ok(workspace, database):
    assert query(workspace / database, "PRAGMA integrity_check") == [("ok",)]


# --------------------------------------------------------------------------- the story

def test_plan_on_production_fails_at_the_group_id_index_like_it_did(workspace, tmp_path):
    copy = tmp_path / "goals.db"
    shutil.copyfile(workspace / "goals.db", copy)
    statements = plan_statements(workspace)
    failing = statements.index("CREATE INDEX IF NOT EXISTS idx_activity_definitions_group_id "
                               "ON activity_definitions(group_id);")
    assert run_plan_in_autocommit(copy, statements[:failing]) == [
        ("goals", "root_id"), ("practice_sessions", "root_id")]
    with pytest.raises(sqlite3.OperationalError, match=r"^no such column: group_id$"):
        run_plan_in_autocommit(copy, statements[failing:])
    # Autocommit left the copy half-migrated: the reason Cutover runs plans in one transaction.
    assert "root_id" in columns(copy, "activity_instances")
    assert "deleted_at" not in columns(copy, "goals")


def test_plan_runs_to_the_end_once_the_drift_is_repaired(workspace, tmp_path):
    dev, copy = workspace / "goals_dev.db", tmp_path / "goals.db"
    shutil.copyfile(workspace / "goals.db", copy)
    (groups_sql,) = query(dev, "SELECT sql FROM sqlite_master WHERE name = 'activity_groups'")[0]
    with closing(sqlite3.connect(copy, isolation_level=None)) as connection:
        connection.execute(groups_sql)
        connection.execute("ALTER TABLE activity_definitions ADD COLUMN group_id INTEGER "
                           "REFERENCES activity_groups(id) ON DELETE SET NULL")
    run_plan_in_autocommit(copy, plan_statements(workspace))
    assert table_columns(dev) - table_columns(copy) == {("goals", "target_date")}
    assert table_columns(copy) - table_columns(dev) == set()
    assert index_names(copy) == index_names(dev)
    config = tomllib.loads((workspace / "cutover.toml").read_text(encoding="utf-8"))
    for check in config["checks"].values():
        assert query(copy, check) == [(0,)] == query(dev, check)


# --------------------------------------------------------------------------- creation

def test_same_seed_gives_byte_identical_databases(tmp_path):
    first = create_demo_workspace(tmp_path / "first").parent
    second = create_demo_workspace(tmp_path / "second").parent
    other = create_demo_workspace(tmp_path / "other", seed=7).parent
    for name in ("goals_dev.db", "goals.db", "cutover.toml", MIGRATION, HOTFIX):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    assert (first / "goals.db").read_bytes() != (other / "goals.db").read_bytes()
    assert count(other / "goals_dev.db", "metric_values") == 116


def test_second_call_touches_nothing_and_keeps_the_operators_changes(tmp_path):
    config = create_demo_workspace(tmp_path / "demo")
    folder = config.parent
    with closing(sqlite3.connect(folder / "goals.db")) as connection:
        connection.execute("DELETE FROM metric_values")
        connection.commit()
    before = {name: (folder / name).stat().st_mtime_ns for name in workspace_files(folder)}
    assert create_demo_workspace(folder) == config
    assert {name: (folder / name).stat().st_mtime_ns for name in workspace_files(folder)} == before
    assert count(folder / "goals.db", "metric_values") == 0


def test_creation_leaves_no_temporary_files_even_after_an_interrupted_one(tmp_path):
    folder = tmp_path / "demo"
    folder.mkdir()
    # What an interrupted creation leaves behind: a half-built database under its temporary name.
    (folder / ".goals.db.partial").write_bytes(b"half-built")
    (folder / ".goals.db.partial-journal").write_bytes(b"journal")
    create_demo_workspace(folder)
    assert sorted(p.name for p in folder.iterdir()) == [
        "backups", "cutover.toml", "goals.db", "goals_dev.db", "plans"]
    assert query(folder / "goals.db", "PRAGMA integrity_check") == [("ok",)]


def test_refuses_to_replace_a_database_that_no_demo_config_claims(tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "goals.db").write_bytes(b"someone's real data")
    with pytest.raises(ConfigError, match="goals.db already exists"):
        create_demo_workspace(folder)
    assert (folder / "goals.db").read_bytes() == b"someone's real data"
    assert sorted(p.name for p in folder.iterdir()) == ["goals.db"]


def test_demo_module_does_not_import_flask():
    # app/__init__.py imports Flask, so importing the module proves nothing: read its imports.
    source = Path(demo.__file__).read_text(encoding="utf-8")
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert imported <= {"__future__", "collections", "contextlib", "dataclasses", "datetime",
                        "importlib", "os", "pathlib", "random", "re", "sqlite3", "typing"}
