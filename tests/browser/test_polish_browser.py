"""Every page in each of its states at 1400 and 390 px: screenshots kept in test-artifacts/
(polish-*.png), an automated accessibility pass (axe-core, bundled by axe-playwright-python)
with no serious or critical violation, and the small things operators reported: a prep view
that survives a reload, phase numbers that stay put, backups that name their run, a closed
run that says so, a History that filters and links, errors shown where the operator is."""
import re

import pytest

from tests.browser.conftest import log_in, screenshot, start_server, stop_server
from tests.browser.test_cockpit_browser import PHONE, WIDE, command_step, fits_the_screen
from tests.browser.test_runs_browser import step_state

pytestmark = pytest.mark.browser

SERIOUS = ("serious", "critical")
TITLES = "els => els.map(e => e.querySelector('.phase-number').nextSibling.textContent.trim())"


def two_step_checklist(config):
    """A step that passes and one that fails: a run page, a job page and a report in both states."""
    text = config.read_text().split("[checklist.steps.hotfix]")[0]
    config.write_text(text + '[checklist]\norder = ["quick", "broken"]\n\n'
                      + command_step("quick", "Quick check", "print('Quick verdict: fine', flush=True)")
                      + command_step("broken", "Broken check", "import sys\nprint('about to fail', flush=True)\nsys.exit(3)"))
    return config


class Audit:
    """Runs axe on each page it is shown and keeps what it found, with a screenshot of the page."""

    def __init__(self):
        from axe_playwright_python.sync_playwright import Axe

        self.axe, self.found = Axe(), []

    def check(self, page, name: str) -> None:
        page.wait_for_load_state()
        screenshot(page, f"polish-{name}")
        for violation in self.axe.run(page).response["violations"]:
            if violation["impact"] in SERIOUS:
                targets = [node["target"] for node in violation["nodes"]][:5]
                self.found.append(f"{name}: {violation['impact']} {violation['id']} ({violation['help']}) at {targets}")


def dashboard_ready(page) -> None:
    page.wait_for_selector('[data-environment="production"] .status:not(.status-checking)', timeout=20000)


PAGES = {  # name: path, in the state the test has reached when it shows them
    "dashboard": "/", "migration": "/environments/production/migration",
    "prep": "/environments/production/migration/prep", "runs": "/runs", "history": "/jobs",
    "backups": "/environments/production/backups", "health": "/environments/production/health",
}


def show_every_page(audit: Audit, server, pages: dict, state: str, extra: dict | None = None) -> None:
    for width, page in pages.items():
        for name, path in {**PAGES, **(extra or {})}.items():
            page.goto(server.url + path)
            if name == "dashboard":
                dashboard_ready(page)
            if width == "390":
                fits_the_screen(page)
            audit.check(page, f"{name}-{state}-{width}")


def test_every_page_in_every_state_is_accessible(browser, tmp_path, demo_config):
    server = start_server(tmp_path, two_step_checklist(demo_config))
    contexts = {"1400": browser.new_context(viewport=WIDE), "390": browser.new_context(viewport=PHONE)}
    audit = Audit()
    try:
        pages = {width: context.new_page() for width, context in contexts.items()}
        for width, page in pages.items():
            page.goto(server.url + "/login")
            audit.check(page, f"login-{width}")
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", "not the password")
            page.click("button[type=submit]")
            audit.check(page, f"login-failed-{width}")
            log_in(page, server)
        show_every_page(audit, server, pages, "empty")

        wide = pages["1400"]
        wide.goto(server.url + "/runs")
        wide.click("button:has-text('Start a run')")
        wide.wait_for_url(re.compile(r"/runs/\d+$"))
        run_path = wide.url.removeprefix(server.url)
        wide.locator("#head-quick form button.btn-primary").click()
        assert step_state(wide, "quick", ["passed"]) == "passed"
        wide.locator("#head-broken form button.btn-primary").click()
        assert step_state(wide, "broken", ["failed"]) == "failed"
        failed_job = wide.get_attribute("#step-broken a.step-job", "href")
        wide.goto(server.url + "/environments/production/backups")
        wide.click("text=Back up now")
        wide.wait_for_selector("tr[data-backup]", timeout=60000)
        show_every_page(audit, server, pages, "failed", {"run": run_path, "job": failed_job, "report": run_path + "/report"})

        for width, page in pages.items():  # a refusal, where the operator is
            page.goto(server.url + "/environments/production/backups")
            row = page.locator("tr[data-backup]").first
            row.locator("summary:has-text('Restore')").click()
            row.locator("input[name=confirm]").fill("production")
            row.locator("button:has-text('Restore production')").click()
            page.wait_for_selector(".flash.msg-refusal[role=alert]")
            audit.check(page, f"backups-refused-{width}")

        wide.goto(server.url + run_path)
        wide.click("summary:has-text('Abandon')")
        wide.fill("input[name=reason]", "the broken check needs a fix first")
        wide.click("button:has-text('Abandon run')")
        wide.wait_for_selector("#run-head .state-abandoned")
        show_every_page(audit, server, pages, "abandoned", {"run": run_path, "report": run_path + "/report"})
    finally:
        for context in contexts.values():
            context.close()
        stop_server(server)
    assert audit.found == [], "\n".join(audit.found)


def test_the_small_things(browser, tmp_path, demo_config):
    server = start_server(tmp_path, demo_config)
    context = browser.new_context(viewport=WIDE)
    try:
        page = context.new_page()
        page.on("dialog", lambda dialog: dialog.accept())
        log_in(page, server)

        # The prep view: a page of its own that a reload shows again; statements first.
        page.goto(server.url + "/environments/production/migration")
        phases_before = page.eval_on_selector_all(".phase .phase-number", "els => els.map(e => e.textContent)")
        titles_before = page.eval_on_selector_all(".phase summary", TITLES)
        page.click("text=Generate prep from development")
        page.wait_for_url(re.compile(r"/migration/prep"))
        assert page.reload().status == 200
        first_block = page.locator("pre.sql-block").first.inner_text()
        assert first_block.startswith("CREATE TABLE activity_groups")  # not 25 lines of comments
        assert page.locator("details.prep-file:not([open])").count() == 1  # the comments, folded
        screenshot(page, "polish-prep-1400")
        page.click("text=Save as production's prep plan")
        page.wait_for_selector(".plan-state")
        # The migration plan's phases keep their numbers; the prep's are its own.
        labels = page.eval_on_selector_all(".phase .phase-number", "els => els.map(e => e.textContent)")
        titles = page.eval_on_selector_all(".phase summary", TITLES)
        numbered = dict(zip(titles, labels))
        assert [numbered[t] for t in titles_before] == phases_before
        assert [label for label in labels if label.startswith("Prep")] == ["Prep 1", "Prep 2"]
        assert "prep 1-2" in page.inner_text(".plan-state")
        screenshot(page, "polish-migration-after-prep-1400")

        # A run's backup says which run took it; its job page leads back to the run.
        page.click("text=Checklist")
        page.click("button:has-text('Start a run')")
        page.wait_for_url(re.compile(r"/runs/\d+$"))
        run_url, run_id = page.url, page.url.rsplit("/", 1)[1]
        for step in ("verify-target", "app-stopped", "data-volume", "backup"):
            head = page.locator(f"#head-{step}")
            head.locator("form button.btn-primary").click()
            assert step_state(page, step, ["passed", "signed_off"]) in ("passed", "signed_off")
            if page.locator(f"#head-{step} button:has-text('Sign off')").count():
                head.locator("input[name=note]").fill("checked")
                head.locator("button:has-text('Sign off')").click()
                assert step_state(page, step, ["signed_off"]) == "signed_off"
        page.click("#step-backup a.step-job")
        back = page.locator(f"a[href='/runs/{run_id}#step-backup']").first
        assert back.inner_text() == f"← Run {run_id} · Back up (verified, every location)"
        log_text = page.inner_text(".job .log")
        page.goto(server.url + "/environments/production/backups")
        row = page.locator("tr[data-backup]").first
        assert row.locator(".origin").inner_text().startswith(f"run {run_id}")
        size = row.locator("td[data-label=Size]").inner_text()
        assert f"written: {size}," in log_text  # the log and the table print one size

        # An opened restore form floats: the table keeps its width and its columns.
        table_before = page.locator("table.backups").bounding_box()
        row.locator("summary:has-text('Restore')").click()
        assert page.locator("table.backups").bounding_box() == table_before
        screenshot(page, "polish-restore-open-1400")
        # Refused (the run is open): the message is shown here, what was typed is kept.
        row.locator("input[name=confirm]").fill("production")
        row.locator("button:has-text('Restore production')").click()
        refusal = page.wait_for_selector(".flash.msg-refusal[role=alert]")
        assert f"checklist run {run_id}" in refusal.inner_text()
        assert page.url.endswith("/environments/production/backups")
        assert row.locator("input[name=confirm]").input_value() == "production"
        screenshot(page, "polish-refused-in-place-1400")

        # History: step titles, not kind ids; a link to the run; filters.
        page.goto(server.url + "/jobs")
        assert "Back up (verified, every location)" in page.inner_text("table.jobs")
        assert "verify-target" not in page.inner_text("table.jobs")
        assert page.locator(f"table.jobs a[href='/runs/{run_id}#step-backup']").count() == 1
        page.select_option("select[name=kind]", "backup")
        page.click("button:has-text('Filter')")
        assert page.locator("table.jobs tbody tr").count() == 1
        screenshot(page, "polish-history-filtered-1400")

        # The report prints times to the second.
        page.goto(run_url + "/report")
        assert not re.search(r"\d\d:\d\d:\d\d\.\d{3}", page.inner_text("main"))

        # An abandoned run says so, not "waiting for the next step".
        page.goto(run_url)
        page.click("summary:has-text('Abandon')")
        page.fill("input[name=reason]", "testing")
        page.click("button:has-text('Abandon run')")
        page.wait_for_selector("#run-head .state-abandoned")
        page.wait_for_timeout(1500)  # the stream opens and ends once
        assert page.inner_text("#live-status") == "run abandoned: no step runs again"
        screenshot(page, "polish-run-abandoned-1400")
    finally:
        context.close()
        stop_server(server)


def test_a_missing_database_says_so_on_its_health_page(browser, tmp_path, demo_config):
    (demo_config.parent / "goals.db").unlink()
    server = start_server(tmp_path, demo_config)
    context = browser.new_context(viewport=WIDE)
    try:
        page = context.new_page()
        log_in(page, server)
        page.goto(server.url + "/environments/production/health")
        header = page.inner_text(".page-head")
        assert "None" not in header and "could not be read" in header
        screenshot(page, "polish-health-missing-1400")
    finally:
        context.close()
        stop_server(server)
