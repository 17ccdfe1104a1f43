"""Pending revisions compiled into one Cutover PlanSet: one plan per revision, one phase each.

Each revision is rendered offline (Alembic's --sql mode, values as literals). A revision that
reads the database cannot be rendered that way (nor can SQLite's batch mode, which reflects the
table it rebuilds): its statements are captured while it runs on a private copy of the target
taken for the rehearsal, and are valid for the target only while the target's data is what
was copied; migrate_task captures them again after its backup, under the same stamp that
proves the target unchanged when the plan commits. The version table's statements are part
of each revision's phase, so the stamp moves in the same transaction as the schema.

A revision that cannot run inside a transaction (autocommit_block, or a statement the dialect
runs only on its own, such as CREATE INDEX CONCURRENTLY) becomes a `(no transaction)` phase,
which runs after the commit; it is allowed only at the end of the chain, where running it
last changes no order.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from app.core.engines import Engine
from app.core.errors import AlembicError
from app.core.plans import Phase, Plan, PlanSet, PlanStatement, make_plan_set, refuse_unrunnable, statement_shape
from app.core.revisions.graph import Revision, RevisionGraph
from app.core.revisions.runner import ask
from app.core.workspace import AlembicSettings

OFFLINE = "offline"
CAPTURED = "captured from rehearsal"
NEEDS_CAPTURE = "reads the database: captured from the rehearsal's copy"


@dataclass(frozen=True)
class RevisionPlan:
    revision: Revision
    statements: tuple[str, ...]
    rendering: str  # OFFLINE, CAPTURED, or NEEDS_CAPTURE before a rehearsal captured it
    transactional: bool = True
    offline_error: str | None = None  # why offline rendering could not be used
    lock_risks: tuple = ()
    data_changes: bool = False

    def to_dict(self) -> dict:
        data = {"id": self.revision.id, "message": self.revision.message, "statements": list(self.statements),
                "rendering": self.rendering, "lock_risks": [risk.to_dict() for risk in self.lock_risks],
                "data_changes": self.data_changes, "file": self.revision.file,
                "transactional": self.transactional}
        if self.offline_error:
            data["offline_error"] = self.offline_error
        return data


@dataclass(frozen=True)
class AlembicPlan:
    current: tuple[str, ...]
    target: str
    revisions: tuple[RevisionPlan, ...]

    @property
    def needs_capture(self) -> bool:
        return any(r.rendering == NEEDS_CAPTURE for r in self.revisions)

    @property
    def captured(self) -> bool:
        return any(r.rendering == CAPTURED for r in self.revisions)

    def plan_set(self, engine: Engine) -> PlanSet:
        """The PlanSet the existing machinery runs; refused (PlanError) when the dialect cannot run it."""
        if self.needs_capture:
            raise AlembicError("Revisions " + ", ".join(r.revision.id for r in self.revisions
                                                        if r.rendering == NEEDS_CAPTURE)
                               + " read the database: their statements come from a rehearsal on a copy.")
        if not self.revisions:
            raise AlembicError(f"Nothing to migrate: the database is already at {self.target}.")
        return make_plan_set(_plans(self.revisions, engine))

    def refuse_misplaced_outside(self, engine: Engine) -> None:
        """AlembicError, before anything runs, when a revision that cannot run inside a transaction
        cannot be moved after the commit (known as soon as it is rendered, or captured)."""
        _refuse_misplaced_outside(self.revisions, engine)

    def to_dict(self) -> dict:
        return {"current": list(self.current), "target": self.target,
                "revisions": [r.to_dict() for r in self.revisions]}


def render_plan(settings: AlembicSettings, engine: Engine, graph: RevisionGraph, current: tuple[str, ...],
                target: str) -> AlembicPlan:
    """Every revision from `current` to `target`, rendered offline where it can be."""
    answer = ask(settings, {"command": "render", "dialect": engine.name, "from": list(current), "to": target,
                            **_version_options(graph)})
    revisions = []
    for rendered in answer["revisions"]:
        revision = graph.get(rendered["id"])
        if rendered["offline_error"]:
            revisions.append(RevisionPlan(revision, (), NEEDS_CAPTURE, not rendered["outside_transaction"],
                                          rendered["offline_error"]))
        else:
            revisions.append(_described(engine, graph, RevisionPlan(
                revision, tuple(rendered["statements"]), OFFLINE, not rendered["outside_transaction"])))
    return AlembicPlan(current, target, tuple(revisions))


def capture_plan(settings: AlembicSettings, copy: Engine, graph: RevisionGraph, plan: AlembicPlan) -> AlembicPlan:
    """`plan` with the statements of the revisions that read the database captured while the whole
    chain runs on `copy` (a private copy of the target, discarded afterwards)."""
    url, environment = copy.sqlalchemy_address()
    answer = ask(settings, {"command": "capture", "url": url, "from": list(plan.current), "to": plan.target,
                            **_version_options(graph)}, environment=environment)
    captured = {item["id"]: item for item in answer["revisions"]}
    revisions = []
    for revision in plan.revisions:
        if revision.rendering == NEEDS_CAPTURE:
            item = captured[revision.revision.id]
            revision = _described(copy, graph, replace(
                revision, statements=tuple(item["statements"]), rendering=CAPTURED,
                transactional=not item["outside_transaction"]))
        revisions.append(revision)
    return replace(plan, revisions=tuple(revisions))


def with_recorded(plan: AlembicPlan, recorded: dict, engine: Engine, graph: RevisionGraph) -> AlembicPlan:
    """`plan` (rendered now) completed with the statements a rehearsal captured (`recorded`, its
    AlembicPlan.to_dict()); AlembicError when the revisions are not those that were rehearsed."""
    rehearsed = {item["id"]: item for item in recorded.get("revisions", [])}
    now = [r.revision.id for r in plan.revisions]
    if now != [item["id"] for item in recorded.get("revisions", [])]:
        raise AlembicError(f"The revisions to run ({', '.join(now) or 'none'}) are not those rehearsed "
                           f"({', '.join(rehearsed) or 'none'}): rehearse again.")
    revisions = []
    for revision in plan.revisions:
        item = rehearsed[revision.revision.id]
        if revision.rendering == NEEDS_CAPTURE and item.get("rendering") != CAPTURED:
            pass  # the record did not capture it either (its capture failed)
        elif revision.rendering == NEEDS_CAPTURE:
            revision = _described(engine, graph, replace(
                revision, statements=tuple(item["statements"]), rendering=CAPTURED,
                transactional=item.get("transactional", True)))
        elif list(revision.statements) != item["statements"]:
            raise AlembicError(f"Revision {revision.revision.id} renders differently than when it was rehearsed: "
                               f"{revision.revision.file} changed. Rehearse again.")
        revisions.append(revision)
    return replace(plan, revisions=tuple(revisions))


def _version_options(graph: RevisionGraph) -> dict:
    return {"version_table": graph.version_table, "version_table_schema": graph.version_table_schema}


def _described(engine: Engine, graph: RevisionGraph, revision: RevisionPlan) -> RevisionPlan:
    needs_own = any(engine.dialect.needs_own_transaction(s) for s in revision.statements)
    schema_work = [s for s in revision.statements if not _is_version_statement(s, graph)]
    risks = tuple(risk for s in schema_work for risk in engine.dialect.lock_risks(s))
    return replace(revision, transactional=revision.transactional and not needs_own, lock_risks=risks,
                   data_changes=any(statement_shape(s).is_data for s in schema_work))


def _is_version_statement(sql: str, graph: RevisionGraph) -> bool:
    shape = statement_shape(sql)
    return (shape.table or shape.name or "").lower() == graph.version_table.lower()


def _plans(revisions: tuple[RevisionPlan, ...], engine: Engine) -> list[Plan]:
    _refuse_misplaced_outside(revisions, engine)
    plans, index = [], 0
    for number, revision in enumerate(revisions, start=1):
        title = f"{revision.revision.id}: {revision.revision.message}".rstrip(": ")
        statements = []
        for line, sql in enumerate(revision.statements, start=1):
            statements.append(PlanStatement(file=revision.revision.file, line=line, phase=title, sql=sql,
                                            comments=(), index=index, phase_number=number,
                                            transactional=revision.transactional))
            index += 1
        phase = Phase(title, tuple(statements), number, revision.revision.file, 0, (), revision.transactional)
        plan = Plan(revision.revision.file, (phase,))
        refuse_unrunnable(plan, engine.dialect)
        plans.append(plan)
    return plans


def _refuse_misplaced_outside(revisions: tuple[RevisionPlan, ...], engine: Engine) -> None:
    outside = [r for r in revisions if not r.transactional]
    if not outside:
        return
    problem = engine.dialect.no_transaction_phase_problem()
    first = outside[0].revision.id
    if problem:
        raise AlembicError(f"Revision {first} cannot run inside a transaction (autocommit_block or a statement "
                           f"that needs its own), and here {problem}. Nothing was changed.", revision=first)
    after = [r.revision.id for r in revisions[revisions.index(outside[0]):] if r.transactional]
    if after:
        raise AlembicError(
            f"Revision {first} cannot run inside a transaction, so it would run after the commit of the others, "
            f"but {', '.join(after)} come after it. Migrate with --to the revision before {first}, then again "
            f"(it then runs last, outside the transaction, not atomic). Nothing was changed.", revision=first)
