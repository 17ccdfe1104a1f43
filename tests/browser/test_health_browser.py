"""The health page in a real browser, with the real server's scheduler running the ticks."""
import pytest

from tests.browser.conftest import log_in, screenshot, start_server, stop_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_start_monitoring_and_watch_ticks_and_charts(page, tmp_path, demo_dir):
    config = demo_dir / "cutover.toml"
    config.write_text(config.read_text().replace("monitor_interval_minutes = 15", "monitor_interval_minutes = 0.02"))
    server = start_server(tmp_path, config, {"CUTOVER_MONITOR_POLL_SECONDS": "0.2"})
    try:
        log_in(page, server)
        page.click("text=Health · production")
        assert page.locator("text=No window yet").is_visible()
        page.click("text=Start monitoring window")
        page.wait_for_selector("text=Watching production until")
        page.wait_for_timeout(4000)  # a tick every 1.2 s, run by the server's own scheduler
        page.reload()
        assert page.locator("svg.strip rect.cell").count() >= 3
        assert page.locator("figure.chart svg.line path").count() >= 2  # size and rows have lines
        assert page.locator(".checks li[data-check='integrity_check']").count() == 1
        screenshot(page, "health-monitoring")

        page.click("text=Verify now")
        assert "Verification FAILED" in page.locator(".verification h2").inner_text()  # not migrated yet
        assert page.locator(".verification li.check-failed[data-check='null_root_id_goals']").count() == 1
        screenshot(page, "health-verify")
    finally:
        stop_server(server)
