"""Starting backups: the default folder is made on first use, a configured one never is."""
import stat

import pytest

from app.actions.backup_jobs import start_backup
from app.core.errors import BackupError
from app.jobs.runner import run_job
from tests.checklist.test_progress import targets_of
from tests.conftest import make_app


def workspace(tmp_path, demo_dir, backup_dirs: str = "") -> object:
    config = tmp_path / "one.toml"
    config.write_text(f'[environments.production]\ndatabase = "{demo_dir / "goals.db"}"\n{backup_dirs}')
    return make_app(tmp_path, config)


def test_the_default_folder_is_made_by_the_first_backup(tmp_path, demo_dir):
    app = workspace(tmp_path, demo_dir)
    folder = tmp_path / "backups" / "production"
    assert not folder.exists()
    with app.app_context():
        env = targets_of(app).environment("production")
        backup_id, job = start_backup(env, "admin", run_here=True)
        assert run_job(job.id).state == "passed"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert (folder / f"goals.db.backup_{backup_id}").is_file()


def test_a_configured_folder_that_is_missing_is_not_made(tmp_path, demo_dir):
    missing = tmp_path / "offsite-mount"
    app = workspace(tmp_path, demo_dir, f'backup_dirs = ["{missing}"]\n')
    with app.app_context(), pytest.raises(BackupError, match="does not exist"):
        start_backup(targets_of(app).environment("production"), "admin", run_here=True)
    assert not missing.exists()
