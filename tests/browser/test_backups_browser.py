"""The backups page in a real browser: a large backup with its live progress bar, then a restore."""
import sqlite3

import pytest

from tests.browser.conftest import log_in, screenshot, start_server, stop_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def large_production(demo_dir):
    """About 300 MB of attachments, so a backup lasts long enough to watch."""
    conn = sqlite3.connect(demo_dir / "goals.db")
    conn.execute("CREATE TABLE attachments (id INTEGER PRIMARY KEY, body BLOB)")
    conn.execute("WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n LIMIT 75000) "
                 "INSERT INTO attachments (body) SELECT randomblob(4000) FROM n")
    conn.commit()
    conn.close()
    return demo_dir


def test_back_up_with_progress_then_restore(page, tmp_path, large_production):
    server = start_server(tmp_path, large_production / "cutover.toml")
    try:
        log_in(page, server)
        page.click("text=Backups · production")
        assert page.locator("text=No backups yet.").is_visible()
        page.click("text=Back up now")
        page.wait_for_selector("progress", state="visible")
        screenshot(page, "backup-progress")
        page.wait_for_selector("tr[data-backup]", timeout=120000)  # the page reloads when the job ends
        row = page.locator("tr[data-backup]")
        assert row.locator(".state").inner_text() == "verified"
        assert row.locator(".copies div").count() == 2
        screenshot(page, "backup-done")

        page.click("text=Restore…")
        page.fill("input[name=confirm]", "production")
        page.click("button:has-text('Restore production')")
        page.wait_for_selector(".log li:has-text('✓ production restored from')", timeout=120000)
        page.wait_for_load_state()
        assert page.locator("[data-state]").get_attribute("data-state") == "passed"
        screenshot(page, "restore-done")
    finally:
        stop_server(server)
