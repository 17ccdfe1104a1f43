"""The migration page in a real browser: drift caught, prep saved, rehearsed, migrated."""
import pytest

from tests.browser.conftest import log_in, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_prep_rehearse_migrate_from_the_page(page, live_server):
    log_in(page, live_server)
    page.click("text=Migration · production")
    assert "1 statement would stop the migration" in page.locator(".preflight h2").inner_text()
    assert page.locator("button:has-text('Migrate production')").is_disabled()
    screenshot(page, "migration-blocked")

    page.click("text=Generate prep from development")
    assert "CREATE TABLE activity_groups" in page.locator("pre.sql-block").first.inner_text()
    screenshot(page, "migration-prep")
    page.click("text=Save as production's prep plan")
    assert "ready to run" in page.locator(".plan-state").inner_text()

    page.click("text=Rehearse on a copy")
    page.wait_for_selector(".log li:has-text('✓ Rehearsal passed')", timeout=60000)
    page.wait_for_load_state()

    page.fill("input[name=confirm]", "production")
    page.click("button:has-text('Migrate production')")
    page.wait_for_selector(".log li:has-text('✓ Migration of production committed')", timeout=60000)
    page.wait_for_load_state()
    expected = page.locator(".log li.log-expected")
    assert expected.count() >= 6 and "skipping (expected)" in expected.first.inner_text()
    # The page was drawn while the migration ran; drawn again, it shows the state it left.
    page.reload()
    assert "fully migrated" in page.locator(".plan-state").inner_text()
    screenshot(page, "migration-done")

    page.click("text=Dashboard")
    assert "matches" in page.locator(".drift-status").inner_text()
    screenshot(page, "dashboard-after-migration")
