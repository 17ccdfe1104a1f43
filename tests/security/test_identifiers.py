"""Identifier injection: names come from databases Cutover does not control. The reference
has a table and a column named `x"; DROP TABLE y; --`; production has neither; both have a
table y. Every page shows the name as escaped text, the prep plan quotes it (applied to a
copy it creates exactly that table and column, and y survives with its rows), and no page
view changes either database."""
import shutil
import sqlite3
from contextlib import closing

import pytest

from tests.conftest import csrf_token_from, log_in, make_app
from tests.security.helpers import file_state, wait_for_jobs

EVIL = 'x"; DROP TABLE y; --'
QUOTED = '"x""; DROP TABLE y; --"'
RAW_IN_HTML = '"; DROP TABLE y; --'  # the name's quote, unescaped
ESCAPED_IN_HTML = "&#34;; DROP TABLE y; --"  # how Jinja writes it (also inside "x""...")


def create(path, script: str) -> None:
    with closing(sqlite3.connect(path)) as connection:
        connection.executescript(script)


def tables_and_columns(path) -> dict:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
        names = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {name: [row[1] for row in connection.execute("SELECT * FROM pragma_table_info(?)", (name,))]
                for name in names}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    root = tmp_path_factory.mktemp("identifiers")
    workspace = root / "workspace"
    (workspace / "plans").mkdir(parents=True)
    create(workspace / "reference.db",
           f"CREATE TABLE y (id INTEGER PRIMARY KEY, {QUOTED} TEXT);"
           f"CREATE TABLE {QUOTED} (id INTEGER PRIMARY KEY, {QUOTED} TEXT);"
           f"INSERT INTO {QUOTED} VALUES (1, 'a');")
    create(workspace / "target.db", "CREATE TABLE y (id INTEGER PRIMARY KEY); INSERT INTO y VALUES (1), (2), (3);")
    # A plan that reads the table production lacks: the migration page predicts its failure by name.
    (workspace / "plans" / "copy.sql").write_text(f"INSERT INTO y (id) SELECT id FROM {QUOTED} WHERE 0;\n")
    (workspace / "cutover.toml").write_text("\n".join([
        "[environments.development]", 'database = "reference.db"', "reference = true",
        "[environments.production]", 'database = "target.db"',
        "[migration]", 'plans = ["plans/copy.sql"]',
        "[checklist]", 'order = ["verify"]',
    ]) + "\n")
    app = make_app(root, workspace / "cutover.toml")
    yield app, workspace
    with app.app_context():
        from app.extensions import db

        db.engine.dispose()


def test_every_page_shows_the_name_as_escaped_text_and_changes_nothing(hostile, api_headers):
    app, workspace = hostile
    databases = [workspace / "target.db", workspace / "reference.db"]
    before = [file_state(path) for path in databases]
    client = app.test_client()
    log_in(client)
    run = client.post("/api/v1/runs", headers=api_headers, json={"environment": "production"}).get_json()
    job = client.post(f"/api/v1/runs/{run['id']}/steps/verify/start", headers=api_headers).get_json()["job"]["id"]
    wait_for_jobs(app)
    lines = client.get(f"/api/v1/jobs/{job}", headers=api_headers).get_json()["lines"]
    assert any(EVIL in line["text"] for line in lines)  # the verify step names the table it lacks

    token = csrf_token_from(client.get("/jobs").get_data(as_text=True))
    pages = {
        "dashboard": client.get("/"),
        "dashboard, pair chosen": client.get("/?left=development&right=production"),
        "migration": client.get(f"/environments/production/migration?job={job}"),
        "prep": client.post("/environments/production/migration/prep", data={"csrf_token": token}),
        "backups": client.get(f"/environments/production/backups?job={job}"),
        "health": client.get("/environments/production/health"),
        "health, verified": client.post("/environments/production/health/verify", data={"csrf_token": token}),
        "run": client.get(f"/runs/{run['id']}"),
        "run report": client.get(f"/runs/{run['id']}/report"),
        "job": client.get(f"/jobs/{job}"),
        "job panel": client.get(f"/jobs/{job}/panel"),
    }
    for what, response in pages.items():
        html = response.get_data(as_text=True)
        assert response.status_code == 200, what
        assert RAW_IN_HTML not in html, what
        if what != "health":  # the plain health page shows no schema (verify shows it)
            assert ESCAPED_IN_HTML in html, what
    assert [file_state(path) for path in databases] == before


def test_the_prep_plan_quotes_the_name(hostile, api_headers, tmp_path):
    app, workspace = hostile
    target_before = file_state(workspace / "target.db")
    response = app.test_client().post("/api/v1/environments/production/prep?reference=development",
                                      headers=api_headers)
    assert response.status_code == 200
    prep = response.get_json()["prep"]
    assert {(item["kind"], item["name"]) for item in prep["items"]} == {("table", EVIL), ("column", EVIL)}
    statements = [line for line in prep["text"].splitlines() if line and not line.startswith("--")]
    assert len(statements) == 2 and all(QUOTED in statement for statement in statements), statements
    copy = tmp_path / "copy.db"
    shutil.copyfile(workspace / "target.db", copy)
    with closing(sqlite3.connect(copy)) as connection:
        connection.executescript(prep["text"])
        assert connection.execute("SELECT COUNT(*) FROM y").fetchone() == (3,)
    assert tables_and_columns(copy) == {"y": ["id", EVIL], EVIL: ["id", EVIL]}
    assert file_state(workspace / "target.db") == target_before
