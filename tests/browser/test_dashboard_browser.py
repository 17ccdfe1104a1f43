"""Log in through a real browser against `python run.py` and read the dashboard."""
import pytest

from tests.browser.conftest import log_in, screenshot

pytestmark = pytest.mark.browser


def test_login_and_see_both_environments_and_the_drift(page, live_server):
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(live_server.url + "/")
    assert page.url.startswith(live_server.url + "/login")
    screenshot(page, "login")
    log_in(page, live_server)

    cards = page.locator("article.env-card")
    assert cards.count() == 2
    assert page.locator('[data-environment="development"] h2').inner_text().lower() == "development"
    # the whole-file checks land in the background; the card refreshes itself (htmx)
    page.wait_for_selector('[data-environment="production"] .status:has-text("2 orphans")', timeout=20000)
    assert "2 rows point at missing parents" in page.locator('[data-environment="production"]').inner_text()
    assert "behind" in page.locator(".drift-status").inner_text()
    page.click('#differences details[data-group="activity_definitions"] summary')
    group_id = page.locator("#differences tr", has_text="activity_definitions.group_id")
    assert group_id.count() == 1 and "additive" in group_id.inner_text()
    table = page.locator('details[data-table="activity_definitions"]')
    table.locator("summary").click()
    assert table.get_attribute("open") is not None
    assert table.locator("tr.change-only_left:not(.index-row)", has_text="group_id").count() == 1
    assert table.locator("tr.index-row.change-only_left", has_text="idx_activity_definitions_group_id").count() == 1
    screenshot(page, "dashboard")

    # nothing is fetched from another origin (everything is vendored)
    assert all(url.startswith(live_server.url) for url in requests), requests


def test_wrong_password_shows_the_generic_message(page, live_server):
    page.goto(live_server.url + "/login")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", "wrong-password")
    page.click("button[type=submit]")
    assert page.locator(".alert-error").inner_text() == "Unknown operator or wrong password."


def test_logout(page, live_server):
    log_in(page, live_server)
    page.click("text=Log out")
    page.wait_for_url(live_server.url + "/login")
    page.goto(live_server.url + "/")
    assert "/login" in page.url
