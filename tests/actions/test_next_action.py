"""The one next action on an environment: each case from its facts, then the facts gathered
from the demo workspace as an operator walks it (drift, prep saved, a run, its window)."""
from __future__ import annotations

import pytest

from app.actions.next_action import (CONTINUE_RUN, NOTHING, PREP, START_RUN, WATCH, EnvironmentFacts,
                                     environment_facts, next_action)
from app.actions.planning import make_prep, save_prep
from app.checklist.progress import abandon_run, create_run
from app.extensions import db
from tests.checklist.test_progress import build_app, passes, targets_of  # noqa: F401 (build_app is a fixture)


def facts(**changes) -> EnvironmentFacts:
    return EnvironmentFacts(**{"name": "production", "reference_name": "development", "differences": 23, **changes})


# --------------------------------------------------------------------------- each case, from the facts


def test_drift_without_a_prep_plan_asks_for_the_prep():
    action = next_action(facts(to_prep=3))
    assert (action.kind, action.title) == (PREP, "Prep the drift")
    assert action.why.startswith("production lacks 3 tables, columns or indexes of development that the "
                                 "migration plans do not create: generate the prep plan")


def test_drift_the_prep_cannot_be_told_apart_from_still_asks_for_the_prep():
    action = next_action(facts(to_prep=None))
    assert action.kind == PREP and "differs from development in 23 ways" in action.why


def test_differences_the_plans_create_themselves_need_no_prep():
    action = next_action(facts(to_prep=0))
    assert action.kind == START_RUN
    assert action.why.startswith("The migration plans create what production lacks of development")


def test_drift_with_a_saved_prep_plan_asks_for_a_run():
    action = next_action(facts(prep_saved=True))
    assert (action.kind, action.title) == (START_RUN, "Start a checklist run")
    assert "prep plan is saved" in action.why


def test_an_open_run_is_continued_whatever_the_drift():
    for drift in (0, 23, None):
        action = next_action(facts(differences=drift, prep_saved=True, open_run=4))
        assert (action.kind, action.title, action.run) == (CONTINUE_RUN, "Continue run 4", 4)


def test_an_older_window_does_not_hide_the_open_run():
    action = next_action(facts(open_run=4, active_window=2, window_is_the_runs=False))
    assert action.kind == CONTINUE_RUN


def test_the_runs_own_window_is_watched():
    action = next_action(facts(open_run=4, active_window=3, window_is_the_runs=True))
    assert (action.kind, action.title, action.window, action.run) == (WATCH, "Watch window 3", 3, 4)
    assert "run 4 finishes when the window ends clean" in action.why


def test_a_window_without_a_run_is_watched():
    action = next_action(facts(differences=0, active_window=3))
    assert (action.kind, action.run) == (WATCH, None)
    assert action.why == "production is being watched after its migration."


def test_in_sync_leaves_nothing_to_do():
    action = next_action(facts(differences=0))
    assert (action.kind, action.why, action.actionable) == (NOTHING, "production matches development.", False)


@pytest.mark.parametrize("changes, title", [
    ({"is_reference": True, "reference_name": "production"}, "Nothing to migrate"),
    ({"readable": False}, "Make it readable"),
    ({"migratable": False}, "Inspect and compare only"),
    ({"differences": None}, "Compare it first"),
])
def test_what_cannot_be_migrated_says_why(changes, title):
    action = next_action(facts(**changes))
    assert (action.kind, action.title) == (NOTHING, title) and action.why


def test_a_window_on_an_engine_that_cannot_migrate_is_not_offered():
    assert next_action(facts(migratable=False, active_window=3)).kind == NOTHING


# --------------------------------------------------------------------------- the facts, from real state


def action_now(app, name: str = "production"):
    db.session.expire_all()
    targets = targets_of(app)
    return next_action(environment_facts(targets, targets.environment(name)))


def test_the_demo_walk_from_drift_to_watching(build_app):
    app = build_app("""
    [checklist]
    order = ["data-volume", "monitor"]
    """)
    with app.app_context():
        targets = targets_of(app)
        production = targets.environment("production")
        assert action_now(app, "development").title == "Nothing to migrate"
        prep = action_now(app)
        assert prep.kind == PREP and "lacks 3 tables, columns or indexes" in prep.why  # as the prep plan adds

        save_prep(targets, production, make_prep(targets, production, "development"), "admin")
        assert action_now(app).kind == START_RUN

        run = create_run(targets, production, "admin")
        assert (action_now(app).kind, action_now(app).run) == (CONTINUE_RUN, run.id)

        passes(app, run, "data-volume")
        passes(app, run, "monitor")
        watching = action_now(app)
        assert (watching.kind, watching.run) == (WATCH, run.id) and watching.window is not None

        abandon_run(run, "admin", "wrong slot")
        assert (action_now(app).kind, action_now(app).run) == (WATCH, None)  # the window goes on alone


def test_an_engine_without_the_checklist_is_sent_to_the_migration_page():
    facts = EnvironmentFacts("production", "development", differences=3, to_prep=2, checklist=False, preppable=False)
    action = next_action(facts)
    assert action.kind == "migrate" and "Migration page" in action.why


def test_an_empty_target_of_the_move_checklist_is_sent_to_the_move():
    """Two engines' schemas are never compared (differences None): the move is what comes next."""
    action = next_action(facts(differences=None, move_from="sqlite_prod", holds_rows=False))
    assert action.kind == START_RUN and action.title == "Start the move"
    assert "moves sqlite_prod into production" in action.why


def test_a_move_target_that_holds_rows_has_nothing_to_move():
    action = next_action(facts(differences=None, move_from="sqlite_prod", holds_rows=True))
    assert action.kind == NOTHING and "holds rows already" in action.why


def test_an_open_move_run_comes_before_the_move():
    action = next_action(facts(differences=None, move_from="sqlite_prod", holds_rows=True, open_run=2))
    assert (action.kind, action.run) == (CONTINUE_RUN, 2)
