"""The whole journey, as a new operator would take it, in headless Chromium against a real
`python run.py`: first start on the demo workspace, read the drift, generate the prep plan,
run the checklist with a second operator approving the production migrate while watching
the log live, download the report, open the health page, then roll production back from the
run's verified backup and see the dashboard report production as it was."""
import os
import re
import subprocess
import sys

from tests.browser.conftest import PASSWORD, PROJECT, log_in, screenshot, start_server, stop_server
from tests.browser.test_runs_browser import SHORT_WINDOW, sign_off, step_state, texts

SECOND_OPERATOR, SECOND_PASSWORD = "bea", "second-operator-password"
STEPS = ["verify-target", "app-stopped", "data-volume", "backup", "integrity", "rehearse",
         "migrate", "hotfix", "verify", "start-app", "smoke", "monitor"]


def configure_demo(config) -> None:
    """What the operator edits after the first start: a second operator's approval for the
    production migrate, and a monitoring window short enough for a test."""
    text = config.read_text()
    for old, new in SHORT_WINDOW.items():
        text = text.replace(old, new)
    config.write_text(text + "\n[checklist.steps.migrate]\napproval = true\n")


def add_operator(instance, name: str, password: str) -> None:
    env = {**os.environ, "CUTOVER_INSTANCE_DIR": str(instance), "CUTOVER_ADMIN_PASSWORD": PASSWORD}
    env.pop("CUTOVER_CONFIG", None)
    subprocess.run([sys.executable, "-m", "flask", "--app", "run", "cutover", "add-operator", name,
                    "--password", password], cwd=PROJECT, env=env, check=True, capture_output=True)


def drift_text(page) -> str:
    page.wait_for_selector('[data-environment="production"] .status:not(.status-checking)', timeout=20000)
    return page.inner_text(".drift")


def start(page, step: str) -> str:
    head = page.locator(f"#head-{step}")
    if head.locator("input[name=note][required]").count():
        head.locator("input[name=note]").fill("Started by hand with ./start-all.sh production")
        head.locator("button:has-text('Confirm done')").click()
    else:
        head.locator("form button.btn-primary").click()
    return step_state(page, step, ["passed", "signed_off", "failed", "monitoring", "interrupted", "cancelled"])


def overview(page) -> str:
    """The run page's sticky header: how many steps are done and which one is next."""
    return " ".join(page.inner_text("#run-progress .run-progress-text").split())


def test_the_whole_journey(browser, tmp_path):
    instance = tmp_path / "instance"
    server = start_server(tmp_path, None)  # first start: nothing configured, the demo is created
    operator = browser.new_context(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
    second = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = operator.new_page()
        page.on("dialog", lambda dialog: dialog.accept())
        foreign = []
        page.on("request", lambda request: foreign.append(request.url) if not request.url.startswith(server.url) else None)
        log_in(page, server)
        drift_before = drift_text(page)
        # The next-action hint: production lacks what its plans never create, so prep comes first.
        assert page.get_attribute('[data-environment="production"] [data-next-action]', "data-next-action") == "prep"
        page.click('#differences details[data-group="activity_definitions"] summary')
        assert "behind" in drift_before and "group_id" in page.inner_text("#differences")
        screenshot(page, "journey-1-dashboard-drift")
        stop_server(server)

        configure_demo(instance / "demo" / "cutover.toml")
        add_operator(instance, SECOND_OPERATOR, SECOND_PASSWORD)
        server = start_server(tmp_path, None, {"CUTOVER_MONITOR_POLL_SECONDS": "0.3"})
        page.goto(server.url + "/")  # the session outlives a restart (cookies ignore the port)

        page.click("text=Migration · production")
        page.click("text=Generate prep from development")
        screenshot(page, "journey-2-prep")
        page.click("text=Save as production's prep plan")
        assert page.get_attribute("[data-next-action]", "data-next-action") == "start_run"

        page.click("text=Checklist")
        page.click("button:has-text('Start a run')")
        page.wait_for_url(re.compile(r"/runs/\d+$"))
        run_url = page.url
        assert overview(page).startswith("0 of 12 done — now: Verify the target")
        watch = second.new_page()
        log_in(watch, server, SECOND_OPERATOR, SECOND_PASSWORD)
        watch.goto(run_url)
        watch.evaluate("window.neverReloaded = true")

        for step in STEPS:
            if step == "migrate":
                assert "needs a second operator" in page.inner_text("#head-migrate") or \
                    page.locator("#head-migrate button:has-text('Approve')").count()
                head = watch.locator("#head-migrate")
                head.locator("input[name=note]").fill("Rehearsal log and plan read; go")
                head.locator("button:has-text('Approve')").click()
                watch.wait_for_selector("#head-migrate .signatures >> text=Approved by")
                screenshot(watch, "journey-3-second-operator-approves")
                watch.goto(run_url)  # the approval form posted; keep watching from here
                watch.evaluate("window.neverReloaded = true")
                page.reload()
            state = start(page, step)
            if step == "monitor":
                assert state == "monitoring"
                state = step_state(page, step, ["passed", "failed"], timeout=90000)
            assert state in ("passed", "signed_off"), f"{step}: {state}: {page.inner_text(f'#head-{step}')}"
            # The step's one line is the tail of its log.
            page.wait_for_function("s => document.getElementById('verdict-' + s).textContent === "
                                   "[...document.querySelectorAll('#log-' + s + ' li span')].pop().textContent", arg=step)
            if page.locator(f"#head-{step} button:has-text('Sign off')").count():
                sign_off(page, step)

        page.wait_for_selector("#run-complete")
        assert overview(page).startswith("12 of 12 done — run finished")
        screenshot(page, "journey-4-run-complete")
        watch.wait_for_function("() => document.querySelector('#run-head .state').textContent.trim() === 'finished'",
                                timeout=20000)
        assert watch.evaluate("window.neverReloaded") is True
        page.reload()
        later_steps = {f"log-{s}" for s in STEPS[STEPS.index("migrate"):]}
        assert {k: v for k, v in texts(watch).items() if k in later_steps} == \
            {k: v for k, v in texts(page).items() if k in later_steps}
        screenshot(watch, "journey-5-watcher")

        page.click("#run-head >> text=Report")
        assert "approved by " + SECOND_OPERATOR in page.inner_text("body")
        screenshot(page, "journey-6-report")
        with page.expect_download() as download:
            page.click("text=Download Markdown")
        markdown = download.value.path().read_text(encoding="utf-8")
        assert "- [x] **Migration completed**" in markdown and "Migrate: approved by bea" in markdown
        backup_id = re.search(r"- Id `(\d{8}_\d{6}(?:_\d+)?)`", markdown).group(1)

        page.click("text=Health · production")
        page.click("button:has-text('Verify now')")
        page.wait_for_selector("text=integrity_check")
        screenshot(page, "journey-7-health")

        page.goto(server.url + "/")
        assert "matches" in drift_text(page)
        page.click("text=Backups · production")
        row = page.locator(f'tr[data-backup="{backup_id}"]')
        row.locator("summary:has-text('Restore')").click()
        row.locator("input[name=confirm]").fill("production")
        row.locator("button:has-text('Restore production')").click()
        page.wait_for_selector(".job[data-state='passed']", timeout=60000)
        screenshot(page, "journey-8-restored")

        page.goto(server.url + "/")
        page.click("button:has-text('Inspect again')") if page.locator("button:has-text('Inspect again')").count() else None
        assert drift_text(page) == drift_before  # production is exactly as it was
        screenshot(page, "journey-9-dashboard-as-before")
        assert foreign == []
    finally:
        operator.close()
        second.close()
        stop_server(server)
