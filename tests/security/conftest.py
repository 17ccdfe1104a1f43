"""One demo site per test module: a real app on a copy of the demo workspace, with a real
backup, an open checklist run and a finished step job, so every route has real ids to aim at."""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import csrf_token_from, log_in, make_app
from tests.security.helpers import snapshot, state_counts


@dataclass
class Site:
    app: object
    root: Path
    workspace: Path
    backup_id: str
    run_id: int
    job_id: int
    step_id: str = "verify-target"
    _clients: dict = field(default_factory=dict)

    @property
    def values(self) -> dict:
        """Plausible values for every URL argument the app uses."""
        return {"name": "production", "backup_id": self.backup_id, "run_id": self.run_id, "job_id": self.job_id,
                "step_id": self.step_id, "filename": "css/cutover.css"}

    @property
    def production(self) -> Path:
        return self.workspace / "goals.db"

    def login(self):
        client = self.app.test_client()
        assert log_in(client).status_code == 302
        return client

    def operator(self, which: str = "main"):
        """A logged-in client kept for the whole module (never logged out by a test)."""
        if which not in self._clients:
            self._clients[which] = self.login()
        return self._clients[which]

    def token(self, client) -> str:
        """The CSRF token of the client's session (from a cheap page)."""
        return csrf_token_from(client.get("/jobs").get_data(as_text=True))

    def login_token(self, client) -> str:
        """The CSRF token of an anonymous session (from the login page)."""
        return csrf_token_from(client.get("/login").get_data(as_text=True))

    def evidence(self) -> dict:
        """Everything an action would change: the state rows and every file of the workspace."""
        return {"rows": state_counts(self.app), "files": snapshot(self.workspace)}


def build_site(root: Path, demo_template: Path, **overrides) -> Site:
    from app.core.backup import create_backup
    from app.extensions import db
    from app.jobs.runner import create_job, run_job
    from app.checklist.progress import create_run
    from app.targets import current_targets

    shutil.copytree(demo_template, root / "demo")
    app = make_app(root, root / "demo" / "cutover.toml", **overrides)
    with app.app_context():
        targets = current_targets()
        env = targets.environment("production")
        backup = create_backup(env.target, env.backup_dirs)
        run = create_run(targets, env, "admin")
        job = run_job(create_job("verify-target", env.name, "admin", {}, run_id=run.id, step="verify-target").id)
        assert job.state == "passed", job.error
        site = Site(app, root, root / "demo", backup.id, run.id, job.id)
        db.session.remove()
    return site


@pytest.fixture(scope="module")
def site(tmp_path_factory, demo_template):
    site = build_site(tmp_path_factory.mktemp("site"), demo_template)
    yield site
    with site.app.app_context():
        from app.extensions import db

        db.engine.dispose()
