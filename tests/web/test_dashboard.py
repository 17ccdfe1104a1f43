"""The operator dashboard on the demo workspace and on broken environments."""
import os
import re
import sqlite3
import time
from pathlib import Path

import pytest

from tests.conftest import csrf_token_from, log_in, make_app


def settled_dashboard(client, url="/") -> str:
    """The page as it is once the background whole-file checks have landed."""
    deadline = time.monotonic() + 30
    while True:
        html = client.get(url).get_data(as_text=True)
        if "checking…" not in html or time.monotonic() > deadline:
            return html
        time.sleep(0.05)


def card(html: str, environment: str) -> str:
    match = re.search(rf'<article[^>]*data-environment="{environment}"[^>]*>(.*?)</article>', html, re.S)
    return match.group(1)


def test_first_view_does_not_wait_for_the_whole_file_checks(logged_in):
    first = logged_in.get("/").get_data(as_text=True)
    assert "checking…" in card(first, "production")
    assert 'hx-trigger="every 2s"' in first  # the card refreshes itself until the checks land
    assert "<td>goals</td><td class=\"num\">200</td>" in card(first, "production")  # counts are there already
    settled = settled_dashboard(logged_in)
    assert "ok (quick_check)" in card(settled, "production") and 'hx-trigger="every 2s"' not in settled


def test_dashboard_shows_both_environments_and_the_drift(logged_in):
    html = settled_dashboard(logged_in)
    assert 'data-environment="development"' in html and 'data-environment="production"' in html
    assert "goals_dev.db" in html and "goals.db" in html
    assert "is <strong>behind</strong> development" in html
    # the column whose absence broke the real migration is explained
    assert 'data-table="activity_definitions"' in html
    assert "group_id" in html
    assert "ADD COLUMN" in html
    # production's pre-existing orphans are shown, not hidden
    assert "FK orphans" in html and "rows point at missing parents" in html


def test_the_drift_is_grouped_and_each_kind_explained_once(logged_in):
    html = settled_dashboard(logged_in)
    differences = html[html.index('id="differences"'):html.index('id="tables"')]
    assert differences.count('class="meaning"') == 3  # additive columns, indexes, tables
    assert differences.count("ALTER TABLE … ADD COLUMN adds them") == 1
    assert "<strong>14 columns</strong>" in differences and "<strong>7 indexes</strong>" in differences
    assert differences.count('<details class="diff-group"') == 7  # one per table with a difference
    # side by side repeats no explanation: its rows carry the fix and the change only
    tables = html[html.index('id="tables"'):]
    assert "ADD COLUMN can add it" not in tables and "<details class=\"card table-card" in tables and " open" not in tables


def test_the_badge_names_the_orphans_and_the_drift_and_the_next_action(logged_in):
    html = settled_dashboard(logged_in)
    assert '<span class="status status-ok condition-warn">2 orphans · drifted</span>' in card(html, "production")
    assert '<span class="status status-ok condition-good">healthy</span>' in card(html, "development")
    assert 'data-next-action="prep"' in card(html, "production")
    assert 'href="/environments/production/migration#prep"' in card(html, "production")
    assert "data-next-action" not in card(html, "development")


def test_dashboard_counts_match_the_seed(logged_in):
    dev_card = card(logged_in.get("/").get_data(as_text=True), "development")
    for table, count in [("goals", "45"), ("activity_instances", "79"), ("metric_values", "116")]:
        assert f"<td>{table}</td><td class=\"num\">{count}</td>" in dev_card


def test_compare_other_pair_and_unknown_environment(logged_in):
    html = logged_in.get("/?left=production&right=development").get_data(as_text=True)
    assert "is <strong>ahead</strong> of production" in html
    same = logged_in.get("/?left=production&right=production").get_data(as_text=True)
    assert "No differences" in same
    missing = logged_in.get("/?left=development&right=staging")
    assert missing.status_code == 404
    assert "No environment named" in missing.get_data(as_text=True)


def test_inspect_again_refreshes(logged_in):
    token = csrf_token_from(logged_in.get("/").get_data(as_text=True))
    response = logged_in.post("/refresh", data={"csrf_token": token}, follow_redirects=True)
    assert response.status_code == 200
    assert "Every environment was inspected again." in response.get_data(as_text=True)


def test_dashboard_sees_a_change_to_the_file(logged_in, demo_dir):
    logged_in.get("/")
    with sqlite3.connect(demo_dir / "goals.db") as conn:
        conn.execute("ALTER TABLE activity_instances ADD COLUMN completed BOOLEAN DEFAULT 0")
    conn.close()
    html = logged_in.get("/").get_data(as_text=True)
    row = html.split("activity_instances.completed")
    assert len(row) == 1, "the added column must no longer be reported missing"


# --- bad input: each environment state renders, is explained, and nothing is touched ---

def make_bad_database(kind: str, folder: Path, good: Path) -> Path:
    path = folder / "target.db"
    if kind == "missing":
        return path
    if kind == "directory":
        path.mkdir()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "not_sqlite":
        path.write_text("goals,activities\n45,79\n")
    elif kind == "truncated":
        data = good.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "corrupt":
        data = bytearray(good.read_bytes())
        page_size = int.from_bytes(data[16:18], "big")
        data[page_size: page_size * 3] = b"\xde\xad\xbe\xef" * (page_size // 2)
        path.write_bytes(bytes(data))
    return path


def directory_state(folder: Path) -> dict:
    state = {}
    for p in sorted(folder.rglob("*")):
        stat = p.stat()
        state[str(p)] = (p.is_dir(), stat.st_mtime_ns, None if p.is_dir() else p.read_bytes())
    return state


EXPECTED_REASON = {"missing": "missing", "directory": "is_directory", "empty": "empty",
                   "not_sqlite": "not_sqlite", "truncated": "truncated", "corrupt": "corrupt"}


@pytest.mark.parametrize("kind", list(EXPECTED_REASON))
def test_a_broken_environment_is_explained_and_untouched(tmp_path, demo_dir, kind):
    folder = tmp_path / "broken"
    folder.mkdir()
    target = make_bad_database(kind, folder, demo_dir / "goals.db")
    config = tmp_path / "broken.toml"
    config.write_text(
        f'[environments.development]\ndatabase = "{demo_dir / "goals_dev.db"}"\nreference = true\n'
        f'[environments.production]\ndatabase = "{target}"\n'
    )
    before = directory_state(folder)
    app = make_app(tmp_path, config)
    client = app.test_client()
    log_in(client)
    response = client.get("/")
    assert response.status_code == 200
    html = settled_dashboard(client)
    production = card(html, "production")
    if kind == "corrupt":
        # depending on where the damage is, reading fails or the integrity check reports it
        assert "unavailable" in production or "integrity problem" in production
    else:
        assert "unavailable" in production and 'role="alert"' in production
    api = client.get("/api/v1/environments/production/schema")
    if kind != "corrupt" or api.status_code != 200:
        assert api.status_code == 409
        assert api.get_json()["reason"] == EXPECTED_REASON[kind]
        assert api.get_json()["message"]
    assert directory_state(folder) == before
    with app.app_context():
        from app.extensions import db

        db.engine.dispose()


def test_unreadable_virtual_tables_are_explained_on_the_dashboard_and_the_api(tmp_path, demo_dir):
    """A spellfix1 table (module missing here) and an FTS5 table whose content table is gone."""
    target = demo_dir / "goals.db"
    with sqlite3.connect(target) as connection:
        connection.executescript(
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);"
            "CREATE VIRTUAL TABLE docs USING fts5(body, content='notes', content_rowid='id');"
            "DROP TABLE notes; PRAGMA writable_schema = ON;"
            "INSERT INTO sqlite_schema (type, name, tbl_name, rootpage, sql) "
            "VALUES ('table', 'spell', 'spell', 0, 'CREATE VIRTUAL TABLE spell USING spellfix1');")
    connection.close()
    before = (target.read_bytes(), os.stat(target).st_mtime_ns)
    app = make_app(tmp_path, demo_dir / "cutover.toml")
    client = app.test_client()
    log_in(client)
    production = card(settled_dashboard(client), "production")
    assert "ok (quick_check)" in production and "unavailable" not in production
    assert '<td>spell</td><td class="num">unreadable</td>' in production
    assert "uses the module spellfix1, which this SQLite does not have" in production
    assert "content table notes, which does not exist" in production
    envs = {e["name"]: e for e in client.get("/api/v1/environments").get_json()["environments"]}
    assert [n["table"] for n in envs["production"]["unreadable"]] == ["docs", "spell"]
    diff = client.get("/api/v1/diff?left=development&right=production").get_json()
    assert {(n["environment"], n["table"]) for n in diff["unreadable"]} == {
        ("production", "docs"), ("production", "spell")}
    assert (target.read_bytes(), os.stat(target).st_mtime_ns) == before
    with app.app_context():
        from app.extensions import db

        db.engine.dispose()


def test_a_locked_environment_is_reported_and_untouched(tmp_path, demo_dir):
    target = demo_dir / "goals.db"
    config = tmp_path / "locked.toml"
    config.write_text(f'[environments.production]\ndatabase = "{target}"\n')
    app = make_app(tmp_path, config)
    writer = sqlite3.connect(target, isolation_level=None)
    writer.execute("BEGIN EXCLUSIVE")
    try:
        before = (target.read_bytes(), os.stat(target).st_mtime_ns)
        client = app.test_client()
        log_in(client)
        html = client.get("/").get_data(as_text=True)
        assert "Locked." in html
        api = client.get("/api/v1/environments/production/schema")
        assert api.status_code == 409 and api.get_json()["reason"] == "locked"
        assert (target.read_bytes(), os.stat(target).st_mtime_ns) == before
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        with app.app_context():
            from app.extensions import db

            db.engine.dispose()


def test_inspect_again_carries_back_only_the_compared_pair(logged_in):
    token = csrf_token_from(logged_in.get("/").get_data(as_text=True))
    response = logged_in.post("/refresh?left=development&right=production&endpoint=x&_external=1",
                              data={"csrf_token": token})
    assert response.status_code == 302
    assert response.headers["Location"] == "/?left=development&right=production"
