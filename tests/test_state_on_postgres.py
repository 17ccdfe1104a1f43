"""The dashboard's own state on a real PostgreSQL server: start-up and its refusals, log-line
sequence numbers in commit order under concurrent writers, and the flows that lean on the
state database (a job in a real worker, its log and its live stream, runs, the audit chain)
with two dashboards sharing one database."""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, insert, select

from app.core.errors import Conflict
from app.extensions import db
from app.factory import StateDatabaseUnavailable
from app.models import AuditEntry, Job, LogLine
from tests.conftest import log_in, make_app
from tests.web.test_streams import read_events

REPO = Path(__file__).resolve().parents[1]


def state_url(pg_server, database: str, user: str | None = None, password: str | None = None) -> str:
    return pg_server.url(database, user, password).replace("postgresql://", "postgresql+psycopg://", 1)


def pg_app(tmp_path: Path, config: Path, url: str, name: str = "dashboard"):
    """A dashboard with its own instance folder (as on its own machine), its state at `url`."""
    folder = tmp_path / name
    folder.mkdir(exist_ok=True)
    return make_app(folder, config, SQLALCHEMY_DATABASE_URI=url)


def dispose(*apps) -> None:
    """Close the apps' connections, once every worker's reaper is done with the database
    (the test's database is dropped next)."""
    for thread in threading.enumerate():
        if thread.name.endswith("(_reap)"):
            thread.join(30)
    for app in apps:
        bus = app.extensions.get("cutover.logbus")
        if bus is not None:
            bus.stop()  # its reader holds a connection of its own
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def wait_for_job(app, job_id: int, timeout: float = 60) -> Job:
    deadline = time.monotonic() + timeout
    with app.app_context():
        while time.monotonic() < deadline:
            db.session.expire_all()
            job = db.session.get(Job, job_id)
            if not job.active:
                db.session.expunge(job)
                return job
            time.sleep(0.05)
    raise AssertionError(f"job {job_id} still running after {timeout} s")


# --------------------------------------------------------------------------- start-up


def test_the_dashboard_creates_its_tables_on_an_empty_postgresql_database(tmp_path, demo_config, pg_server,
                                                                           pg_database):
    app = pg_app(tmp_path, demo_config, state_url(pg_server, pg_database))
    tables = set(pg_server.psql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
                                pg_database).split())
    assert {"operator", "audit_entry", "job", "log_line", "run", "sign_off", "monitor_window",
            "health_sample"} <= tables
    # "One active job / one open run per environment" are partial unique indexes here too.
    definitions = dict(line.split("|", 1) for line in pg_server.psql(
        "SELECT indexname, indexdef FROM pg_indexes WHERE indexname LIKE 'one_%'", pg_database).splitlines())
    assert "WHERE" in definitions["one_active_job_per_workspace_environment"]
    assert "'queued'" in definitions["one_active_job_per_workspace_environment"]
    assert "WHERE" in definitions["one_open_run_per_workspace_environment"]
    assert app.extensions["cutover.state_schema"] == ["0001_baseline"]
    again = pg_app(tmp_path, demo_config, state_url(pg_server, pg_database), "second")  # a restart
    assert again.extensions["cutover.state_schema"] == []  # nothing left to migrate, nothing done twice
    client = again.test_client()
    assert log_in(client).status_code == 302  # the first operator, made by the first start
    assert pg_server.psql("SELECT count(*) FROM operator", pg_database).strip() == "1"
    dispose(app, again)


def run_py(tmp_path: Path, config: Path, url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CUTOVER_CONFIG": str(config), "CUTOVER_INSTANCE_DIR": str(tmp_path / "instance"),
           "CUTOVER_STATE_DATABASE_URL": url, "CUTOVER_PORT": "1", "CUTOVER_SECRET_KEY": "state-test-key",
           "CUTOVER_ADMIN_PASSWORD": "state-password"}
    return subprocess.run([sys.executable, "run.py"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=60)



def test_dashboards_starting_together_on_an_empty_database_create_its_tables_once(tmp_path, demo_config,
                                                                                 pg_server, pg_database):
    url = state_url(pg_server, pg_database)
    starts = []
    for number in range(3):
        env = {**os.environ, "CUTOVER_CONFIG": str(demo_config), "CUTOVER_STATE_DATABASE_URL": url,
               "CUTOVER_INSTANCE_DIR": str(tmp_path / f"instance{number}"),
               "CUTOVER_SECRET_KEY": "state-test-key", "CUTOVER_ADMIN_PASSWORD": "state-password"}
        starts.append(subprocess.Popen([sys.executable, "-c", "from app import create_app; create_app()"],
                                       cwd=REPO, env=env, stderr=subprocess.PIPE, text=True))
    errors = [start.communicate(timeout=120)[1] for start in starts]
    assert [start.returncode for start in starts] == [0, 0, 0], errors
    assert pg_server.psql("SELECT count(*) FROM operator", pg_database).strip() == "1"

@pytest.fixture
def state_role(pg_server):
    """A role that must give its password (the suite's cluster trusts only its superuser)."""
    role = f"cutover_state_{os.getpid()}"
    pg_server.psql(f"DROP ROLE IF EXISTS {role}")
    pg_server.psql(f"CREATE ROLE {role} LOGIN PASSWORD 'right-password'")
    yield role
    pg_server.psql(f"DROP OWNED BY {role}; DROP ROLE IF EXISTS {role}")


def refused_urls(pg_server, database: str, role: str) -> dict[str, tuple[str, list[str]]]:
    """What is wrong -> (the URL, words its one line must hold)."""
    down = pg_server.url(database).replace(f":{pg_server.port}/", ":1/")  # nothing listens on port 1
    return {
        "bad_url": ("postgresql+psycopg://postgres@127.0.0.1:notaport/x",
                    ["is not one Cutover can use", "postgresql+psycopg://user@host:port/database"]),
        "other_driver": (pg_server.url(database).replace("postgresql://", "postgresql+psycopg2://"),
                         ["names the driver psycopg2", "postgresql+psycopg://"]),
        "server_down": (down.replace("postgresql://", "postgresql+psycopg://"),
                        ["cannot be reached", "Connection refused", "Start the server"]),
        "missing_database": (state_url(pg_server, "no_such_state_db"),
                             ['database "no_such_state_db" does not exist', "Create it on that server"]),
        "wrong_password": (state_url(pg_server, database, role, "wrong-password"),
                           [f'password authentication failed for user "{role}"', "Check the user and password"]),
        "no_password": (state_url(pg_server, database, role), ["no password supplied"]),
    }


@pytest.mark.parametrize("problem", ["bad_url", "other_driver", "server_down", "missing_database",
                                     "wrong_password", "no_password"])
def test_an_unusable_postgresql_state_database_stops_start_up_with_one_line(
        tmp_path, demo_config, pg_server, pg_database, state_role, problem):
    url, words = refused_urls(pg_server, pg_database, state_role)[problem]
    with pytest.raises(StateDatabaseUnavailable) as caught:
        pg_app(tmp_path, demo_config, url)
    message = caught.value.message
    assert message.startswith("The dashboard's database ") and "\n" not in message, message
    for word in words:
        assert word in message, message
    assert "wrong-password" not in message and "right-password" not in message
    # Nothing was created: not the missing database, not a table in the one that exists.
    assert "no_such_state_db" not in pg_server.databases()
    assert pg_server.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", pg_database).strip() == "0"


@pytest.mark.parametrize("problem", ["server_down", "wrong_password"])
def test_run_py_says_it_in_one_line_and_exit_code_2(tmp_path, demo_config, pg_server, pg_database, state_role,
                                                     problem):
    url, words = refused_urls(pg_server, pg_database, state_role)[problem]
    result = run_py(tmp_path, demo_config, url)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("cutover: The dashboard's database postgresql+psycopg://"), lines[0]
    assert all(word in lines[0] for word in words) and "wrong-password" not in lines[0], lines[0]


def test_a_role_that_may_not_create_tables_is_told_so(tmp_path, demo_config, pg_server, pg_database, state_role):
    pg_server.psql("REVOKE CREATE ON SCHEMA public FROM PUBLIC", pg_database)
    url = state_url(pg_server, pg_database, state_role, "right-password")
    with pytest.raises(StateDatabaseUnavailable) as caught:
        pg_app(tmp_path, demo_config, url)
    assert "permission denied for schema public" in caught.value.message, caught.value.message
    assert "\n" not in caught.value.message and "right-password" not in caught.value.message


# --------------------------------------------------------------------------- log-line sequence


@pytest.fixture
def pg_dashboard(tmp_path, demo_config, pg_server, pg_database):
    app = pg_app(tmp_path, demo_config, state_url(pg_server, pg_database))
    yield app
    dispose(app)


def a_job(app) -> int:
    with app.app_context():
        job = Job(kind="command", environment="production", operator="admin", state="running")
        db.session.add(job)
        db.session.commit()
        return job.id


def test_a_second_writer_of_log_lines_waits_for_the_first_to_commit(pg_dashboard):
    """The first writer's line is inserted (its id drawn) but not committed: the second
    writer's insert waits, so its id is drawn, and committed, after the first's."""
    job_id = a_job(pg_dashboard)
    with pg_dashboard.app_context():
        engine = db.engine
    line = {"job_id": job_id, "level": "info", "text": "x"}
    first = engine.connect()
    first_id = first.execute(insert(LogLine).values(**line).returning(LogLine.id)).scalar()
    second_id = []

    def second_writer():
        with engine.begin() as connection:
            second_id.append(connection.execute(insert(LogLine).values(**line).returning(LogLine.id)).scalar())

    writer = threading.Thread(target=second_writer)
    writer.start()
    writer.join(0.5)
    assert writer.is_alive() and second_id == []  # waiting for the first's commit
    first.commit()
    first.close()
    writer.join(10)
    assert second_id and second_id[0] > first_id


def test_concurrent_writers_a_reader_following_id_above_last_sees_every_line_once(pg_dashboard):
    """Several connections write lines at once, each holding its transaction open a moment
    after inserting (as a slow commit would): a reader that only ever asks for `id > last`
    still sees every line, exactly once."""
    app = pg_dashboard
    job_id = a_job(app)
    writers, lines_each = 6, 60
    done = threading.Event()
    failures = []

    def write(number: int):
        try:
            with app.app_context():
                rng = random.Random(number)
                for i in range(lines_each):
                    db.session.add_all([LogLine(job_id=job_id, level="info", text=f"{number}:{i}:{part}")
                                        for part in range(rng.randint(1, 3))])
                    db.session.flush()  # ids drawn here...
                    time.sleep(rng.random() * 0.004)
                    db.session.commit()  # ...and visible only here
                db.session.remove()
        except Exception as exc:  # reported by the main thread
            failures.append(exc)

    seen = []

    def follow():
        with app.app_context(), db.engine.connect() as connection:
            last, finishing = 0, False
            while True:
                rows = connection.execute(select(LogLine.id).where(LogLine.job_id == job_id, LogLine.id > last)
                                          .order_by(LogLine.id)).scalars().all()
                connection.rollback()
                seen.extend(rows)
                last = rows[-1] if rows else last
                if finishing and not rows:
                    return
                finishing = done.is_set()

    reader = threading.Thread(target=follow)
    reader.start()
    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    [thread.start() for thread in threads]
    [thread.join() for thread in threads]
    done.set()
    reader.join(30)
    assert not failures, failures
    with app.app_context():
        stored = db.session.scalars(select(LogLine.id).where(LogLine.job_id == job_id).order_by(LogLine.id)).all()
    assert len(stored) >= writers * lines_each
    assert len(seen) == len(set(seen)) and seen == stored


def test_a_worker_that_cannot_start_records_its_failure_in_postgresql(pg_dashboard, demo_config):
    from app.jobs.runner import create_job, launch, log_lines

    with pg_dashboard.app_context():
        job = create_job("command", "production", "admin", {"argv": ["true"]})
        demo_config.write_text("[environments.production\n")  # broken after the dashboard started
        job_id = launch(job).id
    job = wait_for_job(pg_dashboard, job_id)
    assert job.state == "failed" and "could not start" in job.error and "TOML syntax error" in job.error
    with pg_dashboard.app_context():
        assert "TOML syntax error" in log_lines(job_id)[-1].text


# --------------------------------------------------------------------------- flows, two dashboards


def test_two_dashboards_share_one_postgresql_state_database(tmp_path, demo_config, pg_server, pg_database,
                                                          api_headers):
    from app import audit
    from app.jobs.runner import create_job, log_lines

    url = state_url(pg_server, pg_database)
    first, second = pg_app(tmp_path, demo_config, url, "first"), pg_app(tmp_path, demo_config, url, "second")
    one, other = first.test_client(), second.test_client()
    assert log_in(one).status_code == 302 and log_in(other).status_code == 302

    # A backup started on the first runs in a real worker, which finds the state by the URL.
    started = one.post("/api/v1/environments/production/backups", headers=api_headers)
    assert started.status_code == 202, started.get_json()
    job_id = started.get_json()["job"]["id"]
    # The second follows it live, from its own log reader.
    stream = other.get(f"/api/v1/jobs/{job_id}/events", headers=api_headers, buffered=False)
    events = read_events(stream)
    job = wait_for_job(first, job_id)
    assert job.state == "passed", job.error
    with second.app_context():
        stored = [(line.id, line.text) for line in log_lines(job_id)]
    streamed = [(int(e["id"]), json.loads(e["data"])["text"]) for e in events if e["event"] == "line"]
    assert streamed == stored and len(stored) > 1
    assert events[-1]["event"] == "end" and json.loads(events[-1]["data"]) == {"job": job_id, "state": "passed"}
    document = other.get(f"/api/v1/jobs/{job_id}", headers=api_headers).get_json()
    assert document["job"]["state"] == "passed" and [line["seq"] for line in document["lines"]] == [s for s, _ in stored]
    backups = other.get("/api/v1/environments/production/backups", headers=api_headers).get_json()["backups"]
    assert started.get_json()["backup"] in [backup["id"] for backup in backups]

    # A run opened on the second is the first's to see, and to be refused a second of.
    opened = other.post("/api/v1/runs", headers=api_headers, json={"environment": "production"})
    assert opened.status_code == 201, opened.get_json()
    run_id = opened.get_json()["id"]
    assert run_id in [run["id"] for run in one.get("/api/v1/runs", headers=api_headers).get_json()["runs"]]
    assert one.get(f"/api/v1/runs/{run_id}", headers=api_headers).get_json()["status"] == "open"
    assert one.post("/api/v1/runs", headers=api_headers, json={"environment": "production"}).status_code == 409

    # One active job per environment holds across the two (the partial unique index).
    with first.app_context():
        busy = create_job("integrity", "production", "admin").id
    with second.app_context(), pytest.raises(Conflict) as caught:
        create_job("integrity", "production", "will")
    assert f"(job {busy}, started by admin) is already running on production" in caught.value.message

    # Both wrote to one audit chain, from two instance folders: still one unbroken chain.
    with first.app_context():
        assert audit.verify_chain() is None
        actors = db.session.scalars(select(AuditEntry.actor)).all()
    with second.app_context():
        assert audit.verify_chain() is None
    # Two logins, the backup's start (by the API's token) and its end, the run, the jobs.
    assert actors.count("admin") >= 2 and actors.count("api-token") >= 2 and len(actors) >= 6
    dispose(first, second)


def test_concurrent_audit_appends_from_two_dashboards_keep_one_chain(tmp_path, demo_config, pg_server,
                                                                     pg_database):
    from app import audit

    url = state_url(pg_server, pg_database)
    apps = [pg_app(tmp_path, demo_config, url, "first"), pg_app(tmp_path, demo_config, url, "second")]

    def append(app, name):
        with app.app_context():
            for i in range(25):
                audit.record(name, "test", detail=str(i))
            db.session.remove()

    threads = [threading.Thread(target=append, args=(app, f"op{n}")) for n, app in enumerate(apps)]
    [thread.start() for thread in threads]
    [thread.join() for thread in threads]
    for app in apps:
        with app.app_context():
            assert audit.verify_chain() is None
    engine = create_engine(url)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM audit_entry WHERE action = 'test'").scalar() == 50
    engine.dispose()
    dispose(*apps)



def test_ids_are_64_bit_as_in_sqlite(pg_dashboard, api_headers):
    """The routes take ids up to 2**63 - 1 (SQLite's INTEGER): on PostgreSQL too, one beyond
    32 bits names no row (404), rather than failing the query (500)."""
    client = pg_dashboard.test_client()
    for url in ("/api/v1/jobs/3000000000", "/api/v1/runs/3000000000", "/api/v1/jobs/3000000000/events",
                "/api/v1/jobs/9223372036854775807"):
        assert client.get(url, headers=api_headers).status_code == 404, url
    job_id = a_job(pg_dashboard)
    assert client.get(f"/api/v1/jobs/{job_id}?after=3000000000", headers=api_headers).get_json()["lines"] == []
    types = pg_server_column_types(pg_dashboard)
    assert types["log_line.id"] == types["job.id"] == types["log_line.job_id"] == "bigint"


def pg_server_column_types(app) -> dict[str, str]:
    with app.app_context(), db.engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public'").all()
    return dict(rows)
