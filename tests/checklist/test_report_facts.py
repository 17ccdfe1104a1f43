"""The completion report states only what was measured: a window still watching is not
"stable", a monitor step's job that started a window did not "pass", query timings that are
never taken do not tick "Performance improved", and an abandoned run's report says that it
was abandoned, not that its steps "have not passed yet"."""
from __future__ import annotations

import time

from app.actions.monitoring import tick_window
from app.checklist.progress import abandon_run, create_run
from app.checklist.report_facts import markdown_report, report_facts
from app.extensions import db
from app.models import MonitorWindow
from tests.checklist.test_progress import build_app, passes, targets_of  # noqa: F401 (build_app is a fixture)
from tests.conftest import log_in

SHORT_CHECKLIST = """
[checklist]
order = ["data-volume", "monitor"]
"""


def criteria(facts: dict) -> dict:
    return {c["name"]: c for c in facts["criteria"]}


def watching_run(app):
    """A run whose monitor step has passed its job: its window has only just started."""
    targets = targets_of(app)
    run = create_run(targets, targets.environment("production"), "admin")
    passes(app, run, "data-volume")
    passes(app, run, "monitor")
    return run


def report_page(app, run) -> str:
    client = app.test_client()
    log_in(client)
    return client.get(f"/runs/{run.id}/report").get_data(as_text=True)


def test_a_window_still_watching_is_judged_by_nobody_yet(build_app):
    app = build_app(SHORT_CHECKLIST)
    with app.app_context():
        run = watching_run(app)
        facts = report_facts(targets_of(app), run)
        stable = criteria(facts)["24 hours stable"]
        assert stable["met"] is None and stable["unmeasured"] == "judged when the window ends"
        assert "still watching" in stable["evidence"]
        assert criteria(facts)["No user issues"]["met"] is None
        timeline = [event["text"] for event in facts["timeline"]]
        assert any(text.startswith("Monitor") and "window" in text and "started" in text for text in timeline)
        assert not any(text.startswith("Monitor") and text.endswith("passed") for text in timeline), timeline
        markdown = markdown_report(targets_of(app), run)
        assert "**still watching**" in markdown and "Clean: no" not in markdown
        html = report_page(app, run)
        assert "still watching" in html and "judged when the window ends" in html


def test_performance_is_never_ticked_because_query_timings_are_not_taken(build_app):
    app = build_app(SHORT_CHECKLIST)
    with app.app_context():
        run = watching_run(app)
        performance = criteria(report_facts(targets_of(app), run))["Performance improved"]
        assert performance["met"] is None and performance["unmeasured"] == "not measured"
        assert "does not time queries" in performance["evidence"]
        assert "- [ ] **Performance improved** (not measured)" in markdown_report(targets_of(app), run)


def test_tests_not_run_are_not_reported_as_failed(build_app):
    app = build_app(SHORT_CHECKLIST)
    with app.app_context():
        targets = targets_of(app)
        run = create_run(targets, targets.environment("production"), "admin")
        tests = criteria(report_facts(targets, run))["All tests passed"]
        assert tests["met"] is None and tests["evidence"] == "not run yet (verify step)"


def test_an_abandoned_run_says_so_and_does_not_claim_the_window_that_outlived_it(build_app):
    app = build_app(SHORT_CHECKLIST)
    with app.app_context():
        run = watching_run(app)
        abandon_run(run, "admin", "wrong maintenance slot")
        facts = report_facts(targets_of(app), run)
        assert (facts["run"]["steps_done"], facts["run"]["steps_total"]) == (1, 2)
        monitor = next(step for step in facts["steps"] if step["id"] == "monitor")
        assert monitor["state"] == "abandoned" and "abandoned while window" in monitor["reason"]
        assert "abandoned at" in facts["monitoring"]["outlived_run"]
        stable = criteria(facts)["24 hours stable"]
        assert stable["met"] is None and stable["unmeasured"] == "not judged in this run"
        assert criteria(facts)["Migration completed"]["unmeasured"] == "not measured: the run was abandoned"

        markdown = markdown_report(targets_of(app), run)
        assert "- **Abandoned:** 1 of 2 steps were done" in markdown
        assert "not passed" not in markdown and "(active" not in markdown and "state **active**" not in markdown
        html = report_page(app, run)
        assert "Abandoned</strong>" in html and "wrong maintenance slot" in html
        assert "not passed yet" not in html and "(active" not in html


def test_a_window_ending_after_the_run_was_abandoned_does_not_settle_its_step(build_app):
    app = build_app(SHORT_CHECKLIST, fast_monitor=True)
    with app.app_context():
        targets = targets_of(app)
        run = watching_run(app)
        abandon_run(run, "admin", "wrong maintenance slot")
        window = db.session.get(MonitorWindow, report_facts(targets, run)["monitoring"]["id"])
        deadline = time.monotonic() + 30
        while window.state == "active" and time.monotonic() < deadline:
            tick_window(targets, window)
            time.sleep(0.1)
            db.session.refresh(window)
        assert window.state == "finished" and window.ends_at > run.finished_at
        facts = report_facts(targets, run)
        monitor = next(step for step in facts["steps"] if step["id"] == "monitor")
        assert monitor["state"] == "abandoned" and criteria(facts)["24 hours stable"]["met"] is None
        assert facts["monitoring"]["outlived_run"]


def test_evidence_never_claims_what_did_not_happen(build_app):
    """A criterion's words match its tick: no "the migrate step committed" beside a step that
    does not exist or never ran, no "every check passed" beside a failure."""
    app = build_app(SHORT_CHECKLIST)
    with app.app_context():
        run = watching_run(app)
        abandon_run(run, "admin", "wrong maintenance slot")
        found = criteria(report_facts(targets_of(app), run))
        assert found["Migration completed"]["evidence"] == "this run's checklist has no migrate step"
        assert found["Hotfix applied"]["evidence"] == "this run's checklist has no hotfix step"
        assert "the run was abandoned at" in found["No user issues"]["evidence"]
        assert found["Production verified"]["evidence"] == "23 difference(s) from the reference remain"


def test_tests_are_ticked_from_verification_and_smoke_alike():
    from app.checklist.report_facts import _tests_passed

    passed, failed = {"passed": True}, {"passed": False}
    assert _tests_passed(None, {}, "ready") == (None, "not run yet (verify step)")
    assert _tests_passed(failed, {}, "ready")[0] is False
    assert _tests_passed(passed, {}, "ready") == (None, "verification passed; the smoke test has not run")
    assert _tests_passed(passed, failed, "failed") == (False, "the smoke test failed (see Verification)")
    assert _tests_passed(passed, {}, "skipped")[0] is True
    assert _tests_passed(passed, passed, "passed") == (True, "every verification check and the smoke test passed")
