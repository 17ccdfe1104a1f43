"""The demo workspace: a migrated development database and a drifted, half-migrated production one.

It replays the production-vs-development migration story Cutover was born from, with a
"fractal goals" app, so that someone who starts Cutover without a configuration has the real
problem to look at:

* `goals_dev.db` (the reference) is the pre-migration schema with both plan files applied,
  executed statement by statement from the shipped plans, so it is exactly "the plan applied".
* `goals.db` (production) has more data, two foreign-key orphans, a schema that drifted from
  development (no `activity_groups`, no `activity_definitions.group_id`, no `goals.target_date`)
  and the leftovers of a failed first attempt: part of phases 1-3 ran, then the
  `activity_definitions(group_id)` index stopped it with `no such column: group_id`.

Everything comes from `random.Random` seeded by `seed`, so the same seed gives byte-identical files.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import NamedTuple

# The demo is two SQLite files: it is built with the SQLite engine's own tools.
from .engines.sqlite.building import Connection, build_database_file, remove_database_files
from .engines.sqlite.engine import SQLiteEngine
from .engines.sqlite.transactions import immediate_transaction
from .errors import ConfigError
from .plans import PlanStatement, parse_plan_text
from .sql import quote_identifier

CONFIG_NAME = "cutover.toml"
DEV_DATABASE = "goals_dev.db"
PROD_DATABASE = "goals.db"
PLANS_DIR = "plans"
# Order matters: the hotfix runs after the migration, as it did in development.
PLAN_FILES = ("migrate_database_improvements.sql", "hotfix_activity_instances.sql")
BACKUP_DIRS = ("backups/local", "backups/offsite", "backups/development")

DEMO_CONFIG = """\
# Cutover demo workspace: development is migrated; production is partially migrated and drifted.
# Written once by Cutover's demo generator and never overwritten: edit it freely.
# Relative paths resolve against the folder that holds this file.

# One [environments.NAME] table per database Cutover watches. The reference environment is
# the one every other environment is compared with: here development, already migrated.
[environments.development]
database = "goals_dev.db"
reference = true
backup_dirs = ["backups/development"]

# Production: a failed first attempt left it half-migrated, and its schema has drifted from
# development. Its backups go to two folders (the second one stands in for off-site storage).
[environments.production]
database = "goals.db"
backup_dirs = ["backups/local", "backups/offsite"]

# The migration plan files, run in this order. A line "-- phase: TITLE" starts a phase.
[migration]
plans = ["plans/migrate_database_improvements.sql", "plans/hotfix_activity_instances.sql"]

# Health assertions: each query must return 0 on a healthy, fully migrated database.
[checks]
null_root_id_activity_instances = "SELECT COUNT(*) FROM activity_instances WHERE root_id IS NULL"
null_root_id_goals = "SELECT COUNT(*) FROM goals WHERE root_id IS NULL"

# Verification after the migration. The smoke test writes what the application writes
# (a session with an activity, then deletes the session, which must cascade) inside a
# transaction that is always rolled back: nothing it does is kept. The watch runs every
# check every 15 minutes for 24 hours.
[verification]
smoke = [
  "INSERT INTO practice_sessions (goal_id, name, started_at, created_at, root_id) VALUES ((SELECT MIN(id) FROM goals WHERE parent_id IS NULL), 'Cutover smoke test', '2026-01-01 09:00:00', '2026-01-01 09:00:00', (SELECT MIN(id) FROM goals WHERE parent_id IS NULL))",
  "INSERT INTO activity_instances (practice_session_id, activity_definition_id, created_at, root_id, completed, notes) VALUES (last_insert_rowid(), (SELECT MIN(id) FROM activity_definitions), '2026-01-01 09:00:00', (SELECT MIN(id) FROM goals WHERE parent_id IS NULL), 0, 'smoke')",
  "DELETE FROM practice_sessions WHERE name = 'Cutover smoke test'",
]
monitor_hours = 24
monitor_interval_minutes = 15

# The production checklist (verify target, app stopped, data volume, backup, integrity,
# rehearse, migrate, hotfix, verify, start app, smoke test, monitor). The rehearsal runs
# every plan; the migrate step applies all but the hotfix, which gets its own step right
# after, as the runbook demands. Set approval = true under [checklist.steps.migrate] to
# require a second operator's approval before production is migrated.
[checklist.steps.hotfix]
plans = ["plans/hotfix_activity_instances.sql"]
"""


# --------------------------------------------------------------------------- schema

# The fractal-goals schema as it was just before this migration, in development. The
# `root_id` of goals, sessions, activities and metric values is what the plan adds.
BASE_TABLES: dict[str, list[tuple[str, str]]] = {
    "goals": [
        ("id", "INTEGER PRIMARY KEY"),
        ("name", "TEXT NOT NULL"),
        ("description", "TEXT"),
        ("type", "TEXT NOT NULL"),
        ("parent_id", "INTEGER REFERENCES goals(id) ON DELETE CASCADE"),
        ("target_date", "DATE"),
        ("created_at", "DATETIME NOT NULL"),
    ],
    "activity_groups": [
        ("id", "INTEGER PRIMARY KEY"),
        ("root_id", "INTEGER NOT NULL REFERENCES goals(id) ON DELETE CASCADE"),
        ("name", "TEXT NOT NULL"),
        ("description", "TEXT"),
        ("sort_order", "INTEGER NOT NULL DEFAULT 0"),
        ("created_at", "DATETIME NOT NULL"),
    ],
    "activity_definitions": [
        ("id", "INTEGER PRIMARY KEY"),
        ("root_id", "INTEGER NOT NULL REFERENCES goals(id) ON DELETE CASCADE"),
        ("group_id", "INTEGER REFERENCES activity_groups(id) ON DELETE SET NULL"),
        ("name", "TEXT NOT NULL"),
        ("description", "TEXT"),
        ("created_at", "DATETIME NOT NULL"),
    ],
    "metric_definitions": [
        ("id", "INTEGER PRIMARY KEY"),
        ("activity_definition_id",
         "INTEGER NOT NULL REFERENCES activity_definitions(id) ON DELETE CASCADE"),
        ("root_id", "INTEGER NOT NULL REFERENCES goals(id) ON DELETE CASCADE"),
        ("name", "TEXT NOT NULL"),
        ("unit", "TEXT"),
        ("created_at", "DATETIME NOT NULL"),
    ],
    "practice_sessions": [
        ("id", "INTEGER PRIMARY KEY"),
        ("goal_id", "INTEGER NOT NULL REFERENCES goals(id) ON DELETE CASCADE"),
        ("name", "TEXT NOT NULL"),
        ("started_at", "DATETIME NOT NULL"),
        ("duration_minutes", "INTEGER"),
        ("created_at", "DATETIME NOT NULL"),
    ],
    "activity_instances": [
        ("id", "INTEGER PRIMARY KEY"),
        ("practice_session_id",
         "INTEGER NOT NULL REFERENCES practice_sessions(id) ON DELETE CASCADE"),
        ("activity_definition_id", "INTEGER NOT NULL REFERENCES activity_definitions(id)"),
        ("time_start", "DATETIME"),
        ("time_stop", "DATETIME"),
        ("duration_seconds", "INTEGER"),
        ("created_at", "DATETIME NOT NULL"),
    ],
    "metric_values": [
        ("id", "INTEGER PRIMARY KEY"),
        ("activity_instance_id",
         "INTEGER NOT NULL REFERENCES activity_instances(id) ON DELETE CASCADE"),
        ("metric_definition_id",
         "INTEGER NOT NULL REFERENCES metric_definitions(id) ON DELETE CASCADE"),
        ("value", "REAL NOT NULL"),
        ("created_at", "DATETIME NOT NULL"),
    ],
}
TABLE_CONSTRAINTS = {"activity_groups": ["UNIQUE (root_id, name)"]}

# What production never received from older migrations that development ran. The plan
# silently depends on group_id (and so on activity_groups); target_date is harmless and
# only makes the schema diff explain one more thing.
DRIFT_MISSING_TABLES = ("activity_groups",)
DRIFT_MISSING_COLUMNS = {"goals": ("target_date",), "activity_definitions": ("group_id",)}

# The failed first production attempt ran an early draft of the script that only knew these
# tables in phases 1 and 2, and it stopped at the statement containing this text.
FIRST_DRAFT_TABLES = ("goals", "practice_sessions")
FAILED_STATEMENT_MARK = "ON activity_definitions(group_id)"
FAILED_ATTEMPT_AT = "2025-09-20 21:14:00"


# --------------------------------------------------------------------------- catalog

class MetricSpec(NamedTuple):
    name: str
    unit: str
    low: float
    high: float
    decimals: int


class ActivitySpec(NamedTuple):
    name: str
    description: str
    metrics: tuple[MetricSpec, ...]


class GroupSpec(NamedTuple):
    name: str
    description: str
    activities: tuple[ActivitySpec, ...]


class RootSpec(NamedTuple):
    name: str
    description: str
    levels: tuple[tuple[str, ...], ...]  # sub-goal names for depths 1, 2 and 3
    groups: tuple[GroupSpec, ...]
    session_names: tuple[str, ...]


MINUTES = MetricSpec("minutes", "min", 5, 60, 0)
REPS = MetricSpec("reps", "reps", 3, 20, 0)
SETS = MetricSpec("sets", "sets", 2, 5, 0)
TEMPO = MetricSpec("tempo", "bpm", 50, 140, 0)
DISTANCE = MetricSpec("distance", "km", 3, 21, 1)
HEART_RATE = MetricSpec("average heart rate", "bpm", 120, 170, 0)

ROOT_CATALOG: tuple[RootSpec, ...] = (
    RootSpec(
        "Learn Spanish", "Be comfortable living and working in Spanish.",
        (("Hold a 30-minute conversation", "Read a novel in Spanish", "Pass the DELE B2 exam",
          "Understand podcasts without subtitles"),
         ("Master the past tenses", "Learn 2,000 core words", "Practise with a tutor weekly",
          "Finish 'Cien años de soledad'", "Complete a B2 mock exam"),
         ("Preterite vs imperfect drills", "Review 50 flashcards a day",
          "Shadow one podcast episode", "Write a 200-word journal entry",
          "Book three tutor lessons", "Read one chapter a week")),
        (GroupSpec("Vocabulary", "Words and phrases.", (
            ActivitySpec("Flashcards (Anki)", "Spaced-repetition review.",
                         (MetricSpec("cards reviewed", "cards", 20, 200, 0), MINUTES,
                          MetricSpec("accuracy", "%", 60, 100, 0))),
            ActivitySpec("Verb conjugation drills", "Timed drills on one tense.",
                         (REPS, MINUTES)))),
         GroupSpec("Listening and speaking", "Real Spanish, out loud.", (
             ActivitySpec("Podcast listening", "An episode of a native-speed podcast.",
                          (MINUTES, MetricSpec("episodes", "episodes", 1, 3, 0))),
             ActivitySpec("Tutor conversation", "Video call with a tutor.",
                          (MINUTES, MetricSpec("new words", "words", 3, 25, 0)))))),
        ("Morning Spanish", "Evening review", "Tutor call", "Commute listening")),
    RootSpec(
        "Run a half marathon", "Finish 21.1 km feeling strong.",
        (("Build an aerobic base", "Run 21.1 km under 2 hours", "Stay injury-free"),
         ("Run 30 km per week", "Improve 5K pace to 5:30/km", "Complete a 16 km long run",
          "Strengthen hips and calves"),
         ("Three easy runs this week", "One interval session", "Long run on Sunday",
          "Foam roll after every run", "Hill repeats x6")),
        (GroupSpec("Running", "Time on feet.", (
            ActivitySpec("Easy run", "Conversational pace.", (DISTANCE, MINUTES, HEART_RATE)),
            ActivitySpec("Intervals", "Fast repeats with jog recovery.",
                         (REPS, MetricSpec("pace", "min/km", 4.2, 5.5, 2), MINUTES)),
            ActivitySpec("Long run", "The slow Sunday one.",
                         (MetricSpec("distance", "km", 10, 21, 1), MINUTES)))),
         GroupSpec("Mobility", "Keeping the legs working.", (
             ActivitySpec("Foam rolling", "Calves, quads, IT band.", (MINUTES, SETS)),
             ActivitySpec("Calf raises", "Single-leg, slow.", (REPS, SETS))))),
        ("Morning run", "Track session", "Sunday long run", "Recovery jog")),
    RootSpec(
        "Play piano confidently", "Play for friends without freezing up.",
        (("Play Chopin's Nocturne Op. 9 No. 2", "Sight-read grade 4 pieces",
          "Improvise over jazz standards"),
         ("Memorise the first page", "Hands together at 60 bpm", "Learn all major scales",
          "Learn ii-V-I voicings"),
         ("Bars 1-8 hands separately", "Scales in C, G and D", "Metronome work at 50 bpm",
          "One sight-reading exercise a day", "Record a run-through")),
        (GroupSpec("Technique", "Fingers and time.", (
            ActivitySpec("Scales practice", "Major and minor scales, two octaves.",
                         (MINUTES, TEMPO, REPS)),
            ActivitySpec("Arpeggios", "Broken chords in every key.", (TEMPO, MINUTES)))),
         GroupSpec("Repertoire", "Pieces being learned.", (
             ActivitySpec("Repertoire run-through", "The current piece, start to finish.",
                          (MINUTES, MetricSpec("mistakes", "mistakes", 0, 15, 0))),
             ActivitySpec("Sight reading", "New material, no stopping.",
                          (MetricSpec("pieces", "pieces", 1, 6, 0), MINUTES))))),
        ("Piano practice", "Evening piano", "Lesson prep", "Weekend run-through")),
    RootSpec(
        "Get stronger", "Lift heavy things safely for years.",
        (("Squat 1.5x bodyweight", "Do 10 strict pull-ups", "Deadlift 140 kg"),
         ("Follow a 5x5 programme", "Add 2.5 kg a week", "Negative pull-ups",
          "Fix squat depth"),
         ("Three gym sessions a week", "Log every set", "Deload every fifth week",
          "Film a squat set")),
        (GroupSpec("Barbell", "The big lifts.", (
            ActivitySpec("Squat", "Low-bar back squat.",
                         (MetricSpec("weight", "kg", 40, 120, 1), REPS, SETS)),
            ActivitySpec("Deadlift", "Conventional.",
                         (MetricSpec("weight", "kg", 60, 150, 1), REPS)))),
         GroupSpec("Bodyweight", "No equipment needed.", (
             ActivitySpec("Pull-ups", "Strict, dead hang.", (REPS, SETS)),
             ActivitySpec("Push-ups", "Full range.", (MetricSpec("reps", "reps", 10, 40, 0),
                                                      SETS))))),
        ("Gym: lower body", "Gym: upper body", "Home workout")),
    RootSpec(
        "Ship a side project", "Put the habit tracker in front of real users.",
        (("Launch the habit-tracker app", "Get 100 users", "Write a technical blog"),
         ("Finish the MVP", "Set up CI and backups", "Publish 5 posts", "Fix the top bugs"),
         ("Build the login page", "Write migration tests", "Draft the launch post",
          "Fix the delete-session bug", "Set up error reporting")),
        (GroupSpec("Coding", "Making the thing.", (
            ActivitySpec("Deep work block", "Phone away, one task.",
                         (MINUTES, MetricSpec("commits", "commits", 0, 8, 0))),
            ActivitySpec("Code review", "Reading my own diffs a day later.",
                         (MINUTES, MetricSpec("issues found", "issues", 0, 6, 0))))),
         GroupSpec("Writing", "Telling people about it.", (
             ActivitySpec("Blog drafting", "One post at a time.",
                          (MetricSpec("words", "words", 100, 1500, 0), MINUTES)),))),
        ("Evening coding", "Weekend hack session", "Writing session")),
    RootSpec(
        "Read more books", "Make reading a daily habit again.",
        (("Read 24 books this year", "Finish 'War and Peace'"),
         ("Read 30 minutes a day", "One non-fiction book a month", "Keep a reading journal"),
         ("Read before bed", "Take notes on each chapter", "Pick next month's book")),
        (GroupSpec("Reading", "Pages turned.", (
            ActivitySpec("Reading session", "Any book, no phone.",
                         (MetricSpec("pages", "pages", 5, 80, 0), MINUTES)),
            ActivitySpec("Note taking", "Notes on what was read.",
                         (MetricSpec("notes", "notes", 1, 12, 0), MINUTES)))),
         GroupSpec("Library", "Finding the next book.", (
             ActivitySpec("Library visit", "Browse and borrow.",
                          (MetricSpec("books borrowed", "books", 1, 4, 0), MINUTES)),))),
        ("Bedtime reading", "Sunday reading", "Lunch-break chapter")),
    RootSpec(
        "Learn to draw", "Draw people from life with confidence.",
        (("Draw realistic portraits", "Fill a sketchbook"),
         ("Master proportions", "Study light and shadow", "Draw from life weekly"),
         ("Gesture drawing, 30-second poses", "Copy a master drawing", "Draw hands daily",
          "Shade a sphere and a cube")),
        (GroupSpec("Drawing", "Pencil on paper.", (
            ActivitySpec("Gesture drawing", "Timed poses from photos.",
                         (MetricSpec("poses", "poses", 10, 60, 0), MINUTES)),
            ActivitySpec("Figure study", "One long study.",
                         (MINUTES, MetricSpec("drawings", "drawings", 1, 4, 0))))),
         GroupSpec("Studies", "Learning from others.", (
             ActivitySpec("Master copy", "Copy a drawing by someone better.",
                          (MINUTES, MetricSpec("drawings", "drawings", 1, 2, 0))),))),
        ("Sketch session", "Life drawing class", "Café sketching")),
    RootSpec(
        "Meditate daily", "A calmer, more attentive mind.",
        (("Sit for 20 minutes daily", "Complete a silent retreat"),
         ("A 30-day streak", "Try a body scan practice", "Find a local group"),
         ("Morning sit after coffee", "Use the breath-counting technique",
          "Book the retreat")),
        (GroupSpec("Practice", "Sitting.", (
            ActivitySpec("Breath counting", "Count to ten, start again.",
                         (MINUTES, MetricSpec("times lost count", "times", 0, 20, 0))),
            ActivitySpec("Body scan", "Head to toe.", (MINUTES, SETS)))),
         GroupSpec("Community", "Sitting with others.", (
             ActivitySpec("Group sit", "The Thursday group.",
                          (MINUTES, MetricSpec("people", "people", 3, 20, 0))),))),
        ("Morning sit", "Evening sit", "Thursday group")),
)

GOAL_TYPES = ("UltimateGoal", "LongTermGoal", "MidTermGoal", "ShortTermGoal")
# Trees widen towards the concrete end: few long-term goals, many short-term ones.
SUB_GOAL_DEPTH_WEIGHTS = (1, 2, 4)
SUB_GOAL_DESCRIPTIONS = (
    "Part of '{parent}'.", "A concrete step towards '{parent}'.",
    "Needed before '{parent}' feels done.", "Keeps '{parent}' moving week to week.", None,
)
# Spelled out rather than strftime("%B"), which follows the process locale.
MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August",
               "September", "October", "November", "December")
GOALS_FROM = datetime(2025, 1, 2, 8, 30)
GOALS_UNTIL = datetime(2025, 11, 30, 22, 0)
ROOT_GOAL_EVERY_DAYS = 38  # the eighth tree starts just after the failed production attempt
SESSIONS_FROM = datetime(2025, 2, 1, 7, 0)
SESSIONS_UNTIL = datetime(2025, 12, 20, 21, 0)
YEAR_END = datetime(2025, 12, 31)


@dataclass(frozen=True)
class DatasetSize:
    roots: int
    goals: int
    sessions: int
    activity_instances: int
    metric_values: int
    with_orphans: bool


# The seed's numbers for development. Production holds more history; it is generated with
# one extra session and one extra activity because the old app later deleted one of each
# with foreign keys off, which is what left the two orphans behind.
DEV_SIZE = DatasetSize(4, 45, 30, 79, 116, with_orphans=False)
PROD_SIZE = DatasetSize(8, 200, 221, 601, 1100, with_orphans=True)


@dataclass
class Dataset:
    rows: dict[str, list[dict]]
    deleted_with_foreign_keys_off: list[tuple[str, int]]


# --------------------------------------------------------------------------- workspace

def create_demo_workspace(folder: Path, *, seed: int = 20260101) -> Path:
    """Create the demo workspace in `folder` (once) and return the path of its cutover.toml.

    An existing cutover.toml means the workspace is already there, possibly migrated by the
    operator, so nothing is touched. Databases are built under temporary names and renamed
    at the end, and the configuration is written last, so an interrupted creation leaves no
    half-built database and no configuration pointing at one.
    """
    folder = Path(folder)
    config_path = folder / CONFIG_NAME
    if config_path.exists():
        return config_path
    folder.mkdir(parents=True, exist_ok=True)
    _refuse_to_replace_databases(folder)
    plans = _packaged_plans()
    built = _build_databases(folder, seed, plans)
    for name, content in plans.items():
        _write_atomically(folder / PLANS_DIR / name, content)
    for backup_dir in BACKUP_DIRS:
        (folder / backup_dir).mkdir(parents=True, exist_ok=True)
    for temp_path, final_path in built:
        os.replace(temp_path, final_path)
    _write_atomically(config_path, DEMO_CONFIG.encode("utf-8"))
    return config_path


def _build_databases(folder: Path, seed: int, plans: dict[str, bytes]) -> list[tuple[Path, Path]]:
    """Build both SQLite databases under temporary names; return (temporary, final) path pairs."""
    recipes = [(folder / DEV_DATABASE, lambda c: _build_development(c, seed, plans)),
               (folder / PROD_DATABASE, lambda c: _build_production(c, seed, plans))]
    built: list[tuple[Path, Path]] = []
    try:
        for final_path, recipe in recipes:
            # History is replayed as it happened, including rows deleted while the old
            # application ran without foreign-key enforcement.
            built.append((build_database_file(final_path, recipe, foreign_keys=False), final_path))
    except BaseException:
        for temp_path, _ in built:
            remove_database_files(temp_path)
        raise
    return built


def _refuse_to_replace_databases(folder: Path) -> None:
    # Without a cutover.toml we cannot tell a demo database from someone's real goals.db.
    for name in (DEV_DATABASE, PROD_DATABASE):
        path = folder / name
        if path.exists():
            raise ConfigError(
                f"Cannot create the demo workspace in {folder}: {path} already exists and "
                f"there is no {CONFIG_NAME} saying it belongs to a demo. Move that file away "
                "or choose another folder.",
                path=str(path),
            )


def _packaged_plans() -> dict[str, bytes]:
    plan_dir = resources.files(__package__) / "demo_plans"
    return {name: (plan_dir / name).read_bytes() for name in PLAN_FILES}


def _write_atomically(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp_path = path.with_name(f".{path.name}.partial")
    temp_path.write_bytes(content)
    os.replace(temp_path, path)


# --------------------------------------------------------------------------- the two databases

def _build_development(connection: Connection, seed: int, plans: dict[str, bytes]) -> None:
    dataset = generate_dataset(random.Random(f"{seed}:development"), DEV_SIZE)
    with immediate_transaction(connection):
        _create_base_schema(connection, drifted=False)
        _insert_rows(connection, dataset, drifted=False, keep=lambda row: True)
    # Development is exactly "the plans applied": each file in one transaction, phase by phase.
    for content in plans.values():
        with immediate_transaction(connection):
            for statement in parse_plan_text(content.decode("utf-8"), dialect=SQLiteEngine.dialect).statements():
                connection.execute(statement.sql)


def _build_production(connection: Connection, seed: int, plans: dict[str, bytes]) -> None:
    dataset = generate_dataset(random.Random(f"{seed}:production"), PROD_SIZE)
    migration = parse_plan_text(plans[PLAN_FILES[0]].decode("utf-8"),
                                dialect=SQLiteEngine.dialect).statements()
    with immediate_transaction(connection):
        _create_base_schema(connection, drifted=True)
        _insert_rows(connection, dataset, drifted=True, keep=_created_before_attempt)
        for statement in failed_attempt_statements(migration):
            connection.execute(statement.sql)
        # The old application kept running after the attempt and wrote rows without root_id.
        _insert_rows(connection, dataset, drifted=True, keep=_created_after_attempt)
        for table, row_id in dataset.deleted_with_foreign_keys_off:
            connection.execute(f"DELETE FROM {quote_identifier(table)} WHERE id = ?", (row_id,))


def _created_before_attempt(row: dict) -> bool:
    return row["created_at"] <= FAILED_ATTEMPT_AT


def _created_after_attempt(row: dict) -> bool:
    return not _created_before_attempt(row)


def failed_attempt_statements(migration: list[PlanStatement]) -> list[PlanStatement]:
    """The statements the failed first production attempt completed before it stopped."""
    completed = []
    for statement in migration:
        if FAILED_STATEMENT_MARK in statement.sql:
            break
        if _target_table(statement.sql) in FIRST_DRAFT_TABLES:
            completed.append(statement)
    return completed


_TARGET_TABLE = re.compile(
    r"^\s*(?:ALTER\s+TABLE|UPDATE|CREATE\s+INDEX\s+IF\s+NOT\s+EXISTS\s+\w+\s+ON)\s+(\w+)",
    re.IGNORECASE | re.MULTILINE,
)


def _target_table(sql: str) -> str | None:
    match = _TARGET_TABLE.search(sql)
    return match.group(1) if match else None


def _create_base_schema(connection: Connection, *, drifted: bool) -> None:
    for table in _base_tables(drifted):
        lines = [f"{name} {declaration}" for name, declaration in _base_columns(table, drifted)]
        lines += TABLE_CONSTRAINTS.get(table, [])
        connection.execute(f"CREATE TABLE {table} (\n    " + ",\n    ".join(lines) + "\n)")


def _base_tables(drifted: bool) -> list[str]:
    return [t for t in BASE_TABLES if not (drifted and t in DRIFT_MISSING_TABLES)]


def _base_columns(table: str, drifted: bool) -> list[tuple[str, str]]:
    missing = DRIFT_MISSING_COLUMNS.get(table, ()) if drifted else ()
    return [(name, decl) for name, decl in BASE_TABLES[table] if name not in missing]


def _insert_rows(connection: Connection, dataset: Dataset, *, drifted: bool,
                 keep: Callable[[dict], bool]) -> None:
    for table in _base_tables(drifted):
        columns = [name for name, _ in _base_columns(table, drifted)]
        sql = "INSERT INTO {} ({}) VALUES ({})".format(
            quote_identifier(table),
            ", ".join(quote_identifier(c) for c in columns),
            ", ".join("?" for _ in columns),
        )
        rows = [tuple(row[c] for c in columns) for row in dataset.rows[table] if keep(row)]
        connection.executemany(sql, rows)


# --------------------------------------------------------------------------- data

def generate_dataset(rng: random.Random, size: DatasetSize) -> Dataset:
    roots = ROOT_CATALOG[: size.roots]
    goals = _generate_goals(rng, roots, size.goals)
    specs_by_root = {g["id"]: g["_spec"] for g in goals if g["parent_id"] is None}
    groups, definitions, metrics = _generate_activity_catalog(goals)
    sessions = _generate_sessions(rng, goals, specs_by_root, size.sessions)
    # With orphans: one session with a single activity and one activity with a single
    # metric value, both deleted later, leave exactly one orphan each.
    lone_session = rng.choice(sessions) if size.with_orphans else None
    instances = _generate_activity_instances(
        rng, sessions, _group_by(definitions, "root_id"), size.activity_instances, lone_session)
    lone_instance = None
    if size.with_orphans:
        lone_instance = rng.choice(
            [i for i in instances if i["practice_session_id"] != lone_session["id"]])
    values = _generate_metric_values(
        rng, instances, _group_by(metrics, "activity_definition_id"), size.metric_values,
        lone_instance)
    deleted = []
    if size.with_orphans:
        deleted = [("activity_instances", lone_instance["id"]),
                   ("practice_sessions", lone_session["id"])]
    rows = {"goals": goals, "activity_groups": groups, "activity_definitions": definitions,
            "metric_definitions": metrics, "practice_sessions": sessions,
            "activity_instances": instances, "metric_values": values}
    return Dataset(rows, deleted)


def _group_by(rows: list[dict], key: str) -> dict[int, list[dict]]:
    grouped: dict[int, list[dict]] = {}
    for row in rows:
        grouped.setdefault(row[key], []).append(row)
    return grouped


def _spread(rng: random.Random, total: int, buckets: int, minimum: int) -> list[int]:
    """`buckets` counts of at least `minimum` that add up to `total`."""
    counts = [minimum] * buckets
    for _ in range(total - minimum * buckets):
        counts[rng.randrange(buckets)] += 1
    return counts


def _sorted_times(rng: random.Random, count: int, start: datetime, end: datetime) -> list[datetime]:
    span = int((end - start).total_seconds())
    return sorted(start + timedelta(seconds=rng.randrange(span)) for _ in range(count))


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _generate_goals(rng: random.Random, roots: tuple[RootSpec, ...], total: int) -> list[dict]:
    goals: list[dict] = []
    for number, (spec, tree_size) in enumerate(
            zip(roots, _spread(rng, total, len(roots), len(GOAL_TYPES)))):
        tree = _grow_goal_tree(rng, spec, tree_size, first_id=len(goals) + 1)
        # A new tree is started every few weeks; each one keeps growing until the year ends.
        planted = GOALS_FROM + timedelta(days=ROOT_GOAL_EVERY_DAYS * number)
        times = [planted] + _sorted_times(rng, tree_size - 1, planted, GOALS_UNTIL)
        for goal, created in zip(tree, times):  # parents come first, so they are older
            goal["_created"] = created
        goals.extend(tree)
    goals = _renumber_in_creation_order(goals)
    for goal in goals:
        goal["created_at"] = _iso(goal["_created"])
        goal["target_date"] = _target_date(rng, goal["_depth"], goal["_created"])
    _label_repeated_names(goals)
    return goals


def _renumber_in_creation_order(goals: list[dict]) -> list[dict]:
    # Real ids follow insertion order, across trees.
    ordered = sorted(goals, key=lambda g: (g["_created"], g["id"]))
    new_ids = {goal["id"]: number for number, goal in enumerate(ordered, start=1)}
    for goal in ordered:
        goal["id"] = new_ids[goal["id"]]
        goal["_root"] = new_ids[goal["_root"]]
        if goal["parent_id"] is not None:
            goal["parent_id"] = new_ids[goal["parent_id"]]
    return ordered


def _grow_goal_tree(rng: random.Random, spec: RootSpec, size: int, first_id: int) -> list[dict]:
    root = {"id": first_id, "name": spec.name, "description": spec.description,
            "type": GOAL_TYPES[0], "parent_id": None, "_depth": 0, "_root": first_id,
            "_spec": spec}
    tree = [root]
    while len(tree) < size:
        if len(tree) < len(GOAL_TYPES):
            parent = tree[-1]  # every tree starts with one chain of full depth
        else:
            depth = rng.choices(range(1, len(GOAL_TYPES)), weights=SUB_GOAL_DEPTH_WEIGHTS)[0]
            parent = rng.choice([g for g in tree if g["_depth"] == depth - 1])
        tree.append(_sub_goal(rng, spec, parent, tree, first_id + len(tree)))
    return tree


def _sub_goal(rng: random.Random, spec: RootSpec, parent: dict, tree: list[dict],
              goal_id: int) -> dict:
    depth = parent["_depth"] + 1
    name = _base_name(rng, spec.levels[depth - 1], {g["name"] for g in tree})
    template = rng.choice(SUB_GOAL_DESCRIPTIONS)
    return {"id": goal_id, "name": name,
            "description": template.format(parent=parent["name"]) if template else None,
            "type": GOAL_TYPES[depth], "parent_id": parent["id"], "_depth": depth,
            "_root": parent["_root"]}


def _base_name(rng: random.Random, names: tuple[str, ...], taken: set[str]) -> str:
    unused = [n for n in names if n not in taken]
    return rng.choice(unused or names)


def _label_repeated_names(goals: list[dict]) -> None:
    # A goal name that comes back in the same tree is the same aim taken up again later,
    # and people tell those apart by the month they started.
    seen: set[tuple[int, str]] = set()
    for goal in goals:
        month = MONTH_NAMES[goal["_created"].month - 1]
        name, attempt = goal["name"], 1
        while (goal["_root"], name) in seen:
            suffix = month if attempt == 1 else f"{month}, #{attempt}"
            name, attempt = f"{goal['name']} ({suffix})", attempt + 1
        seen.add((goal["_root"], name))
        goal["name"] = name


def _target_date(rng: random.Random, depth: int, created: datetime) -> str | None:
    if depth == 0 or rng.random() < 0.3:
        return None  # ultimate goals, and some others, are open-ended
    target = min(created + timedelta(days=rng.randint(30, 300)), YEAR_END)
    return target.strftime("%Y-%m-%d")


def _generate_activity_catalog(goals: list[dict]) -> tuple[list[dict], list[dict], list[dict]]:
    groups: list[dict] = []
    definitions: list[dict] = []
    metrics: list[dict] = []
    for root_goal in (g for g in goals if g["parent_id"] is None):
        spec, created = root_goal["_spec"], root_goal["_created"]
        for order, group_spec in enumerate(spec.groups):
            group = {"id": len(groups) + 1, "root_id": root_goal["id"], "name": group_spec.name,
                     "description": group_spec.description, "sort_order": order,
                     "created_at": _iso(created + timedelta(minutes=10 + order))}
            groups.append(group)
            for activity in group_spec.activities:
                definition = _activity_definition(group, activity, len(definitions) + 1)
                definitions.append(definition)
                metrics.extend(_metric_definitions(definition, activity, len(metrics) + 1))
    return groups, definitions, metrics


def _activity_definition(group: dict, activity: ActivitySpec, definition_id: int) -> dict:
    return {"id": definition_id, "root_id": group["root_id"], "group_id": group["id"],
            "name": activity.name, "description": activity.description,
            "created_at": group["created_at"]}


def _metric_definitions(definition: dict, activity: ActivitySpec, first_id: int) -> list[dict]:
    return [{"id": first_id + n, "activity_definition_id": definition["id"],
             "root_id": definition["root_id"], "name": metric.name, "unit": metric.unit,
             "created_at": definition["created_at"], "_spec": metric}
            for n, metric in enumerate(activity.metrics)]


def _generate_sessions(rng: random.Random, goals: list[dict], specs_by_root: dict[int, RootSpec],
                       count: int) -> list[dict]:
    sessions = []
    for session_id, started in enumerate(
            _sorted_times(rng, count, SESSIONS_FROM, SESSIONS_UNTIL), start=1):
        goal = _practised_goal(rng, goals, started)
        duration = rng.randrange(20, 125, 5)
        sessions.append({
            "id": session_id, "goal_id": goal["id"],
            "name": rng.choice(specs_by_root[goal["_root"]].session_names),
            "started_at": _iso(started), "duration_minutes": duration,
            "created_at": _iso(started + timedelta(minutes=duration)),
            "_started": started, "_root": goal["_root"]})
    return sessions


def _practised_goal(rng: random.Random, goals: list[dict], started: datetime) -> dict:
    existing = [g for g in goals if g["_created"] < started]
    # People log sessions against concrete goals far more than against ultimate ones.
    concrete = [g for g in existing if g["_depth"] >= 2]
    return rng.choice(concrete or existing)


def _generate_activity_instances(rng: random.Random, sessions: list[dict],
                                 definitions_by_root: dict[int, list[dict]], total: int,
                                 lone_session: dict | None) -> list[dict]:
    busy = [s for s in sessions if s is not lone_session]
    counts = dict(zip((s["id"] for s in busy),
                      _spread(rng, total - (lone_session is not None), len(busy), 1)))
    instances: list[dict] = []
    for session in sessions:
        count = counts.get(session["id"], 1)
        cursor = session["_started"] + timedelta(minutes=rng.randint(0, 5))
        slot_seconds = max(300, session["duration_minutes"] * 60 // count)
        for _ in range(count):
            seconds = rng.randint(slot_seconds // 2, slot_seconds)
            definition = rng.choice(definitions_by_root[session["_root"]])
            instances.append({
                "id": len(instances) + 1, "practice_session_id": session["id"],
                "activity_definition_id": definition["id"], "time_start": _iso(cursor),
                "time_stop": _iso(cursor + timedelta(seconds=seconds)),
                "duration_seconds": seconds, "created_at": _iso(cursor)})
            cursor += timedelta(seconds=seconds + rng.randint(0, 120))
    return instances


def _generate_metric_values(rng: random.Random, instances: list[dict],
                            metrics_by_definition: dict[int, list[dict]], total: int,
                            lone_instance: dict | None) -> list[dict]:
    # Not every metric is recorded every time: pick `total` (activity, metric) slots.
    slots = [(instance, metric) for instance in instances if instance is not lone_instance
             for metric in metrics_by_definition[instance["activity_definition_id"]]]
    picked = [slots[i] for i in sorted(rng.sample(range(len(slots)), total - bool(lone_instance)))]
    if lone_instance is not None:
        picked.append(
            (lone_instance, metrics_by_definition[lone_instance["activity_definition_id"]][0]))
        picked.sort(key=lambda slot: (slot[0]["id"], slot[1]["id"]))
    return [{"id": value_id, "activity_instance_id": instance["id"],
             "metric_definition_id": metric["id"], "value": _metric_value(rng, metric["_spec"]),
             "created_at": instance["time_stop"]}
            for value_id, (instance, metric) in enumerate(picked, start=1)]


def _metric_value(rng: random.Random, spec: MetricSpec) -> float:
    if spec.decimals:
        return round(rng.uniform(spec.low, spec.high), spec.decimals)
    return float(rng.randint(int(spec.low), int(spec.high)))
