"""PostgreSQL environments end to end: cutover.toml, the CLI as a real subprocess, the API and the
dashboard, against databases on the suite's real PostgreSQL server."""
import json

import pytest

from tests.conftest import log_in, make_app
from tests.test_cli import cli

DEV_SCHEMA = """
CREATE TYPE mood AS ENUM ('calm', 'busy');
CREATE TABLE goals (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, title text NOT NULL,
                    root_id bigint REFERENCES goals (id), mood mood);
CREATE INDEX goals_root ON goals (root_id);
INSERT INTO goals (title) VALUES ('a'), ('b');
"""
PROD_SCHEMA = """
CREATE TYPE mood AS ENUM ('calm', 'busy');
CREATE TABLE goals (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, title text NOT NULL, mood mood);
INSERT INTO goals (title) VALUES ('a'), ('b'), ('c');
"""


@pytest.fixture
def databases(pg_server):
    names = {"dev": pg_server.create_database("dev"), "prod": pg_server.create_database("prod")}
    pg_server.psql(DEV_SCHEMA, database=names["dev"])
    pg_server.psql(PROD_SCHEMA, database=names["prod"])
    yield names
    for name in names.values():
        pg_server.drop_database(name)


@pytest.fixture
def config(tmp_path, pg_server, databases):
    path = tmp_path / "cutover.toml"
    path.write_text(f"""
[migration]
lock_timeout_seconds = 2

[environments.development]
url = "{pg_server.url(databases['dev'])}"
reference = true

[environments.production]
url = "{pg_server.url(databases['prod'])}"
""")
    return path


def test_envs_json_names_the_engine_and_the_url(tmp_path, config, pg_server, databases):
    result = cli(tmp_path, config, "envs", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    envs = {env["name"]: env for env in json.loads(result.stdout)["environments"]}
    production = envs["production"]
    assert production["engine"] == "postgresql"
    assert production["url"] == pg_server.url(databases["prod"]) and "database" not in production
    assert production["row_counts"] == {"goals": 3}
    assert production["facts"]["server_version_num"] >= 150000
    assert production["status"] == "ok"


def test_envs_text(tmp_path, config):
    result = cli(tmp_path, config, "envs")
    assert result.returncode == 0, result.stderr
    assert "production: postgresql://" in result.stdout and "PostgreSQL 15" in result.stdout


def test_diff_between_two_postgresql_environments(tmp_path, config):
    result = cli(tmp_path, config, "diff", "development", "production", "--json")
    assert result.returncode == 1, result.stderr
    found = {(d["object"], d["name"]): d for d in json.loads(result.stdout)["differences"]}
    assert found[("column", "root_id")]["fix"] == "additive"
    assert ("constraint", "goals_root_id_fkey") in found or any(k[0] == "constraint" for k in found)
    assert found[("index", "goals_root")]["fix"] in ("additive", "rebuild")


def test_a_database_compared_with_itself_has_no_differences(tmp_path, config):
    result = cli(tmp_path, config, "diff", "development", "development")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No differences" in result.stdout


def test_a_password_in_the_url_is_refused_at_load_and_never_printed(tmp_path, pg_server, databases):
    path = tmp_path / "cutover.toml"
    path.write_text(f'[environments.production]\nurl = "{pg_server.url(databases["prod"], password="hunter2")}"\n')
    result = cli(tmp_path, path, "envs")
    assert result.returncode == 2
    assert "hunter2" not in result.stdout + result.stderr
    assert "password_env" in result.stderr


def test_a_server_that_is_down_is_one_clear_line(tmp_path):
    path = tmp_path / "cutover.toml"
    path.write_text('[environments.production]\nurl = "postgresql://app@127.0.0.1:1/shop"\n')
    result = cli(tmp_path, path, "envs")
    assert result.returncode == 1
    assert "UNAVAILABLE (unreachable)" in result.stdout and "Is the server running" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_prep_writes_what_production_lacks_and_the_plan_applies_it(tmp_path, config, pg_server, databases):
    before = pg_server.psql("SELECT string_agg(title, ',' ORDER BY id) FROM goals", database=databases["prod"])
    output = tmp_path / "prep.sql"
    result = cli(tmp_path, config, "prep", "production", "--reference", "development", "--output", str(output))
    said = result.stdout + result.stderr
    assert result.returncode == 0, said
    text = output.read_text()
    assert "ALTER TABLE goals ADD COLUMN root_id bigint;" in text
    # A foreign key on a table with rows is checked under a lock: named, with the safer way, not added.
    assert "goals_root_id_fkey" in text and "add it NOT VALID, then VALIDATE CONSTRAINT" in text
    assert "ADD CONSTRAINT" not in text.split("-- phase:")[-1]
    assert "CREATE INDEX goals_root ON goals USING btree (root_id);" in text
    after = pg_server.psql("SELECT string_agg(title, ',' ORDER BY id) FROM goals", database=databases["prod"])
    assert after == before
    assert not [name for name in pg_server.databases() if name.startswith("cutover_")]
    config.write_text(config.read_text().replace("[migration]\n", '[migration]\nplans = ["prep.sql"]\n'))
    migrated = cli(tmp_path, config, "migrate", "production", "--yes")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    diff = cli(tmp_path, config, "diff", "development", "production", "--json")
    remaining = json.loads(diff.stdout)["differences"]
    assert [d for d in remaining if d["object"] in ("column", "index")] == [], remaining


def test_backup_and_backups_through_the_cli(tmp_path, config, pg_server, databases):
    (tmp_path / "backups" / "production").mkdir(parents=True)
    made = cli(tmp_path, config, "backup", "production", "--json")
    assert made.returncode == 0, made.stdout + made.stderr
    backup_id = json.loads(made.stdout)["id"]
    listed = cli(tmp_path, config, "backups", "production", "--json")
    backups = json.loads(listed.stdout)["backups"]
    assert [(b["id"], b["status"]) for b in backups] == [(backup_id, "verified")]
    assert backups[0]["manifest"]["row_counts"] == {"goals": 3}
    assert not [name for name in pg_server.databases() if name.startswith("cutover_")]


def test_the_api_compares_and_refuses_alike(tmp_path, config, api_headers):
    app = make_app(tmp_path, config)
    client = app.test_client()
    diff = client.get("/api/v1/diff?left=development&right=production", headers=api_headers)
    assert diff.status_code == 200 and diff.get_json()["differences"]
    prep = client.post("/api/v1/environments/production/prep?reference=development", headers=api_headers)
    assert prep.status_code == 200 and "root_id" in prep.get_json()["prep"]["text"]


def test_the_dashboard_shows_both_databases_and_their_drift(tmp_path, config):
    app = make_app(tmp_path, config)
    client = app.test_client()
    log_in(client)
    page = client.get("/").get_data(as_text=True)
    assert "PostgreSQL 15" in page and "all valid" in page
    assert "is <strong>behind</strong> development" in page
    assert "goals_root</span>\n(root_id)" in page  # the index's columns, as the server prints them
    assert "checking…" not in page  # a catalog read has no slow part to wait for
    assert page.count(">healthy</span>") == 1 and page.count(">drifted</span>") == 1  # production is behind
    assert 'data-next-action="prep"' in page and "Prep the drift" in page  # every step works on PostgreSQL


def test_a_sqlite_reference_and_a_postgresql_target_are_shown_but_not_compared(tmp_path, pg_server, databases,
                                                                               demo_dir):
    path = tmp_path / "mixed.toml"
    path.write_text(f"""
[environments.development]
database = "{demo_dir / 'goals_dev.db'}"
reference = true

[environments.production]
url = "{pg_server.url(databases['prod'])}"
""")
    app = make_app(tmp_path, path)
    client = app.test_client()
    log_in(client)
    page = client.get("/").get_data(as_text=True)
    assert "development is a SQLite database and production a PostgreSQL one" in page
    result = cli(tmp_path, path, "diff", "development", "production")
    assert result.returncode == 2 and "compares schemas of the same engine only" in result.stderr


def test_restore_through_the_cli_gives_the_backup_back(tmp_path, config, pg_server, databases):
    (tmp_path / "backups" / "production").mkdir(parents=True)
    backup_id = json.loads(cli(tmp_path, config, "backup", "production", "--json").stdout)["id"]
    pg_server.psql("INSERT INTO goals (title) VALUES ('after the backup')", database=databases["prod"])
    result = cli(tmp_path, config, "restore", "production", backup_id, "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert pg_server.psql("SELECT count(*) FROM goals", database=databases["prod"]).strip() == "3"
    assert (tmp_path / "backups" / "production" / "safety").is_dir()


def test_the_backups_page_takes_a_verified_backup_and_offers_its_restore(tmp_path, config, pg_server):
    (tmp_path / "backups" / "production").mkdir(parents=True)
    app = make_app(tmp_path, config)
    client = app.test_client()
    log_in(client)
    result = cli(tmp_path, config, "backup", "production")
    assert result.returncode == 0, result.stdout + result.stderr
    page = client.get("/environments/production/backups").get_data(as_text=True)
    assert "verified" in page and "pg_dump" in page
    assert "Restore production" in page  # a verified backup can be restored from here


PLAN = """-- phase: Hierarchy
ALTER TABLE goals ADD COLUMN root_id bigint REFERENCES goals (id);
CREATE INDEX goals_root ON goals (root_id);
-- phase: Data
UPDATE goals SET root_id = 1 WHERE id > 1;
"""


def with_plan(config, text=PLAN):
    plan = config.parent / "plan.sql"
    plan.write_text(text)
    config.write_text(config.read_text().replace("[migration]\n", '[migration]\nplans = ["plan.sql"]\n'))
    return plan  # no backups folder yet: the first migrate makes the default one, as a backup does


def titles_and_roots(pg_server, database) -> str:
    return pg_server.psql("SELECT string_agg(g::text, ',' ORDER BY id) FROM goals g", database=database).strip()


def test_plan_rehearse_and_migrate_through_the_cli(tmp_path, config, pg_server, databases):
    with_plan(config)
    planned = cli(tmp_path, config, "plan", "production", "--json")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    outcomes = [s["outcome"] for p in json.loads(planned.stdout)["reconciliation"]["phases"] for s in p["statements"]]
    assert outcomes == ["will_run", "will_run", "will_run"]
    rehearsed = cli(tmp_path, config, "rehearse", "production")
    assert rehearsed.returncode == 0, rehearsed.stdout + rehearsed.stderr
    assert "root_id" not in pg_server.psql("SELECT * FROM goals LIMIT 0", database=databases["prod"])
    migrated = cli(tmp_path, config, "migrate", "production", "--yes")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert "Using the passing rehearsal" in migrated.stdout and "WAL" in migrated.stdout
    assert titles_and_roots(pg_server, databases["prod"]) == "(1,a,,),(2,b,,1),(3,c,,1)"
    verified = cli(tmp_path, config, "verify", "production", "--json")
    checks = {check["name"]: check for check in json.loads(verified.stdout)["checks"]}
    assert checks["integrity_check"]["passed"] and checks["required_indexes"]["passed"]
    assert checks["row_count_ledger"]["passed"], checks["row_count_ledger"]
    diff = cli(tmp_path, config, "diff", "development", "production", "--json")
    assert diff.returncode == 0, diff.stdout
    assert not [name for name in pg_server.databases() if name.startswith("cutover_")]


def test_a_plan_predicted_to_fail_exits_1_and_migrate_changes_nothing(tmp_path, config, pg_server, databases):
    with_plan(config, PLAN + "ALTER TABLE goals ADD COLUMN owner_id int REFERENCES users (id);\n")
    planned = cli(tmp_path, config, "plan", "production")
    assert planned.returncode == 1 and 'relation "users" does not exist' in planned.stdout
    before = titles_and_roots(pg_server, databases["prod"])
    migrated = cli(tmp_path, config, "migrate", "production", "--yes")
    assert migrated.returncode == 1 and "nothing was changed" in migrated.stdout + migrated.stderr
    assert titles_and_roots(pg_server, databases["prod"]) == before


def test_migrate_refuses_while_the_application_is_connected_and_names_it(tmp_path, config, pg_server, databases):
    import psycopg
    with_plan(config)
    before = titles_and_roots(pg_server, databases["prod"])
    with psycopg.connect(pg_server.url(databases["prod"]), application_name="shop-web"):
        migrated = cli(tmp_path, config, "migrate", "production", "--yes")
    said = migrated.stdout + migrated.stderr
    assert migrated.returncode == 1 and "shop-web" in said, said
    assert titles_and_roots(pg_server, databases["prod"]) == before


def test_the_monitoring_window_watches_new_rows(tmp_path, config, pg_server, databases):
    started = cli(tmp_path, config, "monitor-start", "production", "--interval-minutes", "0.001")
    assert started.returncode == 0, started.stdout + started.stderr
    pg_server.psql("INSERT INTO goals (title) VALUES ('d')", database=databases["prod"])
    ticked = cli(tmp_path, config, "monitor-tick")
    assert ticked.returncode == 0 and ticked.stdout.startswith("window 1 tick ") and \
        ticked.stdout.rstrip().endswith(": passed"), ticked.stdout + ticked.stderr
    assert "Traceback" not in ticked.stdout + ticked.stderr


def test_the_migration_page_previews_a_postgresql_plan(tmp_path, config):
    with_plan(config)
    app = make_app(tmp_path, config)
    client = app.test_client()
    log_in(client)
    page = client.get("/environments/production/migration")
    text = page.get_data(as_text=True)
    assert page.status_code == 200, text[:2000]
    assert "CREATE INDEX goals_root ON goals (root_id)" in text and "lock risk" in text
    assert "Traceback" not in text


def test_the_checklist_runs_headless_on_postgresql(tmp_path, config, pg_server, databases):
    with_plan(config)
    config.write_text(config.read_text() + """
[verification]
monitor_hours = 0.0005
monitor_interval_minutes = 0.005

[checklist]
order = ["verify-target", "app-stopped", "data-volume", "backup", "integrity", "rehearse", "migrate", "verify",
         "monitor"]
""")
    done = cli(tmp_path, config, "run-checklist", "production", "--yes")
    said = done.stdout + done.stderr
    assert done.returncode == 0, said
    assert "✓ not development's database" in said and "amcheck is not installed" in said
    assert done.stdout.rstrip().endswith("Run 1 finished: every step passed.")
    assert titles_and_roots(pg_server, databases["prod"]) == "(1,a,,),(2,b,,1),(3,c,,1)"
    assert not [name for name in pg_server.databases() if name.startswith("cutover_")]
    app = make_app(tmp_path, config, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'instance' / 'cutover.db'}")
    client = app.test_client()
    log_in(client, password="cli-admin-password")
    report = client.get("/runs/1/report")
    text = report.get_data(as_text=True)
    assert report.status_code == 200 and "WAL" in text, text[:3000]
    from app.extensions import db
    with app.app_context():
        db.engine.dispose()
