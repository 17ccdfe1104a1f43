"""The revision graph, an environment's stamp (its version table) and what lies between them."""
from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass

from app.core.engines import Engine
from app.core.errors import AlembicError
from app.core.revisions.runner import ask
from app.core.workspace import AlembicSettings


@dataclass(frozen=True)
class Revision:
    id: str
    down_revisions: tuple[str, ...]
    message: str
    file: str
    branch_point: bool = False
    merge: bool = False


@dataclass(frozen=True)
class RevisionGraph:
    revisions: tuple[Revision, ...]  # oldest first (a topological order)
    heads: tuple[str, ...]
    version_table: str = "alembic_version"
    version_table_schema: str | None = None

    def get(self, revision_id: str) -> Revision | None:
        return next((r for r in self.revisions if r.id == revision_id), None)

    def single_head(self) -> str:
        """The one head a migration goes to by default; several heads are refused with the way out."""
        if len(self.heads) == 1:
            return self.heads[0]
        if not self.heads:
            raise AlembicError("The Alembic project has no revisions: there is nothing to migrate to.")
        raise AlembicError(
            f"The revisions have {len(self.heads)} heads ({', '.join(self.heads)}): Cutover migrates to one. "
            "Merge them in the application (`alembic merge heads -m \"merge\"`, then commit the new revision), "
            "or name one with --to REV.", heads=list(self.heads))

    def ancestors(self, revision_ids) -> set[str]:
        """The revisions themselves and every revision below them."""
        seen, todo = set(), list(revision_ids)
        while todo:
            current = todo.pop()
            if current in seen:
                continue
            seen.add(current)
            revision = self.get(current)
            todo.extend(revision.down_revisions if revision else ())
        return seen

    def pending(self, current: tuple[str, ...], target: str) -> list[str]:
        """What runs to bring `current` to `target`, oldest first."""
        done = self.ancestors(current)
        wanted = self.ancestors([target])
        return [r.id for r in self.revisions if r.id in wanted and r.id not in done]

    def check_stamp(self, current: tuple[str, ...], label: str) -> None:
        unknown = [rev for rev in current if self.get(rev) is None]
        if unknown:
            raise AlembicError(
                f"{label} is stamped {', '.join(unknown)}, which names no revision of the project: the database was "
                "migrated by another version of the application (a revision file missing here), or stamped by "
                "hand. Find the revision file it came from, or check the schema and `alembic stamp` the revision "
                "it really is at. Nothing was changed.", stamp=list(current))
        if len(current) > 1:
            raise AlembicError(
                f"{label}'s version table holds {len(current)} rows ({', '.join(current)}): it was upgraded along "
                "separate branches. Cutover migrates from one stamp: bring it to one revision with the "
                "application's own `alembic upgrade` of the merge, or check the schema and `alembic stamp` the "
                "revision it really is at. Nothing was changed.", stamp=list(current))

    def resolve_target(self, target: str | None, current: tuple[str, ...], label: str) -> str:
        """The revision to migrate to (the single head by default); refuses one that is unknown or behind."""
        if target in (None, "", "head", "heads"):
            return self.single_head()
        if self.get(target) is None:
            matches = [r.id for r in self.revisions if r.id.startswith(target)]
            if len(matches) != 1:
                raise AlembicError(f"Target {target}: no revision has that id (the heads are {', '.join(self.heads)}). "
                                   "Nothing was changed.", target=target)
            target = matches[0]
        if current and target in self.ancestors(current) and target not in current:
            raise AlembicError(f"Target {target}: {label} is stamped {', '.join(current)}, which is already past "
                               f"{target}. Cutover only upgrades (rolling back is restoring the backup). "
                               "Nothing was changed.", target=target)
        return target

    def to_dict(self) -> dict:
        return {"heads": list(self.heads), "version_table": self.version_table,
                "revisions": [{"id": r.id, "down_revisions": list(r.down_revisions), "message": r.message,
                               "file": r.file, "branch_point": r.branch_point, "merge": r.merge}
                              for r in self.revisions]}


def read_graph(settings: AlembicSettings) -> RevisionGraph:
    answer = ask(settings, {"command": "graph"})
    return RevisionGraph(
        tuple(Revision(r["id"], tuple(r["down_revisions"]), r["message"], r["file"], r["branch_point"], r["merge"])
              for r in answer["revisions"]),
        tuple(answer["heads"]), answer["version_table"], answer["version_table_schema"])


def read_stamp(engine: Engine, graph: RevisionGraph, *, busy_timeout: float = 1.0) -> tuple[str, ...]:
    """The rows of the environment's version table (none when it has no version table), read only."""
    table = engine.dialect.quote_identifier(graph.version_table)
    if graph.version_table_schema:
        table = f"{engine.dialect.quote_identifier(graph.version_table_schema)}.{table}"

    def read(connection):
        if not _version_table_exists(engine, connection, graph):
            return ()
        with closing(connection.execute(f"SELECT version_num FROM {table}")) as cursor:
            return tuple(row[0] for row in cursor.fetchall())

    return engine.read_consistently(read, busy_timeout=busy_timeout)


def _version_table_exists(engine: Engine, connection, graph: RevisionGraph) -> bool:
    if not graph.version_table_schema:
        return ("table", graph.version_table.lower()) in engine.object_names(connection)
    # A schema of its own (PostgreSQL): outside the schemas Cutover inspects, so asked directly.
    found = connection.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = "
                               f"{_text_literal(graph.version_table_schema)} AND table_name = "
                               f"{_text_literal(graph.version_table)}").fetchone()
    return bool(found and found[0])


def _text_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def alembic_status(settings: AlembicSettings, engine: Engine, graph: RevisionGraph | None = None) -> dict:
    """`{"current", "heads", "pending"}` as `cutover envs --json` shows it; pending is empty
    when no single target exists, and a stamp that cannot be followed says why."""
    graph = graph or read_graph(settings)
    current = read_stamp(engine, graph)
    status = {"current": list(current), "heads": list(graph.heads), "pending": []}
    try:
        graph.check_stamp(current, engine.label)
        status["pending"] = graph.pending(current, graph.single_head())
    except AlembicError as problem:
        status["problem"] = problem.message
    return status
