"""The one thing an operator should do next on an environment, from its real state.

`next_action` is pure: it reads the facts (drift from the reference, a saved prep plan, an
open checklist run, an active monitoring window) and names one action. `environment_facts`
gathers those facts; the dashboard card and the Migration page both show the answer, so the
two pages can never point different ways.
"""
from __future__ import annotations

from dataclasses import dataclass

from app.actions.guards import open_run
from app.actions.monitoring import active_window
from app.actions.planning import prep_path
from app.core.errors import CutoverError
from app.core.plans import load_plan_set
from app.core.prep import left_to_prep

# What each action leads to (the pages turn these into links and buttons).
PREP, START_RUN, CONTINUE_RUN, WATCH, NOTHING = "prep", "start_run", "continue_run", "watch", "nothing"
MIGRATE = "migrate"  # the engine migrates, but not through the checklist yet


@dataclass(frozen=True)
class EnvironmentFacts:
    name: str
    reference_name: str | None  # the environment the others should match; None when none is marked
    is_reference: bool = False
    readable: bool = True
    migratable: bool = True  # its engine runs plans
    checklist: bool = True  # ... and the checklist
    preppable: bool = True  # ... and writes prep plans
    differences: int | None = None  # from the reference; None when they could not be compared
    to_prep: int | None = None  # of those, what a prep plan would add (the plans create the rest); None: unknown
    prep_saved: bool = False
    open_run: int | None = None
    active_window: int | None = None
    window_is_the_runs: bool = False  # the open run's own monitor step started the active window
    move_from: str | None = None  # the move checklist's source, when this environment can be its target
    holds_rows: bool | None = None  # any row in its tables (None: unknown); a move needs them empty


@dataclass(frozen=True)
class NextAction:
    kind: str  # PREP | START_RUN | CONTINUE_RUN | WATCH | NOTHING
    title: str  # the action, as a button or a link says it
    why: str  # one sentence: the fact that makes it the next thing to do
    run: int | None = None
    window: int | None = None

    @property
    def actionable(self) -> bool:
        return self.kind != NOTHING


def next_action(facts: EnvironmentFacts) -> NextAction:
    """Watching a window beats everything else (the run cannot finish before it ends); an open
    run comes next (the environment changes only through it); then prep, then a new run."""
    name, reference = facts.name, facts.reference_name
    if facts.is_reference:
        return NextAction(NOTHING, "Nothing to migrate", f"{name} is the reference: the others are brought to it.")
    if not facts.readable:
        return NextAction(NOTHING, "Make it readable", f"{name} cannot be read: see why on its card.")
    if not facts.migratable:
        return NextAction(NOTHING, "Inspect and compare only",
                          f"Migrating {name} is not available for its engine yet.")
    if facts.active_window is not None and (facts.open_run is None or facts.window_is_the_runs):
        settles = f"; run {facts.open_run} finishes when the window ends clean" if facts.open_run is not None else ""
        return NextAction(WATCH, f"Watch window {facts.active_window}",
                          f"{name} is being watched after its migration{settles}.",
                          run=facts.open_run, window=facts.active_window)
    if facts.open_run is not None:
        return NextAction(CONTINUE_RUN, f"Continue run {facts.open_run}",
                          f"Checklist run {facts.open_run} is open on {name}: it changes only through its steps.",
                          run=facts.open_run)
    if facts.move_from is not None:
        return _move_action(facts)
    if facts.differences is None:
        return NextAction(NOTHING, "Compare it first",
                          f"{name} could not be compared with {reference or 'a reference'}: see the comparison.")
    if facts.differences and facts.preppable and not facts.prep_saved and facts.to_prep != 0:
        lacks = (f"{name} lacks {_count(facts.to_prep, 'table, column or index', 'tables, columns or indexes')} "
                 f"of {reference} that the migration plans do not create" if facts.to_prep else
                 f"{name} differs from {reference} in {_count(facts.differences, 'way', 'ways')}")
        return NextAction(PREP, "Prep the drift",
                          f"{lacks}: generate the prep plan (additive only) so the migration meets the schema it "
                          "was written for.")
    if facts.differences and not facts.checklist:
        return NextAction(MIGRATE, "Rehearse and migrate",
                          f"{name} differs from {reference}; the checklist is not available for its engine yet: "
                          "preview, rehearse and migrate on the Migration page (each backs up and checks first).")
    if facts.differences:
        return NextAction(START_RUN, "Start a checklist run",
                          (f"The prep plan is saved and runs first in {name}'s plan set" if facts.prep_saved else
                           f"The migration plans create what {name} lacks of {reference}")
                          + ": the checklist backs up, rehearses and migrates.")
    return NextAction(NOTHING, "Nothing to migrate", f"{name} matches {reference}.")


def _move_action(facts: EnvironmentFacts) -> NextAction:
    """The workspace's checklist moves a SQLite environment into this one: the schemas of two
    engines are never compared, so the move itself is what comes next, while the tables are empty."""
    name, source = facts.name, facts.move_from
    if facts.holds_rows:
        return NextAction(NOTHING, "Nothing to move",
                          f"{name} holds rows already, and a move from {source} fills empty tables only.")
    return NextAction(START_RUN, "Start the move",
                      f"The checklist moves {source} into {name}: it backs up {source}, preflights every row, "
                      "copies in one transaction and verifies.")


def _count(number: int, singular: str, plural: str) -> str:
    return f"{number} {singular if number == 1 else plural}"


def environment_facts(targets, env, comparison=None) -> EnvironmentFacts:
    """The facts `next_action` reads, from the snapshot cache and the dashboard's own state.

    `comparison` is the reference against `env` when the caller has it already."""
    reference = targets.workspace.reference
    facts = EnvironmentFacts(env.name, reference.name if reference else None, is_reference=env.reference)
    if env.reference:
        return facts
    if comparison is None and reference is not None:
        comparison = targets.compare(reference.name, env.name, wait_for_checks=False)
    run = open_run(env.name)
    window = active_window(env.name)
    inspection = targets.inspect(env, wait_for_checks=False)
    move_from = _move_source(targets, env)
    return EnvironmentFacts(
        env.name, facts.reference_name,
        readable=inspection.ok,
        migratable="migrate" in env.target.supports,
        checklist="checklist" in env.target.supports,
        preppable="prep" in env.target.supports,
        differences=len(comparison.differences) if comparison and comparison.differences is not None else None,
        to_prep=_left_to_prep(targets, comparison),
        prep_saved=prep_path(targets, env).is_file(),
        open_run=run.id if run else None,
        active_window=window.id if window else None,
        window_is_the_runs=bool(run and window and window.started_at >= run.created_at),
        move_from=move_from,
        holds_rows=_holds_rows(inspection) if move_from else None,
    )


def _move_source(targets, env) -> str | None:
    """The move checklist's source, unless `env` is that source or cannot receive a move."""
    move = targets.workspace.checklist.move
    if move is None or move.source == env.name or not env.target.receives_moves:
        return None
    return move.source


def _holds_rows(inspection) -> bool | None:
    if not inspection.ok:
        return None
    counts = inspection.snapshot.row_counts().values()
    return True if any(counts) else (None if None in counts else False)


def _left_to_prep(targets, comparison) -> int | None:
    """How many differences a prep plan would add, the configured plans read as make_prep reads
    them; None when there is nothing to read it from."""
    if comparison is None or comparison.differences is None:
        return None
    try:
        plan_set = load_plan_set(targets.workspace.plans) if targets.workspace.plans else None
    except CutoverError:
        return None  # a plan that does not load: the Migration page says why
    return len(left_to_prep(comparison.differences, plan_set))
