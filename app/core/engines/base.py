"""The engine seam: everything Cutover does to a target that depends on the kind of database.

Plans, reconciliation, rehearsal, apply, the backup catalogue, restore, checks and reports
are written once and ask the target's engine for the rest, as Alembic's migration context
asks its dialect's `DefaultImpl` subclass. An engine is one folder under app/core/engines/
with one Engine subclass naming itself (`name = "sqlite"`); `engine_for` picks it once per
target. A connection is whatever the engine's driver gives (a DB-API connection); neutral
code only passes it back to the engine or runs SQL on it, and catches `engine.Error`.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from importlib import import_module
from typing import Any, ClassVar, TypeVar

from app.core.errors import ConfigError, NotSupported, TargetUnavailable, UsageError

T = TypeVar("T")
_ENGINES: dict[str, type[Engine]] = {}
DEFAULT_ENGINE = "sqlite"  # the engine of a target named by nothing but its location


class TimedOut(Exception):
    """An engine's `time_limit` stopped what a connection was running."""


class TargetInUse(Exception):
    """Another connection kept the target busy for longer than the engine waits."""


@dataclass(frozen=True)
class QueryProblem:
    """Why a query cannot run as one read-only statement, found from its text alone."""

    writes: bool  # it would do something other than read; otherwise it cannot be parsed
    message: str  # for the operator, with the database's own words in it


@dataclass(frozen=True)
class SnapshotTaken:
    """What a backup's snapshot wrote into its partial copies."""

    size: int
    sha256: str
    method: str  # how it was taken ("locked_copy", "backup_api", "pg_dump")
    journal_mode: str  # SQLite's, of the source; "" for an engine without one
    # Facts read at the snapshot's own moment, when the engine reads them from the source
    # rather than from the copy (PostgreSQL: counts and fingerprint in pg_dump's snapshot).
    described: dict | None = None
    # The hash was computed by reading the first copy back, so that copy needs no second read.
    hashed_from_copy: bool = False


@dataclass(frozen=True)
class Decision:
    """What reconciliation makes of one plan statement on one database."""

    action: str  # "run" | "skip" | "conflict"
    message: str = ""  # for skip and conflict, as the log shows it
    existing: str | None = None  # normalised definition of what is there (conflicts)
    planned: str | None = None  # normalised definition the plan asks for (conflicts)


class Dialect(ABC):
    """How the engine's SQL is written: where statements end, what a plan may not do, names."""

    @abstractmethod
    def statement_is_complete(self, text: str) -> bool: ...

    @abstractmethod
    def read_only_query_problem(self, sql: str) -> QueryProblem | None:
        """Why `sql`, one statement, is not a read-only query the database can compile, or
        None. Without the target: names only its schema has (tables, columns) are left to
        run time, so only the text itself is judged."""

    @abstractmethod
    def split_statements(self, text: str) -> list[tuple[str, int]]:
        """(statement, first line) of every statement in a plan's text."""

    @abstractmethod
    def forbidden_reason(self, sql: str) -> str | None:
        """Why a plan may not run `sql` in any phase, or None."""

    @abstractmethod
    def needs_own_transaction(self, sql: str) -> str | None:
        """Why `sql` cannot run inside a transaction, so that only a phase declared
        `-- phase: TITLE (no transaction)` may run it; None when a transaction can hold it."""

    @abstractmethod
    def no_transaction_phase_problem(self) -> str | None:
        """Why this engine cannot run a phase outside the migration's transaction, or None."""

    @abstractmethod
    def transaction_problems(self, statements: Sequence[str]) -> list[tuple[int, str]]:
        """(position, reason) for each of `statements`, run in order in one transaction, that
        fails because of an earlier one in that transaction."""

    @abstractmethod
    def quote_identifier(self, name: str) -> str: ...

    def prep_writer(self):
        """How a prep plan writes its statements for this dialect (table_sql, table_indexes,
        column_sql, index_sql, parents: see engines/sqlite/prepwriter.py)."""
        raise NotImplementedError

    def created_index(self, sql: str) -> str | None:
        """The name of the index `sql` creates, if it creates one (verification requires it after)."""
        return None

    def lock_risks(self, sql: str) -> Sequence:
        """What running `sql` does to the application through its locks (rewrites, scans,
        writes or reads made to wait), as objects with `to_dict()`; none when the engine
        has nothing to say."""
        return ()


# What Cutover can do to a target, beyond reading and comparing it: an engine lists those it
# implements, and the actions refuse the others before any job starts.
CAPABILITIES = ("backup", "restore", "plan", "prep", "rehearse", "migrate", "verify", "monitor", "checklist")


class Engine(ABC):
    """One target (a file, a database URL) as its engine reaches it."""

    supports: ClassVar[frozenset[str]] = frozenset(CAPABILITIES)
    investigate_damage: ClassVar[str] = ""  # what to do when the target fails a check
    copy_check_name: ClassVar[str] = "integrity check"  # how a backup copy's check is named
    # A snapshot's whole-database checks cost a pass over every byte (SQLite's quick_check), so
    # the dashboard runs them in the background; False when a snapshot has no such part.
    slow_deep_checks: ClassVar[bool] = True
    receives_moves: ClassVar[bool] = False  # can be a move's target (move_target works)

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""  # how messages name the engine: "SQLite", "PostgreSQL"
    Error: ClassVar[type[Exception]] = Exception  # the driver's base error class (DB-API)
    DatabaseError: ClassVar[type[Exception]] = Exception  # ... for errors of the database itself
    dialect: ClassVar[Dialect]

    def __init__(self, location):
        self.location = location

    @classmethod
    def location_from(cls, settings: dict):
        """The location `cutover.toml`'s checked settings describe (ConfigError when unusable):
        for a file engine, the path itself."""
        return settings["database"]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.name:
            _ENGINES[cls.name] = cls

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.location)!r})"

    # --- naming the target -----------------------------------------------------------

    @property
    @abstractmethod
    def label(self) -> str:
        """The target as pages, logs, reports, the audit and JSON show it (never a password)."""

    @property
    @abstractmethod
    def backup_name(self) -> str:
        """The name the target's backups are filed under (a backup copy's name starts with it)."""

    @abstractmethod
    def identity(self) -> tuple:
        """Equal for two engines that reach one database, however its location is spelt."""

    @abstractmethod
    def sqlalchemy_address(self) -> tuple[str, dict[str, str]]:
        """(SQLAlchemy URL, environment variables) with which a separate interpreter reaches this
        database: how an application's Alembic revisions run on a rehearsal copy or a scratch
        database. The password travels in the environment, never in the URL."""

    # --- describing the target -------------------------------------------------------

    @abstractmethod
    def snapshot(self, *, deep: bool = True, busy_timeout: float = 1.0):
        """Schema, facts and exact row counts in one consistent read (a core Snapshot);
        `deep` adds the whole-database integrity and foreign-key checks."""

    @abstractmethod
    def read_schema(self, connection, *, count_rows: bool = True):
        """The schema as a connection sees it now (a core Schema)."""

    @abstractmethod
    def compare(self, reference_schema, schema, *, left_label: str, right_label: str) -> list:
        """Every difference between two schemas this engine read (core Differences), the
        reference on the left, each saying what would bring the right side to match."""

    @abstractmethod
    def schema_text_sha256(self, connection) -> str:
        """SHA-256 of the schema exactly as the database stores it."""

    @abstractmethod
    def schema_rows(self, connection) -> list:
        """The definitions (core SchemaRows) of the database's own tables, indexes, views and
        triggers, in creation order: running them in order on an empty database rebuilds
        the schema. What the database makes by itself for another object (e.g. SQLite's
        internal objects, a virtual table's shadow tables) is left out."""

    # --- has it changed? -------------------------------------------------------------

    @abstractmethod
    def stamp(self) -> list:
        """A JSON-able stamp of the target now; any write changes it."""

    @abstractmethod
    def unchanged_since(self, stamp: list) -> bool:
        """Is the target still as `stamp` (from `stamp()`) describes it?"""

    @abstractmethod
    def may_hold_same_bytes(self, stamp: list) -> bool:
        """Touched since `stamp`, but possibly holding the same bytes (hashes then decide)."""

    # --- connections and transactions ------------------------------------------------

    @abstractmethod
    def open_readonly(self, *, busy_timeout: float = 1.0):
        """A connection that cannot write, opened without creating anything."""

    @abstractmethod
    def read_consistently(self, read: Callable[[Any], T], *, busy_timeout: float = 1.0) -> T:
        """`read(connection)` on a read-only connection, repeated if the target moved under it."""

    @abstractmethod
    def read_transaction(self, connection) -> AbstractContextManager:
        """One consistent view for everything read inside; always ends without writing."""

    @abstractmethod
    def open_for_writing(self, *, busy_timeout: float):
        """A connection ready for `write_transaction`; refuses what is not an existing target."""

    @abstractmethod
    def write_transaction(self, connection) -> AbstractContextManager:
        """The write lock up front, COMMIT at the end, ROLLBACK on any exception."""

    @abstractmethod
    def settle(self, *, busy_timeout: float) -> bool:
        """Finish what a writer that died left behind (a hot journal); whether there was any."""

    # --- checks ----------------------------------------------------------------------

    @abstractmethod
    def quick_check(self, connection, *, stopped_is_answer: bool = True) -> str:
        """'ok' or the first problems of a fast whole-database integrity check."""

    @abstractmethod
    def integrity_problems(self, connection, limit: int) -> list[str]:
        """The full integrity check: ['ok'] or up to `limit` problems."""

    def watched_tables(self, connection) -> list[tuple[str, str | None, list[str]]]:
        """(table, the key that tells newer rows apart or None, nullable columns), for the new-rows watch."""
        raise NotImplementedError

    def rows_after(self, connection, table: str, key: str, after, columns: list[str]) -> tuple[int, Any, dict]:
        """(rows whose `key` is above `after` (all when None), the highest key, NULLs per column)."""
        raise NotImplementedError

    def integrity_scope(self, connection) -> str | None:
        """What `integrity_problems` covers when that is less than the whole database, in words."""
        return None

    @abstractmethod
    def foreign_key_violations(self, connection):
        """Every foreign-key violation, as a comparable core Violations."""

    @abstractmethod
    def time_limit(self, connection, seconds: float | None) -> AbstractContextManager:
        """Interrupt what `connection` runs after `seconds` (raising TimedOut)."""

    @abstractmethod
    def reads_only(self, connection) -> AbstractContextManager:
        """Inside, the connection refuses anything but reading (an operator's assertion)."""

    @abstractmethod
    def rolled_back_row_writes(self, connection) -> AbstractContextManager:
        """A write transaction, with foreign keys enforced, in which only row writes are
        allowed and that is always rolled back (a smoke test)."""

    @abstractmethod
    def changes(self, connection) -> int | None:
        """Rows changed so far on `connection`, by cascades and triggers too; None when the
        driver's rowcount of each statement is always exact and nothing else is kept."""

    def transaction_opened_line(self) -> str:
        """The log line saying the migration's transaction is open, and what holds it safe."""
        return "Transaction open: nobody sees a change before COMMIT"

    def commit_point(self, connection) -> dict | None:
        """Read inside the migration just before COMMIT: where the commit lands (a recovery target)."""
        return None

    def outside_transaction(self, connection) -> AbstractContextManager:
        """How one statement of a phase declared `(no transaction)` runs: on its own, committed."""
        raise NotImplementedError

    def read_schema_exactly(self, connection):
        """read_schema with every table counted exactly (never an estimate): a rehearsal's ledger."""
        return self.read_schema(connection)

    def integrity_in_transaction(self, connection) -> str | None:
        """'ok' or problems of the whole-database check a migration runs before and after its
        statements, inside its transaction; None when the engine has none worth running there."""
        return self.quick_check(connection, stopped_is_answer=False)

    def decide(self, connection, sql: str) -> Decision | None:
        """Reconcile one plan statement with the database: run, skip or conflict. None: the
        schema-text rules of app/core/reconcile.py decide (SQLite's schema is its CREATE texts)."""
        return None

    def schema_objects(self, connection) -> list:
        """Every index, trigger and view (core SchemaObjects), with what identifies it: what a
        plan must not lose without saying so (losses.py)."""
        raise NotImplementedError

    def object_names(self, connection) -> set[tuple[str, str]]:
        """(kind, lower-case name) of every table, view, index and trigger now."""
        raise NotImplementedError

    # Prep tries its statements on `schema_clone` (a copy of the live schema) rather than on the
    # inspected schema rebuilt from its rows: for a server, whose catalog is not a list of rows.
    clones_live_schema: ClassVar[bool] = False

    def schema_clone(self, *, busy_timeout: float) -> AbstractContextManager:
        """(connection, warnings): a private database holding the target's schema and no rows,
        dropped on exit, on which reconciliation tries the plan. By default the target's
        `schema_rows` rebuilt on a `schema_scratch`, tables first."""
        return _rebuilt_schema(self, busy_timeout)

    def rehearsal_copy(self, *, workdir, busy_timeout: float, say: Callable[[str], None]) -> AbstractContextManager:
        """An Engine on a private copy of the target's schema and rows (one consistent moment),
        removed on exit whatever happens; `workdir` has room for a copy."""
        raise NotImplementedError

    # --- moving rows to another engine (app/core/move) ----------------------------------

    def move_source(self, *, busy_timeout: float = 1.0):
        """A read-only reader of this database's tables and rows, streamed (a move's source):
        `tables()`, `rows(table, columns)`, `batches(table, columns)`, `sha256()`, `close()`."""
        raise NotSupported(f"Cutover moves rows out of SQLite files only; {self.label} is a {self.title} database.")

    def move_target(self):
        """What a move writes through (`describe()`, `load()`, `row_counts(tables)`)."""
        raise NotSupported(f"Cutover moves rows into PostgreSQL databases only; {self.label} is a {self.title} one.")

    def check_new_quarantine(self) -> None:
        """Refuse (CutoverError) unless this location can become a new quarantine file."""
        raise NotSupported(f"A quarantine is a new SQLite file; {self.label} is not one.")

    def new_quarantine(self):
        """A quarantine file being written here: `add(...)`, `publish()`, `discard()`."""
        raise NotSupported(f"A quarantine is a new SQLite file; {self.label} is not one.")

    @abstractmethod
    def is_interrupt(self, exc: Exception) -> bool:
        """Was the statement stopped by `time_limit` rather than failing on its own?"""

    # --- a schema scratch: trying DDL away from the target ---------------------------

    @abstractmethod
    def schema_scratch(self) -> AbstractContextManager:
        """A connection to a new, empty, private database of this engine's kind, dropped on
        exit: reconciliation rebuilds a schema on it (from `schema_rows`) and runs a plan
        there; a statement that fails raises `Error`. Nothing reaches the target. It may
        be opened once per plan statement, so it must be cheap (SQLite: in memory; a
        server: e.g. a scratch schema)."""

    # --- copies ----------------------------------------------------------------------

    @abstractmethod
    def empty_database(self, *, workdir=None) -> AbstractContextManager:
        """An Engine on a new, empty database of this kind beside the target (SQLite: a file in a
        private folder; a server: a scratch database on the target's server), removed on exit:
        where an application's revisions are run from the base to build the schema a stamp
        stands for."""

    @abstractmethod
    def scratch_copy(self, destination, *, busy_timeout: float) -> None:
        """A private consistent copy at `destination` to simulate statements on."""

    @abstractmethod
    def backup_snapshot(self, copies, *, method: str | None, busy_timeout: float, progress, log,
                        complete: Callable[[list], None], fan_out):
        """Write one consistent moment of the target into the backup's partial copies.

        `complete(paths)` is told as soon as copies are whole (their checks may start);
        `fan_out(copies, size, progress)` hashes the first copy into the others when the
        engine wrote only the first. Returns what was taken (size, sha256, method, mode)."""

    # --- backups: the catalogue (folders, names, manifests, publishing) is neutral; what a
    # copy is, what it holds and whose it is are the engine's ------------------------------

    @classmethod
    def holds_target_bytes(cls, method: str) -> bool:
        """Is a backup taken by `method` a byte-for-byte copy of the target (so that equal
        hashes prove the target unchanged)?"""
        return False

    @abstractmethod
    def check_backup_source(self) -> None:
        """Refuse (TargetUnavailable) a target that cannot be backed up, before any file exists."""

    @abstractmethod
    def backup_size(self) -> int:
        """Bytes a backup copy may take at most: what each backup folder must have free."""

    @abstractmethod
    def source_record(self) -> tuple[str, str | None]:
        """(source, source_realpath) a manifest records: how this target is named, and the
        name that survives other spellings (a file's real path)."""

    @abstractmethod
    def is_source_of(self, source: str, source_realpath: str | None) -> bool:
        """Was a backup whose manifest records these taken from this very target?"""

    @abstractmethod
    def backup_facts(self, taken: SnapshotTaken, copy_path) -> dict:
        """The manifest's `schema_fingerprint`, `row_counts` and engine fields for a snapshot
        just written to `copy_path` (BackupError when the source proved damaged)."""

    @abstractmethod
    def check_backup_copy(self, path) -> str:
        """'ok', or what is wrong with a backup copy as a whole (its integrity, not its content)."""

    @abstractmethod
    def read_backup_copy(self, path):
        """What a backup copy holds: an object with row_counts() and schema.fingerprint()."""

    @abstractmethod
    def quick_check_copy(self) -> str:
        """quick_check of a private copy of ours (a backup copy, a restore's replacement)."""

    # --- putting a restored copy in place ---------------------------------------------

    side_files: ClassVar[tuple[str, ...]] = ()  # files beside the target that belong to it
    safety_side_files: ClassVar[tuple[str, ...]] = ("",)  # what a safety copy keeps ("" = the target)

    target_is_file: ClassVar[bool] = True  # a restore then swaps files (restore.py); else the engine's

    def replace_with_backup(self, copy_path, manifest, *, say) -> None:
        """Put a verified backup copy in place of the target, all or nothing (engines whose
        target is not a file; for a file, restore.py swaps it itself)."""
        raise NotImplementedError

    @abstractmethod
    def set_journal_mode(self, mode: str) -> str:
        """Switch a replacement to the journal mode its backup recorded; the mode now."""

    @abstractmethod
    def fold_side_files(self, *, busy_timeout: float) -> str | None:
        """Make the target stand alone before a swap (TargetInUse when busy); the reason it
        cannot be opened at all, or None."""

    @abstractmethod
    def holders(self) -> list:
        """Processes that hold the target open (core ProcessInfo)."""

    # --- errors ----------------------------------------------------------------------

    @abstractmethod
    def error_reason(self, exc: Exception) -> str:
        """One word for a driver error: locked, corrupt, unreadable, needs_recovery or error."""

    @abstractmethod
    def unavailable(self, exc: Exception, *, busy_timeout: float | None = None) -> TargetUnavailable:
        """A driver error met while reading the target, as the operator should read it."""


SCHEMA_ROW_ORDER = ("table", "index", "view", "trigger")


def rebuild_schema(engine: Engine, connection, rows) -> list[str]:
    """Run `rows` (SchemaRows) on a schema scratch, tables first so that indexes, views and
    triggers find them whatever their order; what could not be rebuilt, in words."""
    warnings = []
    for row in sorted(rows, key=lambda row: SCHEMA_ROW_ORDER.index(row.type)):
        try:
            connection.execute(row.sql)
        except engine.Error as exc:
            # e.g. a virtual table whose module this SQLite lacks: reconciliation still
            # works for everything else, and says what it could not reproduce.
            warnings.append(f"could not reproduce {row.type} {row.name} on the schema copy: {exc}")
    return warnings


@contextmanager
def _rebuilt_schema(engine: Engine, busy_timeout: float):
    try:
        rows = engine.read_consistently(engine.schema_rows, busy_timeout=busy_timeout)
    except engine.Error as exc:
        raise engine.unavailable(exc, busy_timeout=busy_timeout) from None
    with engine.schema_scratch() as connection:
        yield connection, rebuild_schema(engine, connection, rows)


class DifferentEngines(UsageError):
    """Two targets of different engines: their schemas are not compared as if alike."""

    code = "different_engines"


def compare_schemas(left: Engine, right: Engine, left_schema, right_schema, *,
                    left_label: str, right_label: str) -> list:
    """The differences from `left` (the reference) to `right`, by their engine's rules."""
    if left.name != right.name:
        raise DifferentEngines(
            f"{left_label} is a {left.title} database and {right_label} a {right.title} one: Cutover "
            "compares schemas of the same engine only (each engine's types and rules differ). "
            f"Compare {right_label} with an environment of its own engine.",
            left_engine=left.name, right_engine=right.name)
    return right.compare(left_schema, right_schema, left_label=left_label, right_label=right_label)


def engine_for(location, kind: str = DEFAULT_ENGINE) -> Engine:
    """The engine of one target, picked once: pass the result along rather than the location."""
    if isinstance(location, Engine):
        return location
    return engine_class(kind)(location)


def engine_class(kind: str) -> type[Engine]:
    if kind not in _ENGINES:
        # Each engine's folder registers its class when imported.
        try:
            import_module(f"app.core.engines.{kind}")
        except ModuleNotFoundError:
            pass
    try:
        return _ENGINES[kind]
    except KeyError:
        raise ConfigError(f"Cutover has no {kind!r} engine; known: {', '.join(sorted(_ENGINES))}.") from None


def registered_engines() -> Iterator[str]:
    return iter(sorted(_ENGINES))
