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

# What each action leads to (the pages turn these into links and buttons).
PREP, START_RUN, CONTINUE_RUN, WATCH, NOTHING = "prep", "start_run", "continue_run", "watch", "nothing"


@dataclass(frozen=True)
class EnvironmentFacts:
    name: str
    reference_name: str | None  # the environment the others should match; None when none is marked
    is_reference: bool = False
    readable: bool = True
    migratable: bool = True  # its engine runs plans and the checklist
    differences: int | None = None  # from the reference; None when they could not be compared
    prep_saved: bool = False
    open_run: int | None = None
    active_window: int | None = None
    window_is_the_runs: bool = False  # the open run's own monitor step started the active window


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
    if facts.differences is None:
        return NextAction(NOTHING, "Compare it first",
                          f"{name} could not be compared with {reference or 'a reference'}: see the comparison.")
    if facts.differences and not facts.prep_saved:
        return NextAction(PREP, "Prep the drift",
                          f"{name} differs from {reference} in {_count(facts.differences, 'way')}: generate the prep "
                          "plan (additive only) so the migration meets the schema it was written for.")
    if facts.differences:
        return NextAction(START_RUN, "Start a checklist run",
                          f"The prep plan is saved and runs first in {name}'s plan set: the checklist backs up, "
                          "rehearses and migrates.")
    return NextAction(NOTHING, "Nothing to migrate", f"{name} matches {reference}.")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


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
    return EnvironmentFacts(
        env.name, facts.reference_name,
        readable=targets.inspect(env, wait_for_checks=False).ok,
        migratable="checklist" in env.target.supports,
        differences=len(comparison.differences) if comparison and comparison.differences is not None else None,
        prep_saved=prep_path(targets, env).is_file(),
        open_run=run.id if run else None,
        active_window=window.id if window else None,
        window_is_the_runs=bool(run and window and window.started_at >= run.created_at),
    )
