"""Load `cutover.toml`: the environments, their backups, migration plans, checks, app hooks
and the production checklist.

The file is validated completely at start-up: an operator who misspells a key should learn
it before a migration, not during one. Every error names the file and the key.
"""
from __future__ import annotations

import difflib
import os
import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from app.core.assertions import validate_checks_config
from app.core.checklist import Checklist, default_checklist, parse_checklist
from app.core.engines import Engine, engine_for
from app.core.engines.base import engine_class
from app.core.errors import ConfigError
from app.core.fsutil import FileIdentity, file_identity
from app.core.numbers import LARGEST_WHOLE, Accepted, config_number

ENVIRONMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
TOP_LEVEL_KEYS = {"environments", "migration", "checks", "verification", "checklist"}
VERIFICATION_KEYS = {"smoke", "accepted_differences", "declared_row_changes", "monitor_hours",
                     "monitor_interval_minutes", "check_time_limit_seconds"}
DIFFERENCE_OBJECTS = ("table", "column", "index", "trigger", "view")
ENVIRONMENT_KEYS = {"database", "url", "password_env", "schemas", "online", "reference", "backup_dirs",
                    "description", "app"}
POSTGRESQL_ONLY_KEYS = ("password_env", "schemas", "online")
MIGRATION_KEYS = {"plans", "lock_timeout_seconds", "statement_timeout_seconds", "alembic", "alembic_python"}
# How long a PostgreSQL migration's statement may queue for a lock (a queued ALTER stalls every
# reader behind it) and may run: a day at most, and never 0, which PostgreSQL reads as "forever".
MIGRATION_NUMBERS = {
    "lock_timeout_seconds": Accepted(0, 24 * 3600, lowest_excluded=True, unit="seconds"),
    "statement_timeout_seconds": Accepted(0, 24 * 3600, lowest_excluded=True, unit="seconds"),
}
ENVIRONMENT_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
APP_KEYS = {"health_url", "process_patterns", "start_command", "log_file", "log_error_patterns", "port"}
# Every number in the file, with what it accepts (app/core/numbers.py says why each is checked).
VERIFICATION_NUMBERS = {
    "monitor_hours": Accepted(0, 24 * 366, lowest_excluded=True, unit="hours"),  # a window of at most a year
    "monitor_interval_minutes": Accepted(0, 24 * 60, lowest_excluded=True, unit="minutes"),  # a check a day at least
    # The longest a check may hold its read transaction (which, in rollback-journal mode, blocks the app's writers).
    "check_time_limit_seconds": Accepted(0, 24 * 3600, lowest_excluded=True, unit="seconds"),
}
ROW_CHANGE = Accepted(-LARGEST_WHOLE, LARGEST_WHOLE, whole=True)
PORT = Accepted(1, 65535, whole=True, what="a TCP port number")


@dataclass(frozen=True)
class AppHooks:
    """How to find the application that uses a database (all optional)."""

    health_url: str | None = None
    process_patterns: tuple[str, ...] = ()
    start_command: tuple[str, ...] = ()
    log_file: Path | None = None
    log_error_patterns: tuple[str, ...] = ("ERROR", "Traceback", "CRITICAL")
    port: int | None = None


@dataclass(frozen=True)
class Environment:
    """One configured target: where it is (`location`) and which engine reaches it."""

    name: str
    location: Path | str  # a SQLite file's path; an engine whose target is no file has its own form
    reference: bool = False
    backup_dirs: tuple[Path, ...] = ()
    # False when cutover.toml names no backup_dirs and the default backups/<name> is used: that
    # one folder Cutover may create itself. A configured folder that is missing (an unmounted
    # disk) is an error, never created.
    backup_dirs_configured: bool = True
    description: str = ""
    app: AppHooks = field(default_factory=AppHooks)
    engine_name: str = "sqlite"  # `database = "x.db"` names a SQLite file, `url = "postgresql://..."` a database
    online: bool = False  # the application may stay connected during a migration (PostgreSQL)
    _target: Engine = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        # The engine is picked once per target (engine_for), here, not at every use.
        object.__setattr__(self, "_target", engine_for(self.location, self.engine_name))

    @property
    def target(self) -> Engine:
        """This environment's database as its engine reaches it: the one way to touch it."""
        return self._target

    @property
    def label(self) -> str:
        """The database as pages, logs, reports, the audit and JSON show it."""
        return self._target.label

    def to_dict(self) -> dict:
        where = {"database": self.label} if self.engine_name == "sqlite" else {"url": self.label}
        return {
            "name": self.name,
            "engine": self.engine_name,
            **where,
            "reference": self.reference,
            "backup_dirs": [str(p) for p in self.backup_dirs],
            "description": self.description,
        }


@dataclass(frozen=True)
class Verification:
    """How verification and the post-migration watch run ([verification] in cutover.toml)."""

    smoke: tuple[str, ...] = ()  # writes run in a transaction that is always rolled back
    # Differences from the reference that are known and fine: (object, table, name).
    accepted_differences: tuple[tuple[str, str | None, str], ...] = ()
    declared_row_changes: tuple[tuple[str, int], ...] = ()  # table -> expected row-count delta
    monitor_hours: float = 24.0
    monitor_interval_minutes: float = 15.0
    check_time_limit_seconds: float = 60.0

    @property
    def check_time_limit(self) -> float:
        return self.check_time_limit_seconds


@dataclass(frozen=True)
class Workspace:
    """Everything the configuration file says, with paths resolved."""

    config_path: Path
    environments: tuple[Environment, ...]
    plans: tuple[Path, ...] = ()
    checks: tuple[tuple[str, str], ...] = ()
    verification: Verification = field(default_factory=Verification)
    checklist: Checklist = field(default_factory=default_checklist)
    alembic: AlembicSettings | None = None  # [migration] alembic: the application's revisions are the plan

    @property
    def reference(self) -> Environment | None:
        return next((env for env in self.environments if env.reference), None)

    def environment(self, name: str) -> Environment | None:
        return next((env for env in self.environments if env.name == name), None)

    def names(self) -> list[str]:
        return [env.name for env in self.environments]


def load_workspace(path: Path | str) -> Workspace:
    path = Path(path).absolute()
    data = _read_toml(path)
    _reject_unknown(path, data, TOP_LEVEL_KEYS, prefix="")
    migration = _table(path, data, "migration")
    _reject_unknown(path, migration, MIGRATION_KEYS, prefix="migration.")
    environments = _parse_environments(path, data.get("environments"), _waits(path, migration))
    plans = tuple(_resolve(path, p, "migration.plans") for p in _string_list(path, migration, "plans", "migration.plans"))
    _reject_repeated_plans(path, plans)
    checks = _parse_checks(path, _table(path, data, "checks"))
    validate_checks_config(path, checks)
    verification = _parse_verification(path, _table(path, data, "verification"))
    checklist = parse_checklist(path, _table(path, data, "checklist"), plans, lambda p: _resolve(path, p, "checklist"))
    return Workspace(config_path=path, environments=environments, plans=plans, checks=checks,
                     verification=verification, checklist=checklist,
                     alembic=_alembic_settings(path, migration, plans))


def _read_toml(path: Path) -> dict:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found. Create it, or unset CUTOVER_CONFIG to use the demo workspace.") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a configuration file.") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration file ({exc.strerror}).") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: the configuration file is not UTF-8 text.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {exc}.") from None
    except ValueError:  # Python refuses to read an integer of more than 4300 digits
        raise ConfigError(f"{path}: cannot be read: a number in it has more than 4300 digits. "
                          "No setting takes one that long.") from None


def _reject_unknown(path: Path, table: dict, allowed: set[str], prefix: str) -> None:
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, sorted(allowed), n=1)
            hint = f" Did you mean '{prefix}{close[0]}'?" if close else f" Known keys: {', '.join(sorted(allowed))}."
            raise ConfigError(f"{path}: unknown key '{prefix}{key}'.{hint}")


def _table(path: Path, data: dict, key: str, label: str | None = None) -> dict:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: '{label or key}' must be a table ([{label or key}]).")
    return value


def _string_list(path: Path, data: dict, key: str, label: str) -> list[str]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise ConfigError(f"{path}: '{label}' must be a list of non-empty strings.")
    return value


def _resolve(config_path: Path, value: str, label: str) -> Path:
    if "\x00" in value:  # TOML can spell one (\u0000); no file name can hold it
        raise ConfigError(f"{config_path}: '{label}' cannot hold a NUL character (\\u0000): no file has that name.")
    candidate = Path(value).expanduser()
    return candidate if candidate.is_absolute() else config_path.parent / candidate


def _waits(path: Path, migration: dict) -> dict:
    """[migration]'s lock and statement timeouts, in seconds (None: no statement limit)."""
    waits = {"lock_timeout": 5.0, "statement_timeout": None}
    for key, accepted in MIGRATION_NUMBERS.items():
        if key in migration:
            waits[key.removesuffix("_seconds")] = config_number(path, f"migration.{key}", migration[key], accepted)
    return waits


def _parse_environments(path: Path, raw, waits: dict) -> tuple[Environment, ...]:
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{path}: no environments configured. Add at least one [environments.NAME] table with database = \"path\".")
    environments = tuple(_parse_environment(path, name, body, waits) for name, body in raw.items())
    references = [env.name for env in environments if env.reference]
    if len(references) > 1:
        raise ConfigError(
            f"{path}: 'environments.{references[1]}.reference': more than one reference environment "
            f"({', '.join(references)}). Mark exactly one, normally development."
        )
    _reject_shared_databases(path, environments)
    for env in environments:
        _reject_symlinked_database(path, env)
        _reject_repeated_backup_dirs(path, env)
    return environments


def _parse_environment(path: Path, name: str, body, waits: dict) -> Environment:
    label = f"environments.{name}"
    if not ENVIRONMENT_NAME.match(name):
        raise ConfigError(f"{path}: '{label}': environment names use letters, digits, '.', '_' and '-' only.")
    if not isinstance(body, dict):
        raise ConfigError(f"{path}: '{label}' must be a table ([{label}]).")
    _reject_unknown(path, body, ENVIRONMENT_KEYS, prefix=f"{label}.")
    engine_name, location = _target(path, body, label, waits)
    reference = body.get("reference", False)
    if not isinstance(reference, bool):
        raise ConfigError(f"{path}: '{label}.reference' must be true or false.")
    return Environment(
        name=name,
        location=location,
        engine_name=engine_name,
        online=_flag(path, body, "online", label),
        reference=reference,
        backup_dirs=tuple(_resolve(path, d, f"{label}.backup_dirs") for d in _backup_dirs(path, body, name)),
        backup_dirs_configured="backup_dirs" in body,
        description=str(body.get("description", "")),
        app=_parse_app(path, _table(path, body, "app", f"{label}.app"), label),
    )


def _target(path: Path, body: dict, label: str, waits: dict) -> tuple[str, object]:
    """(engine, location): exactly one of `database = "file.db"` (SQLite) or `url = "postgresql://..."`."""
    given = [key for key in ("database", "url") if key in body]
    if not given:
        raise ConfigError(f"{path}: '{label}.database' is missing: give the path of the SQLite file, or "
                          "url = \"postgresql://user@host:port/database\" for a PostgreSQL database.")
    if len(given) == 2:
        raise ConfigError(f"{path}: '{label}' gives both 'database' and 'url': an environment is one "
                          "database, either a SQLite file (database) or a PostgreSQL database (url).")
    if given == ["database"]:
        extra = [key for key in POSTGRESQL_ONLY_KEYS if key in body]
        if extra:
            raise ConfigError(f"{path}: '{label}.{extra[0]}' applies to PostgreSQL environments (url = ...) only.")
        return "sqlite", _resolve(path, _text(path, body, "database", label, "the path of the SQLite file"),
                                  f"{label}.database")
    return "postgresql", _postgresql_location(path, body, label, waits)


def _postgresql_location(path: Path, body: dict, label: str, waits: dict):
    settings = {"url": _text(path, body, "url", label, "postgresql://user@host:port/database"), **waits}
    if "password_env" in body:
        variable = body["password_env"]
        if not isinstance(variable, str) or not ENVIRONMENT_VARIABLE.match(variable):
            raise ConfigError(f"{path}: '{label}.password_env' must name an environment variable (letters, "
                              "digits and _), the one holding the password: never the password itself.")
        settings["password_env"] = variable
    if "schemas" in body:
        settings["schemas"] = tuple(_string_list(path, body, "schemas", f"{label}.schemas")) or None
        if settings["schemas"] is None:
            raise ConfigError(f"{path}: '{label}.schemas' names no schema: leave it out for [\"public\"].")
    try:
        return engine_class("postgresql").location_from(settings)
    except ConfigError as exc:
        raise ConfigError(f"{path}: '{label}.url': {exc.message}") from None


def _text(path: Path, body: dict, key: str, label: str, expected: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{path}: '{label}.{key}' is missing: give {expected}.")
    return value


def _flag(path: Path, body: dict, key: str, label: str) -> bool:
    value = body.get(key, False)
    if not isinstance(value, bool):
        raise ConfigError(f"{path}: '{label}.{key}' must be true or false.")
    return value


def _backup_dirs(path: Path, body: dict, name: str) -> list[str]:
    dirs = _string_list(path, body, "backup_dirs", f"environments.{name}.backup_dirs")
    return dirs or [f"backups/{name}"]


def _reject_shared_databases(path: Path, environments: tuple[Environment, ...]) -> None:
    """Two environments on one file would let a migration of one change the other (and the
    schema diff compare a file with itself). One file is one device and inode, whatever the
    paths: a hard link, a symbolic link, `..` or another mount of the folder."""
    seen: dict[tuple, Environment] = {}
    for later in environments:
        earlier = seen.setdefault(later.target.identity(), later)
        if earlier is not later and later.engine_name == "sqlite":
            raise ConfigError(
                f"{path}: 'environments.{later.name}.database' names the same file as environment "
                f"'{earlier.name}' ({later.label} and {earlier.label} are one file: the same path, a hard "
                "link, a symbolic link or another path to it). Each environment needs its own database."
            )
        if earlier is not later:
            raise ConfigError(
                f"{path}: 'environments.{later.name}.url' names the same database as environment "
                f"'{earlier.name}' ({later.label} and {earlier.label}). Each environment needs its own database."
            )


def _reject_symlinked_database(path: Path, env: Environment) -> None:
    """A restore writes the new database under the configured name: through a symbolic link it
    would replace the link, not the file, so restore refuses one. Found now, not after a migration."""
    if env.engine_name == "sqlite" and os.path.islink(env.location):
        raise ConfigError(
            f"{path}: 'environments.{env.name}.database' ({env.label}) is a symbolic link to "
            f"{os.path.realpath(env.location)}: a restore would replace the link, not the database, so a "
            "migration of it would have no way back. Configure the database's real path (a symbolic link "
            "to its folder is fine)."
        )


def _reject_repeated_backup_dirs(path: Path, env: Environment) -> None:
    pair = _first_same_file([(folder, folder) for folder in env.backup_dirs])
    if pair:
        earlier, later = pair
        raise ConfigError(
            f"{path}: 'environments.{env.name}.backup_dirs' names one folder twice ({earlier} and {later}): "
            "a backup would count two copies where there is one. List each backup folder once."
        )


def _reject_repeated_plans(path: Path, plans: tuple[Path, ...]) -> None:
    pair = _first_same_file([(plan, plan) for plan in plans])
    if pair:
        earlier, later = pair
        raise ConfigError(
            f"{path}: 'migration.plans' names one file twice ({earlier} and {later}): its statements would "
            "run twice. List each plan once."
        )


def _first_same_file(items: list[tuple[Path, object]]) -> tuple[object, object] | None:
    """(earlier, later): the first item whose path is the same file as an earlier item's."""
    seen: dict[FileIdentity, object] = {}
    for item_path, item in items:
        identity = file_identity(item_path)
        if identity in seen:
            return seen[identity], item
        seen[identity] = item
    return None


def _parse_app(path: Path, raw: dict, env_label: str) -> AppHooks:
    label = f"{env_label}.app"
    _reject_unknown(path, raw, APP_KEYS, prefix=f"{label}.")
    port = raw.get("port")
    if port is not None:
        config_number(path, f"{label}.port", port, PORT)
    health_url = raw.get("health_url")
    if health_url is not None and not (isinstance(health_url, str) and health_url.startswith(("http://", "https://"))):
        raise ConfigError(f"{path}: '{label}.health_url' must be an http:// or https:// URL.")
    log_file = raw.get("log_file")
    if log_file is not None and not isinstance(log_file, str):
        raise ConfigError(f"{path}: '{label}.log_file' must be a path.")
    patterns = _string_list(path, raw, "log_error_patterns", f"{label}.log_error_patterns")
    return AppHooks(
        health_url=health_url,
        process_patterns=tuple(_string_list(path, raw, "process_patterns", f"{label}.process_patterns")),
        start_command=tuple(_string_list(path, raw, "start_command", f"{label}.start_command")),
        log_file=_resolve(path, log_file, f"{label}.log_file") if log_file else None,
        log_error_patterns=tuple(patterns) or AppHooks.log_error_patterns,
        port=port,
    )


def _parse_checks(path: Path, raw: dict) -> tuple[tuple[str, str], ...]:
    checks = []
    for name, query in raw.items():
        if not isinstance(query, str) or not query.strip():
            raise ConfigError(f"{path}: 'checks.{name}' must be an SQL query string.")
        checks.append((name, query.strip()))
    return tuple(checks)


def _parse_verification(path: Path, raw: dict) -> Verification:
    _reject_unknown(path, raw, VERIFICATION_KEYS, prefix="verification.")
    numbers = {key: config_number(path, f"verification.{key}", raw[key], accepted)
               for key, accepted in VERIFICATION_NUMBERS.items() if key in raw}
    changes = raw.get("declared_row_changes", {})
    if not isinstance(changes, dict):
        raise ConfigError(f"{path}: 'verification.declared_row_changes' must be a table of table = whole number.")
    for table, change in changes.items():
        config_number(path, f"verification.declared_row_changes.{table}", change, ROW_CHANGE)
    return Verification(
        smoke=tuple(_string_list(path, raw, "smoke", "verification.smoke")),
        accepted_differences=tuple(_accepted_difference(path, text) for text in
                                   _string_list(path, raw, "accepted_differences", "verification.accepted_differences")),
        declared_row_changes=tuple(changes.items()),
        **numbers,
    )


def _accepted_difference(path: Path, text: str) -> tuple[str, str | None, str]:
    """'column goals.target_date', 'index goals.idx_x' or 'table audit_log'."""
    kind, _, name = text.partition(" ")
    if kind not in DIFFERENCE_OBJECTS or not name:
        raise ConfigError(f"{path}: 'verification.accepted_differences' entry {text!r} must read "
                          "'OBJECT NAME' with OBJECT one of table, column, index, trigger, view "
                          "(e.g. 'column goals.target_date').")
    if kind in ("column", "index") and "." in name:
        table, _, item = name.partition(".")
        return kind, table, item
    return kind, None, name


# --------------------------------------------------------------------------- [migration] alembic


@dataclass(frozen=True)
class AlembicSettings:
    """The application's Alembic project: its alembic.ini and the interpreter that imports its revisions."""

    ini: Path
    python: str  # an interpreter path; Cutover's own by default

    def to_dict(self) -> dict:
        return {"ini": str(self.ini), "python": self.python}


def _alembic_settings(path: Path, migration: dict, plans: tuple[Path, ...]) -> AlembicSettings | None:
    if "alembic" not in migration:
        if "alembic_python" in migration:
            raise ConfigError(f"{path}: 'migration.alembic_python' needs 'migration.alembic' (the application's "
                              "alembic.ini) beside it.")
        return None
    if plans:
        raise ConfigError(f"{path}: [migration] names both 'plans' and 'alembic': the application's Alembic "
                          "revisions are the plan; remove one of them.")
    ini = _text(path, migration, "alembic", "migration", "the path of the application's alembic.ini")
    python = migration.get("alembic_python")
    if python is not None:
        python = _text(path, migration, "alembic_python", "migration", "the path of a Python interpreter")
        python = str(_resolve(path, python, "migration.alembic_python")) if "/" in python else python
    return AlembicSettings(_resolve(path, ini, "migration.alembic"), python or sys.executable)
