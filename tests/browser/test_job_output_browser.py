"""A job's output is untrusted: HTML or htmx attributes it prints show as text and do nothing."""
import sys

import pytest

from app import create_app
from app.jobs.runner import create_job, run_job
from config import Config
from tests.browser.conftest import log_in, screenshot, start_server, stop_server

pytestmark = pytest.mark.browser

HOSTILE = ['<img src=x onerror=alert(1)>', '<div hx-post="/refresh" hx-trigger="load">boom</div>',
           '<script>alert(2)</script>']


def record_hostile_job(tmp_path, config_path) -> int:
    """Run a command job in this process against the server's own state database."""
    app = create_app(Config, {"CUTOVER_CONFIG": str(config_path), "INSTANCE_DIR": tmp_path / "instance",
                              "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'instance' / 'cutover.db'}",
                              "SECRET_KEY": "x" * 32, "CUTOVER_IS_WORKER": True})
    script = "; ".join(f"print({line!r})" for line in HOSTILE)
    with app.app_context():
        job = run_job(create_job("command", "production", "admin", {"argv": [sys.executable, "-c", script]}).id)
        from app.extensions import db

        db.engine.dispose()
        return job.id


def test_printed_markup_is_shown_as_text(page, tmp_path, demo_config):
    server = start_server(tmp_path, demo_config)
    try:
        job_id = record_hostile_job(tmp_path, demo_config)
        dialogs, requests = [], []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.on("request", lambda request: requests.append(request.url))
        log_in(page, server)
        page.goto(f"{server.url}/jobs/{job_id}")
        page.wait_for_timeout(1000)  # give any injected handler time to fire
        log = page.locator(".log").inner_text()
        for line in HOSTILE:
            assert line in log
        assert page.locator(".log img").count() == 0 and page.locator(".log script").count() == 0
        assert dialogs == []
        assert not any(url.endswith("/refresh") for url in requests), requests
        screenshot(page, "job-hostile-output")
    finally:
        stop_server(server)
