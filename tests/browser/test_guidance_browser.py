"""What an operator is told to do next, in a real browser on the demo workspace: the drift
grouped by table and kind (each kind explained once), the badge naming the orphans and the
drift, one next action per environment from the prep to the run to its window, and the
report of a run abandoned while its window watched. Screenshots at 1400 and 390 px."""
import re

import pytest

from tests.browser.conftest import log_in, screenshot, start_server, stop_server
from tests.browser.test_runs_browser import run_step

pytestmark = pytest.mark.browser

DEMO_CHECKLIST = '[checklist.steps.hotfix]\nplans = ["plans/hotfix_activity_instances.sql"]\n'
WIDE, NARROW = {"width": 1400, "height": 900}, {"width": 390, "height": 844}
# The page's own cards (the navigation bar above them is not this page's) and what they hold.
FITS = """() => [...document.querySelectorAll('.page .card, .page .next-action')]
    .filter(e => e.getBoundingClientRect().right > innerWidth + 1 || e.scrollWidth > e.clientWidth + 1)
    .map(e => e.className)"""


def with_a_short_checklist(config):
    """Two steps, so that a run reaches its (24-hour) monitoring window at once."""
    text = config.read_text()
    assert DEMO_CHECKLIST in text
    config.write_text(text.replace(DEMO_CHECKLIST, "") + '\n[checklist]\norder = ["data-volume", "monitor"]\n')
    return config


def both_widths(page, name: str) -> None:
    for label, size in (("1400", WIDE), ("390", NARROW)):
        page.set_viewport_size(size)
        screenshot(page, f"{name}-{label}")
        assert page.evaluate(FITS) == [], f"{name}: these stick out of a {label} px screen"
    page.set_viewport_size(WIDE)


def next_action(page, environment: str):
    return page.locator(f'[data-environment="{environment}"] [data-next-action]')


def test_the_dashboard_points_the_way_from_drift_to_the_report(browser, tmp_path, demo_config):
    server = start_server(tmp_path, with_a_short_checklist(demo_config))
    context = browser.new_context(viewport=WIDE)
    try:
        page = context.new_page()
        page.set_default_timeout(15000)
        log_in(page, server)
        production = page.locator('[data-environment="production"] .status')
        page.wait_for_selector('[data-environment="production"] .status:not(.status-checking)', timeout=20000)
        assert production.inner_text() == "2 orphans · drifted"
        assert page.inner_text('[data-environment="development"] .status') == "healthy"
        assert next_action(page, "production").get_attribute("data-next-action") == "prep"
        assert "Prep the drift" in next_action(page, "production").inner_text()
        assert next_action(page, "development").count() == 0  # the reference is what the others match

        differences = page.locator("#differences")
        kinds = differences.locator(".kind-meanings li")
        assert [kinds.nth(i).locator("strong").inner_text() for i in range(kinds.count())] == \
            ["14 columns", "7 indexes", "2 tables"]
        shown = differences.inner_text()
        assert shown.count("ADD COLUMN adds them") == 1  # each kind explained once
        assert "can add it" not in shown  # each difference's own sentence waits behind its table
        group = differences.locator('details.diff-group[data-group="activity_definitions"]')
        assert group.locator("summary").inner_text() == "activity_definitions\nadditive 2 columns · additive 2 indexes"
        group.locator("summary").click()
        row = group.locator("tr", has_text="activity_definitions.group_id")
        assert row.is_visible() and "ALTER TABLE ... ADD COLUMN can add it" in row.inner_text()
        assert page.locator("#tables details[open]").count() == 0  # side by side waits to be opened
        both_widths(page, "guidance-dashboard")

        next_action(page, "production").locator("a").click()
        page.wait_for_url(re.compile(r"/environments/production/migration#prep$"))
        assert page.get_attribute("[data-next-action]", "data-next-action") == "prep"
        page.click("[data-next-action] button:has-text('Prep the drift')")
        page.click("text=Save as production's prep plan")
        assert page.get_attribute("[data-next-action]", "data-next-action") == "start_run"
        both_widths(page, "guidance-migration")

        page.click("[data-next-action] button:has-text('Start a checklist run')")
        page.wait_for_url(re.compile(r"/runs/\d+$"))
        run_url, run_id = page.url, page.url.rsplit("/", 1)[1]
        page.goto(server.url + "/")
        assert next_action(page, "production").locator("a").inner_text() == f"Continue run {run_id}"

        page.goto(run_url)
        assert run_step(page, "data-volume") == "passed"
        assert run_step(page, "monitor") == "monitoring"
        page.goto(server.url + "/")
        assert next_action(page, "production").get_attribute("data-next-action") == "watch"
        next_action(page, "production").locator("a").click()
        page.wait_for_url(server.url + "/environments/production/health")

        page.goto(run_url)
        page.click("summary:has-text('Abandon')")
        page.fill("input[name=reason]", "wrong maintenance slot")
        page.click(f"button:has-text('Abandon run {run_id}')")
        page.goto(f"{run_url}/report")
        outcome = page.inner_text(".run-outcome")
        assert outcome.startswith("Abandoned at") and "wrong maintenance slot" in outcome and "1 of 2 steps" in outcome
        body = page.inner_text("body")
        assert "not passed yet" not in body and "(active" not in body
        assert "Performance improved (not measured)" in page.inner_text(".report-criteria")
        assert "not this run's" in body
        both_widths(page, "guidance-report-abandoned")
    finally:
        context.close()
        stop_server(server)
