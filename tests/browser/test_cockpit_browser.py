"""The cockpit in a real browser at 1400 and 390 px: the run's sticky progress header, finished
steps folded to their verdict and the current one open, logs that open at their end and follow
their tail, one message style per outcome, and every page usable on a phone.

Screenshots of each state go to test-artifacts/cockpit-*.png."""
import json
import re

import pytest

from tests.browser.conftest import ARTIFACTS, log_in, screenshot, start_server, stop_server
from tests.browser.test_runs_browser import step_state

pytestmark = pytest.mark.browser

WIDE, PHONE = {"width": 1400, "height": 900}, {"width": 390, "height": 844}
CHATTY = ("for i in range(300): print(f'row batch {i} checked', flush=True)\n"
          "print('Chatty verdict: all 300 batches checked', flush=True)")
# The slow step runs until the test lets it finish (or two minutes pass): a fixed length was
# too short when a loaded machine made the browser slower than the step.
SLOW = ("import os, time\nfor i in range(1200):\n    if os.path.exists({release!r}):\n        break\n"
        "    print(f'slow line {{i}}', flush=True)\n    time.sleep(0.1)\nprint('Slow verdict: done', flush=True)")
LAST = "print('Last verdict: nothing left', flush=True)"


def command_step(step_id: str, title: str, script: str) -> str:
    return (f'[checklist.steps.{step_id}]\nkind = "command"\ntitle = "{title}"\n'
            f'argv = ["python3", "-c", {json.dumps(script)}]\n\n')


def three_step_checklist(config):
    """A long log, a step that runs until release_slow_step(config), and a last one."""
    text = config.read_text().split("[checklist.steps.hotfix]")[0]
    slow = SLOW.format(release=str(slow_step_release(config)))
    config.write_text(text + '[checklist]\norder = ["chatty", "slow", "last"]\n\n' + command_step("chatty", "Chatty", CHATTY)
                      + command_step("slow", "Slow", slow) + command_step("last", "Last", LAST))
    return config


def slow_step_release(config):
    return config.parent / "release-slow-step"


def release_slow_step(config) -> None:
    slow_step_release(config).touch()


def progress_text(page) -> str:
    return " ".join(page.inner_text("#run-progress .run-progress-text").split())


def folded(page) -> dict[str, bool]:
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('.step')].map(
        step => [step.id.slice(5), !step.querySelector('.step-fold').open]))""")


def at_end(page, selector: str) -> bool:
    return page.eval_on_selector(selector, "log => log.scrollHeight > log.clientHeight"
                                           " && Math.abs(log.scrollTop + log.clientHeight - log.scrollHeight) <= 2")


def last_line(page, step: str) -> str:
    return page.locator(f"#log-{step} li span").last.text_content()


def fits_the_screen(page, width: int = 390) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= width, page.url


def within_the_screen(page, selector: str, width: int = 390) -> None:
    box = page.locator(selector).first.bounding_box()
    assert box is not None, f"{selector} is not shown on {page.url}"
    assert box["x"] >= 0 and box["x"] + box["width"] <= width, (selector, page.url, box)


def test_the_run_page_at_a_glance(browser, tmp_path, demo_config):
    server = start_server(tmp_path, three_step_checklist(demo_config))
    wide, phone = browser.new_context(viewport=WIDE), browser.new_context(viewport=PHONE)
    try:
        page = wide.new_page()
        log_in(page, server)
        page.click("text=Checklist")
        page.click("button:has-text('Start a run')")
        page.wait_for_url(re.compile(r"/runs/\d+$"))
        run_url = page.url
        assert progress_text(page).startswith("0 of 3 done — now: Chatty")
        # A blocked step says what it waits for once; the one behind it does not repeat it.
        assert page.inner_text("#verdict-slow").startswith("Waits for: Chatty")
        assert page.inner_text("#verdict-last") == ""

        page.locator("#head-chatty form button.btn-primary").click()
        assert step_state(page, "chatty", ["passed"]) == "passed"
        # Finished while watched: it folds to its final line; the next step opens.
        page.wait_for_function("() => !document.querySelector('#step-chatty .step-fold').open")
        page.wait_for_function("() => document.querySelector('#step-slow .step-fold').open")
        assert page.inner_text("#verdict-chatty") == last_line(page, "chatty") == "✓ python3 exited with code 0"
        assert page.get_attribute("#verdict-chatty", "class") == "step-verdict verdict-ok"

        page.locator("#head-slow form button.btn-primary").click()
        assert step_state(page, "slow", ["running"]) == "running"
        page.wait_for_function("() => document.querySelectorAll('#log-slow li').length > 40")
        page.wait_for_function("() => document.getElementById('run-progress').innerText.includes('now: Slow')")
        assert progress_text(page).startswith("1 of 3 done — now: Slow")
        assert page.get_attribute("#run-progress a.tl[aria-current=step]", "href") == "#step-slow"
        assert folded(page) == {"chatty": True, "slow": False, "last": True}
        assert at_end(page, "#log-slow")  # the tail is followed while it grows
        assert page.inner_text("#verdict-slow").startswith("slow line ")
        screenshot(page, "cockpit-run-live-1400")

        # An operator who scrolled up to read keeps their place while lines arrive.
        page.eval_on_selector("#log-slow", "log => { log.scrollTop = 0; }")
        seen = page.locator("#log-slow li").count()
        page.wait_for_function(f"() => document.querySelectorAll('#log-slow li').length > {seen + 5}")
        assert page.eval_on_selector("#log-slow", "log => log.scrollTop") == 0
        # The header's link opens a folded step at its end; the header stays in view down the page.
        page.click("#run-progress a[href='#step-chatty']")
        assert folded(page)["chatty"] is False
        page.wait_for_function("() => document.getElementById('log-chatty').scrollTop > 0")
        assert at_end(page, "#log-chatty")
        page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        assert abs(page.evaluate("document.getElementById('run-progress').getBoundingClientRect().top")) <= 1
        page.screenshot(path=str(ARTIFACTS / "cockpit-run-live-scrolled-1400.png"))  # the viewport, header stuck

        watcher = phone.new_page()
        log_in(watcher, server)
        watcher.goto(run_url)
        assert at_end(watcher, "#log-slow") or step_state(watcher, "slow", ["passed"]) == "passed"
        fits_the_screen(watcher)
        for action in (".who button:has-text('Log out')", "#run-head summary:has-text('Abandon')",
                       "#run-head a:has-text('Download report')", "#run-progress a[href='#step-last']"):
            within_the_screen(watcher, action)
        screenshot(watcher, "cockpit-run-live-390")

        # The running step's job page: htmx replaces its panel twice a second; the log keeps
        # following the tail, or the operator's place once they scrolled up.
        watcher.goto(server.url + page.get_attribute("#step-slow a.step-job", "href"))
        assert watcher.get_attribute(".job", "data-state") == "running"
        watcher.wait_for_timeout(1200)
        assert at_end(watcher, ".job .log")
        screenshot(watcher, "cockpit-job-live-390")
        watcher.eval_on_selector(".job .log", "log => { log.scrollTop = 0; }")
        watcher.wait_for_timeout(1200)
        assert watcher.get_attribute(".job", "data-state") == "running"
        assert watcher.eval_on_selector(".job .log", "log => log.scrollTop") == 0

        release_slow_step(demo_config)
        assert step_state(page, "slow", ["passed"], timeout=30000) == "passed"
        page.wait_for_function("() => document.querySelector('#step-last .step-fold').open")
        page.locator("#head-last form button.btn-primary").click()
        assert step_state(page, "last", ["passed"]) == "passed"

        page.reload()  # a finished run: every step folded to its verdict
        assert progress_text(page).startswith("3 of 3 done — run finished")
        assert folded(page) == {"chatty": True, "slow": True, "last": True}
        assert page.inner_text("#verdict-slow") == last_line(page, "slow") == "✓ python3 exited with code 0"
        page.click("#sum-chatty h2")
        assert at_end(page, "#log-chatty")  # opened at its end: the verdict in view
        screenshot(page, "cockpit-run-finished-1400")

        job_url = server.url + page.get_attribute("#step-chatty a.step-job", "href")
        page.goto(job_url)
        assert at_end(page, ".job .log")
        screenshot(page, "cockpit-job-1400")

        for url, name in ((run_url, "run-finished"), (job_url, "job")):
            watcher.goto(url)
            fits_the_screen(watcher)
            within_the_screen(watcher, ".who button:has-text('Log out')")
            screenshot(watcher, f"cockpit-{name}-390")
        within_the_screen(watcher, ".job .log")
        assert at_end(watcher, ".job .log")
    finally:
        wide.close()
        phone.close()
        stop_server(server)


PAGES = {  # page: the actions an operator must reach on it
    "dashboard": ("/", ["button:has-text('Inspect again')"]),
    "runs": ("/runs", ["button:has-text('Start a run')"]),
    "history": ("/jobs", ["table.jobs a"]),
    "backups": ("/environments/production/backups",
                ["button:has-text('Back up now')", "summary:has-text('Restore')", "button:has-text('Verify again')"]),
    "migration": ("/environments/production/migration", ["button:has-text('Rehearse on a copy')"]),
    "health": ("/environments/production/health", ["button:has-text('Verify now')"]),
}


def test_outcomes_and_every_page_on_a_phone(browser, tmp_path, demo_config):
    server = start_server(tmp_path, demo_config)
    wide, phone = browser.new_context(viewport=WIDE), browser.new_context(viewport=PHONE)
    try:
        page = wide.new_page()
        log_in(page, server)
        page.wait_for_selector('[data-environment="production"] .status:not(.status-checking)', timeout=20000)
        screenshot(page, "cockpit-dashboard-1400")
        # At 1400 px the navigation is one row.
        tops = page.eval_on_selector_all(".topbar .mainnav a, .topbar .who", "els => els.map(e => e.getBoundingClientRect().top)")
        assert max(tops) - min(tops) < 8, tops
        page.click("text=Backups · production")
        page.click("text=Back up now")
        started = page.locator(".flash")
        assert started.get_attribute("class") == "flash msg msg-success" and started.get_attribute("role") == "status"
        page.wait_for_selector("tr[data-backup]", timeout=60000)  # the page reloads when the job ends
        assert at_end(page, ".job .log") or page.eval_on_selector(".job .log", "log => log.scrollHeight <= log.clientHeight")

        # A refusal reads as one: its own class and mark, announced as an alert, never the success style.
        row = page.locator("tr[data-backup]").first
        row.locator("summary:has-text('Restore')").click()
        row.locator("input[name=confirm]").fill("prod")
        row.locator("button:has-text('Restore production')").click()
        page.wait_for_selector(".flash.msg-refusal")  # the form posts in the background, then the page follows
        refusal = page.locator(".flash")
        assert refusal.count() == 1 and refusal.inner_text().startswith("Restore not started")
        assert refusal.get_attribute("class") == "flash msg msg-refusal" and refusal.get_attribute("role") == "alert"
        mark = page.eval_on_selector(".flash", "el => getComputedStyle(el, '::before').content")
        assert "⊘" in mark
        screenshot(page, "cockpit-refusal-1400")

        small = phone.new_page()
        log_in(small, server)
        for name, (path, actions) in {**PAGES, "job": ("/jobs/1", [".job .log"])}.items():
            small.goto(server.url + path)
            if name == "dashboard":
                small.wait_for_selector('[data-environment="production"] .status:not(.status-checking)', timeout=20000)
            fits_the_screen(small)
            for action in [".who button:has-text('Log out')", *actions]:
                within_the_screen(small, action)
            screenshot(small, f"cockpit-{name}-390")
        assert at_end(small, ".job .log") or small.eval_on_selector(".log", "log => log.scrollHeight <= log.clientHeight")

        # The refusal on a phone: reachable, readable, and the page still fits.
        small.goto(server.url + PAGES["backups"][0])
        row = small.locator("tr[data-backup]").first
        row.locator("summary:has-text('Restore')").click()
        within_the_screen(small, "tr[data-backup] button:has-text('Restore production')")
        row.locator("input[name=confirm]").fill("prod")
        row.locator("button:has-text('Restore production')").click()
        small.wait_for_selector(".flash.msg-refusal[role=alert]")
        assert small.locator(".flash.msg-refusal[role=alert]").count() == 1
        fits_the_screen(small)
        within_the_screen(small, ".flash.msg-refusal")
        screenshot(small, "cockpit-refusal-390")
    finally:
        wide.close()
        phone.close()
        stop_server(server)
