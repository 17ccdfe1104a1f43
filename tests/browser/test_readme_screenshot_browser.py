"""The README's picture is a real screenshot of the run page, taken here on the demo workspace:
a checklist run up to its rehearsal, signed off, with the production migration next.

It always lands in test-artifacts/readme-run.png; with CUTOVER_README_SCREENSHOT=1 it also
replaces docs/run.png, the image README.md shows:

    CUTOVER_README_SCREENSHOT=1 python -m pytest tests/browser/test_readme_screenshot_browser.py
"""
import os
import re
import shutil

import pytest

from tests.browser.conftest import PROJECT, log_in, screenshot, start_server, stop_server
from tests.browser.test_runs_browser import sign_off, step_state

pytestmark = pytest.mark.browser

UP_TO_MIGRATE = ["verify-target", "app-stopped", "data-volume", "backup", "integrity", "rehearse"]


def test_the_readme_shows_the_run_page(browser, tmp_path, demo_config):
    server = start_server(tmp_path, demo_config)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        log_in(page, server)
        page.goto(server.url + "/environments/production/migration/prep")
        page.click("text=Save as production's prep plan")
        page.wait_for_selector(".plan-state")
        page.click("text=Checklist")
        page.click("button:has-text('Start a run')")
        page.wait_for_url(re.compile(r"/runs/\d+$"))
        for step in UP_TO_MIGRATE:
            page.locator(f"#head-{step} form button.btn-primary").click()
            assert step_state(page, step, ["passed", "signed_off"], timeout=90000) in ("passed", "signed_off")
            if page.locator(f"#head-{step} button:has-text('Sign off')").count():
                sign_off(page, step)
        page.reload()
        page.wait_for_function("() => document.querySelector('#step-migrate .step-fold').open")
        assert "6 of 12 done — now: Migrate" in " ".join(page.inner_text("#run-progress").split())
        page.evaluate("window.scrollTo(0, 0)")
        path = screenshot(page, "readme-run")
        page.screenshot(path=str(path), full_page=False)  # the first screen, as a reader sees it
        if os.environ.get("CUTOVER_README_SCREENSHOT") == "1":
            shutil.copyfile(path, PROJECT / "docs" / "run.png")
    finally:
        context.close()
        stop_server(server)
