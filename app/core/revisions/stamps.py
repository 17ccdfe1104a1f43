"""Is the database what its stamp says? Revision ids are not content: a revision file edited after
it ran (a rewritten baseline) stands for another schema under the same id. The stamped revision's
schema is built from the files, base to stamp, in an empty scratch database of the target's
engine, and compared with the target's schema."""
from __future__ import annotations

from dataclasses import dataclass

from app.core.engines import Engine
from app.core.revisions.graph import RevisionGraph
from app.core.revisions.runner import ask
from app.core.workspace import AlembicSettings


@dataclass(frozen=True)
class StampCheck:
    revision: str | None  # None: nothing stamped, nothing to check
    differences: tuple[dict, ...] = ()

    @property
    def matches(self) -> bool:
        return not self.differences

    def lines(self) -> list[str]:
        return [describe(d) for d in self.differences]

    def to_dict(self) -> dict:
        return {"revision": self.revision, "matches": self.matches, "differences": list(self.differences)}


def describe(difference: dict) -> str:
    table = difference.get("table")
    name = f"{table}.{difference['name']}" if table and difference.get("object") != "table" else difference["name"]
    return f"{difference['object']} {name}: {difference['explanation']}"


def check_stamp(settings: AlembicSettings, engine: Engine, graph: RevisionGraph, current: tuple[str, ...], *,
                workdir=None) -> StampCheck:
    """The differences between the schema the stamp's revision files build and the target's."""
    if not current:
        return StampCheck(None)
    revision = current[0]
    with engine.empty_database(workdir=workdir) as scratch:
        url, environment = scratch.sqlalchemy_address()
        ask(settings, {"command": "capture", "url": url, "from": [], "to": revision, "create_version_schema": True,
                       "where": f"while the files built the schema of stamp {revision} in an empty scratch database, "
                                "so the stamp cannot be checked",
                       "version_table": graph.version_table, "version_table_schema": graph.version_table_schema},
            environment=environment)
        built = scratch.snapshot(deep=False).schema
    live = engine.snapshot(deep=False).schema
    differences = engine.compare(built, live, left_label=f"revision {revision} built from its files",
                                 right_label=engine.label)
    return StampCheck(revision, tuple(d.to_dict() for d in differences))
