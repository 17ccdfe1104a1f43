"""The run page: its progress header, steps folded to one line, a wait said once, refusals."""
import re

from tests.conftest import csrf_token_from


def open_run(logged_in) -> tuple[int, str]:
    html = logged_in.get("/runs").get_data(as_text=True)
    created = logged_in.post("/runs", data={"csrf_token": csrf_token_from(html), "environment": "production"})
    run_id = int(created.headers["Location"].rsplit("/", 1)[1])
    return run_id, logged_in.get(f"/runs/{run_id}").get_data(as_text=True)


def summaries(html: str) -> dict[str, str]:
    return dict(re.findall(r'id="verdict-([\w-]+)" title="[^"]*">([^<]*)</span>', html))


def test_a_new_run_says_where_it_stands_and_opens_only_the_step_to_act_on(logged_in):
    _, html = open_run(logged_in)
    assert re.search(r"<strong>0 of 12 done</strong> —\s*now: <a href=\"#step-verify-target\"", html)
    assert 'href="#step-verify-target" class="tl tl-ready"' in html
    folds = re.findall(r'<li class="step card" id="step-([\w-]+)">\s*<[^>]*id="job-link-[^>]*>\s*(?:</span>\s*)?'
                       r'<details class="step-fold" ?(open)?>', html)
    assert [step for step, opened in folds if opened] == ["verify-target"] and len(folds) == 12
    waits = [text for text in summaries(html).values() if text]
    assert waits == ["Waits for: Verify the target (ready)"]  # said once, not by each of the eleven


def test_the_state_partial_refreshes_the_header_and_the_summaries(logged_in):
    run_id, _ = open_run(logged_in)
    state = logged_in.get(f"/runs/{run_id}/state").get_data(as_text=True)
    assert 'id="run-progress" aria-label="Run progress" hx-swap-oob="true"' in state
    assert state.count('class="step-summary"') == 12 and state.count('class="step-head') == 12
    assert 'id="sum-verify-target" data-open="true"' in state and 'id="sum-backup" data-open="false"' in state


def test_starting_a_blocked_step_is_flashed_as_a_refusal(logged_in):
    run_id, html = open_run(logged_in)
    response = logged_in.post(f"/runs/{run_id}/steps/backup/start", data={"csrf_token": csrf_token_from(html)},
                              follow_redirects=True)
    assert re.search(r'<p class="flash msg msg-refusal" data-outcome="refusal" role="alert">[^<]*Waits for',
                     response.get_data(as_text=True))


def test_a_closed_run_says_so_where_the_live_log_was(logged_in):
    run_id, html = open_run(logged_in)
    assert 'id="live-status" aria-live="polite">live log</span>' in html
    logged_in.post(f"/runs/{run_id}/abandon", data={"csrf_token": csrf_token_from(html), "reason": "testing"})
    html = logged_in.get(f"/runs/{run_id}").get_data(as_text=True)
    assert 'data-closed="true"' in html and "run abandoned: no step runs again" in html


def test_history_names_steps_links_runs_and_filters(logged_in, app):
    from app.extensions import db
    from app.jobs.runner import create_job

    run_id, _ = open_run(logged_in)
    with app.app_context():
        create_job("verify-target", "production", "admin", {}, run_id=run_id, step="verify-target")
        create_job("backup", "development", "bea", {})
        db.session.remove()
    html = logged_in.get("/jobs").get_data(as_text=True)
    assert "Verify the target" in html and f'href="/runs/{run_id}#step-verify-target">run {run_id}</a>' in html
    filtered = logged_in.get("/jobs?operator=bea").get_data(as_text=True)
    assert "Backup" in filtered and "Verify the target" not in filtered and "Show everything" in filtered
    job = logged_in.get("/jobs/1").get_data(as_text=True)
    assert f'<a href="/runs/{run_id}#step-verify-target">← Run {run_id} · Verify the target</a>' in job
    assert "Queued: it starts as soon as a worker takes it." in job and '<ol class="log" tabindex="0" aria-label="Log" hidden>' in job
