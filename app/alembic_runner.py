"""Reads and runs an application's Alembic revisions for Cutover, in the application's interpreter.

Run as a script (`ALEMBIC_PYTHON alembic_runner.py < request.json`), never imported by Cutover:
revision modules may import the application's own modules, so they are loaded by the
interpreter that can import them (`[migration] alembic_python`). It imports nothing from
Cutover and answers one JSON document on stdout.

The application's env.py is never run: it decides where to connect (often DATABASE_URL, which
may point at production). This script builds its own MigrationContext on the connection
Cutover names and calls each revision's upgrade() itself.

Commands (the request's "command"):
  graph    every revision: id, down revisions, message, file, branch point, merge; the heads
  render   the SQL of each revision from `from` to `to`, offline (as_sql, literal values);
           a revision that cannot be rendered offline (it reads the database) says so
  capture  runs the revisions on the database at `url` (a private copy, or an empty scratch
           database: `create_version_schema`) and records each statement executed, values
           rendered as literals
"""
from __future__ import annotations

import datetime
import decimal
import json
import re
import sys
import traceback
import uuid
from contextlib import contextmanager
from pathlib import Path

try:
    from alembic.config import Config
    from alembic.operations import Operations
    from alembic.runtime.environment import EnvironmentContext
    from alembic.runtime.migration import HeadMaintainer, MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine, event, text
    from sqlalchemy.schema import DDLElement
except ImportError as exc:  # the interpreter exists but cannot run Alembic
    print(json.dumps({"ok": False, "error": {"kind": "no_alembic", "message": str(exc)}}))
    sys.exit(0)

_READS = re.compile(r"^\s*(select|pragma\s+[^=]*$|show|with\b(?!.*\b(insert|update|delete)\b))",
                    re.IGNORECASE | re.DOTALL)


class Refused(Exception):
    def __init__(self, kind: str, message: str, **details):
        super().__init__(message)
        self.kind, self.message, self.details = kind, message, details


# --------------------------------------------------------------------------- graph


def load_script(ini: str) -> tuple[Config, ScriptDirectory, dict]:
    config = Config(ini)
    try:
        location = config.get_main_option("script_location")
    except Exception as exc:  # configparser's errors: the file is not an ini file
        raise Refused("ini", f"{ini} cannot be read as an alembic.ini file: {exc}") from None
    if not location:
        raise Refused("ini", f"{ini} names no script_location in its [alembic] section: is it the "
                             "application's alembic.ini?")
    try:
        script = ScriptDirectory.from_config(config)
    except Exception as exc:
        raise Refused("ini", f"{ini}: the revision folder cannot be opened: {exc}") from None
    settings = {"version_table": config.get_main_option("version_table") or "alembic_version",
                "version_table_schema": config.get_main_option("version_table_schema") or None}
    return config, script, settings


def revisions(script: ScriptDirectory) -> list:
    """Every revision, importing each module; an import error names the file."""
    try:
        return list(script.walk_revisions("base", "heads"))
    except Exception as exc:
        raise Refused("import", f"{_failing_file(exc, script)}: {type(exc).__name__}: {exc}",
                      file=_failing_file(exc, script)) from None


def _failing_file(exc: Exception, script: ScriptDirectory) -> str:
    folders = [str(Path(folder).resolve()) for folder in script._version_locations]
    files = [frame.filename for frame in traceback.extract_tb(exc.__traceback__)]
    inside = [name for name in files if any(str(Path(name).resolve()).startswith(f) for f in folders)]
    if inside:
        return inside[-1]
    return getattr(exc, "filename", None) or "a revision file"


def graph(request: dict) -> dict:
    _, script, settings = load_script(request["ini"])
    found = revisions(script)
    return {
        **settings,
        "heads": list(script.get_heads()),
        "revisions": [{
            "id": r.revision,
            "down_revisions": list(r._all_down_revisions),
            "message": (r.doc or "").strip(),
            "file": r.path,
            "branch_point": r.is_branch_point,
            "merge": r.is_merge_point,
        } for r in reversed(found)],
    }


# --------------------------------------------------------------------------- running


class Collector:
    """An output buffer that keeps each statement Alembic writes in --sql mode."""

    def __init__(self):
        self.items: list[str] = []

    def write(self, text: str) -> None:
        text = text.strip()
        if text and not text.startswith("-- Running"):
            self.items.append(text)

    def flush(self) -> None:
        pass


@contextmanager
def migration_context(request: dict, connection=None, buffer=None):
    """Alembic's own contexts (`op` and `alembic.context` both work in revisions), configured by
    Cutover, not by env.py."""
    config, script, settings = load_script(request["ini"])
    revisions(script)
    options = {"version_table": request.get("version_table") or settings["version_table"],
               "version_table_schema": request.get("version_table_schema") or settings["version_table_schema"]}
    with EnvironmentContext(config, script, as_sql=connection is None) as environment:
        if connection is None:
            environment.configure(dialect_name=request["dialect"], output_buffer=buffer, literal_binds=True,
                                  transactional_ddl=False, **options)
        else:
            environment.configure(connection=connection, **options)
        context = environment.get_context()
        with Operations.context(context):
            yield script, context


def steps(script: ScriptDirectory, request: dict) -> list:
    try:
        return script._upgrade_revs(request["to"], tuple(request.get("from") or ()))
    except Exception as exc:
        raise Refused("target", str(exc)) from None


def faithful_output(impl):
    """Alembic's --sql output, except that a tab inside a quoted value stays a tab: Alembic turns
    every tab into spaces, which would change the data a statement writes."""

    def output(construct, execution_options=None, multiparams=None, params=None):
        if multiparams is not None or params:
            raise TypeError("SQL parameters not allowed with as_sql")
        construct = text(construct) if isinstance(construct, str) else construct
        literal = {} if isinstance(construct, DDLElement) else {"compile_kwargs": {"literal_binds": True}}
        compiled = construct.compile(dialect=impl.dialect, **literal)
        impl.static_output(untabbed(str(compiled)).strip() + impl.command_terminator)

    return output


_QUOTED = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"")


def untabbed(sql: str) -> str:
    """Tabs outside quoted text as four spaces (how Alembic indents DDL); inside quotes, kept."""
    parts, position = [], 0
    for match in _QUOTED.finditer(sql):
        parts += [sql[position:match.start()].replace("\t", "    "), match.group(0)]
        position = match.end()
    return "".join(parts + [sql[position:].replace("\t", "    ")])


class OutsideTransaction:
    """Notes a revision's autocommit_block: it cannot run inside the migration's transaction."""

    def __init__(self, context: MigrationContext, render: bool):
        self.used, self.real = False, context.autocommit_block
        context.autocommit_block = self.block if render else self.noted

    @contextmanager
    def block(self):
        self.used = True
        yield

    @contextmanager
    def noted(self):
        self.used = True
        with self.real():
            yield


def render(request: dict) -> dict:
    buffer, done = Collector(), []
    with migration_context(request, buffer=buffer) as (script, context):
        context.impl._exec = faithful_output(context.impl)
        maintainer = HeadMaintainer(context, tuple(request.get("from") or ()))
        outside = OutsideTransaction(context, render=True)
        for step in steps(script, request):
            start, outside.used = len(buffer.items), False
            if not maintainer.heads:
                context._version.create(context.connection)
            error = None
            try:
                step.migration_fn()
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                del buffer.items[start:]
            maintainer.update_to_step(step)
            done.append({"id": step.revision.revision, "statements": [] if error else buffer.items[start:],
                         "offline_error": error, "outside_transaction": outside.used})
    return {"revisions": done}


def capture(request: dict) -> dict:
    engine = create_engine(request["url"])
    executed: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def keep(conn, cursor, statement, parameters, context, executemany):
        rows = parameters if executemany else [parameters]
        for row in rows:
            executed.append(with_literals(statement, row, engine.dialect.paramstyle))

    done = []
    with engine.connect() as connection:
        if request.get("create_version_schema") and request.get("version_table_schema"):
            # An empty scratch database lacks the schema the application created for its version table.
            schema = connection.dialect.identifier_preparer.quote_schema(request["version_table_schema"])
            connection.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            connection.commit()
        with migration_context(request, connection=connection) as (script, context):
            start = len(executed)
            heads = tuple(request.get("from") or ())
            if not heads:
                context._ensure_version_table()
            maintainer = HeadMaintainer(context, heads)
            outside = OutsideTransaction(context, render=False)
            for step in steps(script, request):
                outside.used = False
                try:
                    step.migration_fn()
                    maintainer.update_to_step(step)
                except Exception as exc:
                    where = request.get("where", "on a copy of the real data")
                    raise Refused("capture", f"revision {step.revision.revision} failed {where}: {explain(exc)}",
                                  revision=step.revision.revision) from None
                done.append({"id": step.revision.revision, "outside_transaction": outside.used,
                             "statements": [as_written(s) for s in executed[start:] if not _READS.match(s)]})
                start = len(executed)
                # Committed revision by revision, as the application's own upgrade may commit: the copy
                # is private and dropped afterwards.
                connection.commit()
    engine.dispose()
    return {"revisions": done}


def as_written(statement: str) -> str:
    """A captured statement written as the --sql output writes one."""
    statement = untabbed(statement).strip()
    return statement if statement.endswith(";") else statement + ";"


def explain(exc: Exception) -> str:
    """The driver's own error and the statement it stopped on, without SQLAlchemy's wrapping."""
    cause = getattr(exc, "orig", None) or exc
    text = f"{type(cause).__name__}: {str(cause).strip()}"
    statement = getattr(exc, "statement", None)
    return text + (f" (running: {' '.join(statement.split())[:300]})" if statement else "")


# --------------------------------------------------------------------------- literals


def literal(value, paramstyle: str) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return ("1" if value else "0") if paramstyle == "qmark" else ("true" if value else "false")
    if isinstance(value, (int, float, decimal.Decimal)):
        return repr(value) if not isinstance(value, decimal.Decimal) else str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value).hex()
        return f"X'{data}'" if paramstyle == "qmark" else f"'\\x{data}'::bytea"
    if isinstance(value, (datetime.date, datetime.time, datetime.datetime)):
        value = value.isoformat(" ") if isinstance(value, datetime.datetime) else value.isoformat()
    if isinstance(value, uuid.UUID):
        value = str(value)
    return "'" + str(value).replace("'", "''") + "'"


_PLACEHOLDER = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|%\((\w+)\)s|%s|%%|\?")


def with_literals(statement: str, parameters, paramstyle: str) -> str:
    """The statement as the driver ran it, its parameters written in as literals (quoted text left
    alone). A pyformat driver given parameters (even none) also reads `%%` as `%`."""
    percent = paramstyle in ("format", "pyformat")
    if parameters is None or (not percent and not parameters):
        return statement.strip()
    positional = iter(parameters) if isinstance(parameters, (list, tuple)) else None

    def replace(match):
        token = match.group(0)
        if token[0] in "'\"" or (token == "?") == percent:
            # The driver reads `%%` as `%` everywhere, quotes included (it does not parse SQL).
            return token.replace("%%", "%") if percent and token[0] in "'\"" else token
        if token == "%%":
            return "%"
        if match.group(1):
            return literal(parameters[match.group(1)], paramstyle)
        return literal(next(positional), paramstyle)

    return _PLACEHOLDER.sub(replace, statement).strip()


# --------------------------------------------------------------------------- main

COMMANDS = {"graph": graph, "render": render, "capture": capture}


def main() -> None:
    request = json.load(sys.stdin)
    answer_to, sys.stdout = sys.stdout, sys.stderr  # what a revision prints must not break the answer
    try:
        answer = {"ok": True, **COMMANDS[request["command"]](request)}
    except Refused as refused:
        answer = {"ok": False, "error": {"kind": refused.kind, "message": refused.message, **refused.details}}
    except Exception as exc:
        answer = {"ok": False, "error": {"kind": "error", "message": f"{type(exc).__name__}: {exc}"}}
    answer_to.write(json.dumps(answer))


if __name__ == "__main__":
    main()
