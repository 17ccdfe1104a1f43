"""`flask --app run cutover ...` through Click's runner and as a real subprocess."""
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]


def cli(tmp_path, config, *args):
    env = {**os.environ, "CUTOVER_CONFIG": str(config), "CUTOVER_INSTANCE_DIR": str(tmp_path / "instance"),
           "CUTOVER_ADMIN_PASSWORD": "cli-admin-password"}
    return subprocess.run([sys.executable, "-m", "flask", "--app", "run", "cutover", *args],
                          cwd=PROJECT, env=env, capture_output=True, text=True, timeout=120)


def test_envs_text_and_json(tmp_path, demo_config):
    text = cli(tmp_path, demo_config, "envs", "--check")
    assert text.returncode == 0, text.stderr
    assert "development (reference)" in text.stdout and "foreign-key orphans: 2" in text.stdout
    result = cli(tmp_path, demo_config, "envs", "--json", "--check")
    envs = {e["name"]: e for e in json.loads(result.stdout)["environments"]}
    assert envs["development"]["row_counts"]["goals"] == 45
    assert envs["production"]["status"] == "ok" and envs["production"]["facts"]["foreign_key_violations"] == 2


def test_envs_without_check_reads_the_schema_only_and_says_so(tmp_path, demo_config):
    text = cli(tmp_path, demo_config, "envs")
    assert text.returncode == 0, text.stderr
    assert text.stdout.count("whole-file checks (quick_check, foreign_key_check) not run") == 2
    assert "add --check to run them" in text.stdout and "foreign-key orphans" not in text.stdout
    result = cli(tmp_path, demo_config, "envs", "--json")
    assert result.returncode == 0
    envs = {e["name"]: e for e in json.loads(result.stdout)["environments"]}
    production = envs["production"]
    assert set(production) == set(json.loads(cli(tmp_path, demo_config, "envs", "--json", "--check").stdout)
                                  ["environments"][1])  # the same keys either way
    assert production["status"] == "not_checked" and production["row_counts"]["goals"] == 200
    assert production["facts"]["quick_check"] is None and production["facts"]["foreign_key_violations"] is None


def failing_quick_check(path: Path) -> None:
    """A readable database whose quick_check fails: a NULL in a column declared NOT NULL afterwards."""
    with closing(sqlite3.connect(path, isolation_level=None)) as connection:
        connection.executescript(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, x TEXT); INSERT INTO t (x) VALUES (NULL);"
            "PRAGMA writable_schema = ON;"
            "UPDATE sqlite_schema SET sql = 'CREATE TABLE t (id INTEGER PRIMARY KEY, x TEXT NOT NULL)' "
            "WHERE name = 't';")


def test_only_check_runs_quick_check_and_its_problem_exits_1(tmp_path, demo_dir):
    failing_quick_check(demo_dir / "broken.db")
    config = demo_dir / "cutover.toml"
    config.write_text(config.read_text() + f'\n[environments.broken]\ndatabase = "{demo_dir / "broken.db"}"\n')
    quick = cli(tmp_path, config, "envs")
    assert quick.returncode == 0, quick.stdout + quick.stderr  # nothing was checked, nothing found
    checked = cli(tmp_path, config, "envs", "--check")
    assert checked.returncode == 1 and "integrity: NULL value in t.x" in checked.stdout
    diff = cli(tmp_path, config, "diff", "broken", "broken")
    assert diff.returncode == 0 and "not run" in diff.stdout and "NULL value" not in diff.stdout
    diff = cli(tmp_path, config, "diff", "broken", "broken", "--check")
    assert diff.returncode == 0, diff.stderr  # diff's exit code says whether the schemas differ
    assert diff.stdout.endswith("Checks: broken: quick_check NULL value in t.x.\n")


def test_envs_exits_1_when_an_environment_is_unreadable(tmp_path, demo_dir):
    (demo_dir / "goals.db").unlink()
    result = cli(tmp_path, demo_dir / "cutover.toml", "envs")
    assert result.returncode == 1
    assert "UNAVAILABLE (missing)" in result.stdout
    assert not (demo_dir / "goals.db").exists()


def test_a_virtual_table_whose_module_is_missing_is_explained_and_migrated_around(tmp_path):
    import sqlite3

    folder = tmp_path / "ws"
    (folder / "backups").mkdir(parents=True)
    for name, columns in (("dev", "a, b"), ("prod", "a")):
        with sqlite3.connect(folder / f"{name}.db") as connection:
            connection.executescript(
                f"CREATE TABLE other ({columns}); PRAGMA writable_schema = ON;"
                "INSERT INTO sqlite_schema (type, name, tbl_name, rootpage, sql) "
                "VALUES ('table', 'spell', 'spell', 0, 'CREATE VIRTUAL TABLE spell USING spellfix1');")
        connection.close()
    (folder / "plan.sql").write_text("ALTER TABLE other ADD COLUMN b;\n")
    config = folder / "cutover.toml"
    config.write_text('[environments.development]\ndatabase = "dev.db"\nreference = true\n'
                      '[environments.production]\ndatabase = "prod.db"\nbackup_dirs = ["backups"]\n'
                      '[migration]\nplans = ["plan.sql"]\n')
    envs = cli(tmp_path, config, "envs")
    assert envs.returncode == 0, envs.stdout + envs.stderr
    assert "spell" in envs.stdout and "unreadable" in envs.stdout
    assert "uses the module spellfix1, which this SQLite does not have" in envs.stdout
    migrated = cli(tmp_path, config, "migrate", "production", "--yes")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert "target changed since its rehearsal" not in migrated.stdout + migrated.stderr
    diff = cli(tmp_path, config, "diff", "development", "production")
    assert diff.returncode == 0 and "No differences" in diff.stdout
    assert "Note: production: Virtual table spell uses the module spellfix1" in diff.stdout


def test_diff_json_matches_the_api_shape_and_exits_1(tmp_path, demo_config):
    result = cli(tmp_path, demo_config, "diff", "development", "production", "--json")
    assert result.returncode == 1
    body = json.loads(result.stdout)
    assert any(d["name"] == "group_id" and d["fix"] == "additive" for d in body["differences"])
    assert body["checks"] == [{"environment": side, "state": "not_run", "quick_check": None,
                               "foreign_key_violations": None} for side in ("development", "production")]
    checked = json.loads(cli(tmp_path, demo_config, "diff", "development", "production", "--json", "--check").stdout)
    assert checked["checks"] == [{"environment": "development", "state": "done", "quick_check": "ok",
                                  "foreign_key_violations": 0},
                                 {"environment": "production", "state": "done", "quick_check": "ok",
                                  "foreign_key_violations": 2}]
    assert checked["differences"] == body["differences"]


def test_diff_text(tmp_path, demo_config):
    result = cli(tmp_path, demo_config, "diff", "development", "production")
    assert result.returncode == 1
    assert "production is behind relative to development" in result.stdout
    assert "activity_definitions.group_id" in result.stdout
    assert result.stdout.endswith("Note: whole-file checks (quick_check, foreign_key_check) not run: they read "
                                  "every page; add --check to run them.\n")
    checked = cli(tmp_path, demo_config, "diff", "development", "production", "--check")
    assert checked.returncode == 1
    assert checked.stdout.endswith("Checks: development: quick_check ok, 0 foreign-key orphans; "
                                   "production: quick_check ok, 2 foreign-key orphans.\n")


def test_diff_of_paths_and_of_identical_files_exits_0(tmp_path, demo_dir):
    copy = tmp_path / "copy.db"
    shutil.copy(demo_dir / "goals.db", copy)
    result = cli(tmp_path, demo_dir / "cutover.toml", "diff", "production", str(copy))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No differences" in result.stdout


def test_diff_of_an_unknown_name_is_a_usage_error(tmp_path, demo_config):
    result = cli(tmp_path, demo_config, "diff", "development", "staging")
    assert result.returncode == 2
    assert "'staging' is neither a configured environment" in result.stderr


def test_diff_of_an_unreadable_file_exits_1(tmp_path, demo_config):
    bad = tmp_path / "bad.db"
    bad.write_text("not a database")
    result = cli(tmp_path, demo_config, "diff", "development", str(bad))
    assert result.returncode == 1
    assert "Error:" in result.stderr and bad.read_text() == "not a database"


def test_bad_config_exits_2_with_one_clear_line(tmp_path):
    config = tmp_path / "cutover.toml"
    config.write_text("[environments.prod]\ndatabse = 'x.db'\n")
    result = cli(tmp_path, config, "envs")
    assert result.returncode == 2
    assert f"cutover: {config}: unknown key 'environments.prod.databse'" in result.stderr
    assert "Traceback" not in result.stderr


def test_add_operator(app, runner):
    result = runner.invoke(args=["cutover", "add-operator", "will"], input="a-long-password\na-long-password\n")
    assert result.exit_code == 0, result.output
    assert "Operator 'will' created." in result.output
    again = runner.invoke(args=["cutover", "add-operator", "will", "--password", "another-password"])
    assert again.exit_code == 2 and "already exists; `cutover reset-password will`" in again.output
    short = runner.invoke(args=["cutover", "add-operator", "eve", "--password", "short"])
    assert short.exit_code == 2 and "too short" in short.output
    bad = runner.invoke(args=["cutover", "add-operator", "x; touch /tmp/pwned", "--password", "long-enough-pw"])
    assert bad.exit_code == 2 and "not valid" in bad.output



def test_reset_password_replaces_a_lost_one_and_logs_the_operator_out(app, runner, logged_in):
    from tests.conftest import ADMIN_PASSWORD, log_in

    assert logged_in.get("/").status_code == 200
    result = runner.invoke(args=["cutover", "reset-password", "admin"], input="a-new-password\na-new-password\n")
    assert result.exit_code == 0, result.output
    assert "Operator 'admin' has a new password; their open sessions are logged out." in result.output
    assert logged_in.get("/").status_code == 302  # the session from before the reset is dead
    assert log_in(app.test_client(), "admin", ADMIN_PASSWORD).status_code != 302
    assert log_in(app.test_client(), "admin", "a-new-password").status_code == 302
    with app.app_context():
        from app.models import AuditEntry
        from app.extensions import db

        entries = db.session.query(AuditEntry).filter_by(action="reset-password").all()
        assert [(entry.actor.startswith("cli:"), entry.target) for entry in entries] == [(True, "admin")]
        assert "a-new-password" not in entries[0].detail


def test_reset_password_refuses_an_unknown_operator_and_a_short_password(app, runner):
    unknown = runner.invoke(args=["cutover", "reset-password", "nobody", "--password", "long-enough-pw"])
    assert unknown.exit_code == 2 and "No operator is named 'nobody'" in unknown.output
    short = runner.invoke(args=["cutover", "reset-password", "admin", "--password", "short"])
    assert short.exit_code == 2 and "too short" in short.output
    from tests.conftest import ADMIN_PASSWORD, log_in

    assert log_in(app.test_client(), "admin", ADMIN_PASSWORD).status_code == 302

def test_backup_backups_and_restore(tmp_path, demo_dir):
    config = demo_dir / "cutover.toml"
    result = cli(tmp_path, config, "backup", "production", "--json")
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["status"] == "verified" and len(body["copies"]) == 2
    assert all(copy["sha256"] == body["sha256"] and Path(copy["path"]).is_file() for copy in body["copies"])
    assert f"✓ Backup {body['id']} verified" in result.stderr  # the page's lines, kept off the JSON
    listing = cli(tmp_path, config, "backups", "production")
    assert listing.returncode == 0 and f"{body['id']}  verified" in listing.stdout
    refused = cli(tmp_path, config, "restore", "production", body["id"])
    assert refused.returncode == 2 and "add --yes" in refused.stderr
    restored = cli(tmp_path, config, "restore", "production", body["id"], "--yes")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "✓ production restored from" in restored.stdout


def test_backup_into_a_missing_folder_fails_and_leaves_nothing(tmp_path, demo_dir):
    config = demo_dir / "cutover.toml"
    config.write_text(config.read_text().replace('"backups/offsite"', '"backups/nowhere"'))
    before = (demo_dir / "goals.db").read_bytes()
    result = cli(tmp_path, config, "backup", "production")
    assert result.returncode == 1
    assert "backups/nowhere" in result.stderr
    assert (demo_dir / "goals.db").read_bytes() == before
    assert list((demo_dir / "backups/local").iterdir()) == []


def test_restore_rejects_a_made_up_id(tmp_path, demo_config):
    result = cli(tmp_path, demo_config, "restore", "production", "../../etc/passwd", "--yes")
    assert result.returncode == 2, result.stderr
    assert "Error:" in result.stderr


def test_plan_prep_rehearse_migrate(tmp_path, demo_dir):
    config = demo_dir / "cutover.toml"
    before = (demo_dir / "goals.db").read_bytes()
    plan = cli(tmp_path, config, "plan", "production")
    assert plan.returncode == 1
    assert "✗ WILL FAIL      CREATE INDEX idx_activity_definitions_group_id" in plan.stdout
    assert "BLOCKED" in plan.stdout and "fix: production lacks activity_definitions.group_id" in plan.stdout
    rehearsal = cli(tmp_path, config, "rehearse", "production")
    assert rehearsal.returncode == 1 and "no such column: group_id" in rehearsal.stdout + rehearsal.stderr
    refused = cli(tmp_path, config, "migrate", "production")
    assert refused.returncode == 2 and "add --yes" in refused.stderr
    failed = cli(tmp_path, config, "migrate", "production", "--yes")
    assert failed.returncode == 1
    assert (demo_dir / "goals.db").read_bytes() == before

    prep_file = tmp_path / "prep.sql"
    prep = cli(tmp_path, config, "prep", "production", "--reference", "development", "--output", str(prep_file))
    assert prep.returncode == 0 and "CREATE TABLE activity_groups" in prep_file.read_text()
    plans = ["--plan", str(prep_file), "--plan", str(demo_dir / "plans/migrate_database_improvements.sql"),
             "--plan", str(demo_dir / "plans/hotfix_activity_instances.sql")]
    assert cli(tmp_path, config, "plan", "production", *plans).returncode == 0
    assert cli(tmp_path, config, "rehearse", "production", *plans).returncode == 0
    migrated = cli(tmp_path, config, "migrate", "production", *plans, "--yes")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert "⚠ Index already exists, skipping (expected)" in migrated.stdout
    assert cli(tmp_path, config, "diff", "development", "production").returncode == 0


def test_plan_json_and_a_missing_plan_file(tmp_path, demo_config):
    body = json.loads(cli(tmp_path, demo_config, "plan", "production", "--json").stdout)
    assert body["reconciliation"]["counts"]["will_fail"] == 1
    missing = cli(tmp_path, demo_config, "plan", "production", "--plan", str(tmp_path / "nope.sql"))
    assert missing.returncode == 2 and "nope.sql" in missing.stderr


def test_prep_never_overwrites_a_file_and_says_so(tmp_path, demo_config):
    existing = tmp_path / "mine.sql"
    existing.write_text("-- the operator's own notes\n")
    before = os.stat(existing)
    refused = cli(tmp_path, demo_config, "prep", "production", "--reference", "development", "--output", str(existing))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert f"Error: {existing} already exists; Cutover never overwrites a file" in refused.stderr
    assert existing.read_text() == "-- the operator's own notes\n"
    assert os.stat(existing).st_mtime_ns == before.st_mtime_ns
    nowhere = tmp_path / "no-such-folder" / "prep.sql"
    missing = cli(tmp_path, demo_config, "prep", "production", "--reference", "development", "--output", str(nowhere))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert f"Cannot write the plan to {nowhere}: No such file or directory" in missing.stderr
    assert not nowhere.parent.exists()


def test_monitor_start_refuses_a_window_that_is_not_a_sane_number(tmp_path, demo_dir):
    config = demo_dir / "cutover.toml"
    text = config.read_text()
    for bad in ("nan", "inf", "1e300"):
        config.write_text(text.replace("monitor_hours = 24", f"monitor_hours = {bad}"))
        result = cli(tmp_path, config, "monitor-start", "production")
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.strip() == (f"cutover: {config}: 'verification.monitor_hours' must be a positive number "
                                         f"of hours, at most 8784; it is {'1e+300' if bad == '1e300' else bad}.")
    config.write_text(text)
    for option, bad in (("--hours", "inf"), ("--hours", "1e300"), ("--interval-minutes", "nan"),
                        ("--interval-minutes", "0")):
        result = cli(tmp_path, config, "monitor-start", "production", option, bad)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith(f"Error: {option} must be a positive")
    assert "Watching production until" in cli(tmp_path, config, "monitor-start", "production", "--hours", "0.5").stdout


def test_migrate_rehearses_again_after_a_double_quoted_string_changes_case(tmp_path):
    """`"Archived"` names no column: SQLite reads it as a string, so the edited plan deletes
    other rows and its old rehearsal must not be reused."""
    import sqlite3
    from contextlib import closing

    workspace = tmp_path / "workspace"
    (workspace / "backups").mkdir(parents=True)
    database = workspace / "app.db"
    with closing(sqlite3.connect(database)) as connection:
        connection.executescript("CREATE TABLE items (id INTEGER PRIMARY KEY, status TEXT);"
                                 "INSERT INTO items (status) VALUES ('Archived'), ('archived'), ('live');")
    plan = workspace / "cleanup.sql"
    plan.write_text('DELETE FROM items WHERE status = "Archived";\n', encoding="utf-8")
    config = workspace / "cutover.toml"
    config.write_text('[environments.production]\ndatabase = "app.db"\nbackup_dirs = ["backups"]\n\n'
                      '[migration]\nplans = ["cleanup.sql"]\n', encoding="utf-8")
    assert cli(tmp_path, config, "rehearse", "production").returncode == 0
    plan.write_text('DELETE FROM items WHERE status = "archived";\n', encoding="utf-8")
    migrated = cli(tmp_path, config, "migrate", "production", "--yes")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert "Using the passing rehearsal" not in migrated.stdout
    assert "No passing rehearsal of this plan on this schema yet: rehearsing now." in migrated.stdout
    with closing(sqlite3.connect(database)) as connection:
        assert connection.execute("SELECT status FROM items ORDER BY id").fetchall() == [("Archived",), ("live",)]


REBUILD_TARGET = """
CREATE TABLE items (id INTEGER PRIMARY KEY, code TEXT, status TEXT);
CREATE INDEX items_status ON items (status);
CREATE TABLE audit (item_id INTEGER);
CREATE TRIGGER items_audit AFTER UPDATE ON items BEGIN INSERT INTO audit VALUES (new.id); END;
INSERT INTO items (code, status) VALUES ('a', 'live');
"""
FORGETFUL_REBUILD = """CREATE TABLE items_new (id INTEGER PRIMARY KEY, code TEXT, status TEXT, price REAL);
INSERT INTO items_new (id, code, status) SELECT id, code, status FROM items;
DROP TABLE items;
ALTER TABLE items_new RENAME TO items;
"""


def test_a_rebuild_that_loses_a_trigger_and_an_index_is_blocked_until_accepted(tmp_path):
    import hashlib
    import sqlite3
    from contextlib import closing

    workspace = tmp_path / "workspace"
    (workspace / "backups").mkdir(parents=True)
    database = workspace / "app.db"
    with closing(sqlite3.connect(database)) as connection:
        connection.executescript(REBUILD_TARGET)
    plan = workspace / "rebuild.sql"
    plan.write_text(FORGETFUL_REBUILD, encoding="utf-8")
    config = workspace / "cutover.toml"
    config.write_text('[environments.production]\ndatabase = "app.db"\nbackup_dirs = ["backups"]\n\n'
                      '[migration]\nplans = ["rebuild.sql"]\n', encoding="utf-8")
    before = hashlib.sha256(database.read_bytes()).hexdigest(), database.stat().st_mtime_ns

    previewed = cli(tmp_path, config, "plan", "production")
    assert previewed.returncode == 1, previewed.stdout + previewed.stderr
    assert ("BLOCKED DROP TABLE items: trigger items_audit on items is destroyed by statement 3 "
            f"({plan}:3: DROP TABLE items) and the plan does not re-create it") in previewed.stdout
    assert "BLOCKED DROP TABLE items: index items_status on items is destroyed" in previewed.stdout
    assert "`-- accept-drop: index items_status`" in previewed.stdout
    rehearsal = cli(tmp_path, config, "rehearse", "production")
    assert rehearsal.returncode == 1 and "✗ Lost: trigger items_audit on items" in rehearsal.stdout + rehearsal.stderr
    migrated = cli(tmp_path, config, "migrate", "production", "--yes")
    assert migrated.returncode == 1 and "trigger items_audit on items is destroyed" in migrated.stdout + migrated.stderr
    assert (hashlib.sha256(database.read_bytes()).hexdigest(), database.stat().st_mtime_ns) == before

    plan.write_text("-- accept-drop: trigger items_audit\n-- accept-drop: index items_status\n"
                    + FORGETFUL_REBUILD, encoding="utf-8")
    accepted = cli(tmp_path, config, "plan", "production")
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert "ACCEPTED loss: trigger items_audit on items is destroyed" in accepted.stdout
    migrated = cli(tmp_path, config, "migrate", "production", "--yes")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert "Accepted by the plan" in migrated.stdout + migrated.stderr
