"""The copy on a real server: all or nothing, converted by the target's types, verified, sequences set."""
import hashlib
import json
from pathlib import Path

import pytest

from app.core.engines import engine_for
from app.core.engines.sqlite.quarantine import read_quarantine
from app.core.errors import MoveFailed, MoveRefused, QuarantineExists
from app.core.move import move
from tests.core.move.conftest import count_all, make_source


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_clean_data_moves_converted_and_verified(clean_source, target, pg_server, pg_database):
    before = sha(clean_source.path)
    report = move(clean_source, target)
    assert report.passed, report.lines()
    assert count_all(pg_server, pg_database) == {"users": 2, "goals": 3, "notes": 2}
    rows = pg_server.psql("SELECT id, active, created_at FROM users ORDER BY id", database=pg_database)
    assert rows.splitlines() == ["1|t|2026-01-02 10:00:00", "2|f|2026-01-03 11:30:00"]
    goals = pg_server.psql("SELECT id, done, meta->'tags'->>0, score FROM goals ORDER BY id", database=pg_database)
    assert goals.splitlines() == ["1|f|a|10", "2|t||", "3|t||-3"]
    assert sha(clean_source.path) == before
    tables = {t["name"]: t for t in report.to_dict()["tables"]}
    assert tables["goals"]["fingerprints_match"] and tables["goals"]["reconciled"]
    assert tables["goals"]["sequences"] == {"id": 3} and tables["users"]["sequences"] == {"id": 2}
    # The next row the application inserts takes the next id, not one that collides.
    assert pg_server.psql("INSERT INTO goals (user_id, title) VALUES (1, 'new') RETURNING id",
                          database=pg_database).split()[0] == "4"
    assert [name for name, passed, _ in report.checks if not passed] == []


def test_rejects_refuse_the_move_without_a_quarantine(dirty_source, target, pg_server, pg_database):
    with pytest.raises(MoveRefused) as refused:
        move(dirty_source, target)
    assert "12 rows cannot be moved" in refused.value.message
    assert "goals: 1 foreign_key_orphan" in refused.value.message
    assert count_all(pg_server, pg_database) == {"users": 0, "goals": 0, "notes": 0}


def test_a_reject_met_after_rows_were_written_refuses_rolls_back_and_counts_every_reject(tmp_path, pg_server,
                                                                                        pg_database, pg_url):
    """Rows are judged as the copy reads them: the first reject without a quarantine ends the
    writing, the rest is still judged so the refusal counts everything, and the rollback leaves
    the target as it was, the foreign keys set aside included."""
    pg_server.psql("CREATE TABLE kinds (id bigint PRIMARY KEY, name text NOT NULL);"
                   "CREATE TABLE events (id bigint PRIMARY KEY, kind bigint NOT NULL REFERENCES kinds(id),"
                   " ok boolean NOT NULL, payload jsonb);"
                   "CREATE TABLE tags (id bigint PRIMARY KEY, event bigint NOT NULL REFERENCES events(id));",
                   database=pg_database)
    keys_before = pg_server.psql(FOREIGN_KEYS, database=pg_database)
    source = engine_for(make_source(tmp_path / "late.db", """
        INSERT INTO kinds VALUES (1, 'a'), (2, 'b');
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
        INSERT INTO events SELECT i, 1 + i % 2, i % 2, '{"i": ' || i || '}' FROM n;
        UPDATE events SET ok = 'maybe' WHERE id = 3000;
        UPDATE events SET payload = '{oops' WHERE id = 4000;
        INSERT INTO tags VALUES (1, 3000), (2, 3000), (3, 1);""",
        "CREATE TABLE kinds (id INTEGER PRIMARY KEY, name TEXT);"
        "CREATE TABLE events (id INTEGER PRIMARY KEY, kind INTEGER, ok INTEGER, payload TEXT);"
        "CREATE TABLE tags (id INTEGER PRIMARY KEY, event INTEGER);"))
    before = sha(source.path)
    with pytest.raises(MoveRefused) as refused:
        move(source, engine_for(pg_url, kind="postgresql"))
    assert "4 rows cannot be moved (events: 1 not_boolean, 1 invalid_json; tags: 2 parent_rejected)" \
        in refused.value.message
    counts = pg_server.psql("SELECT (SELECT count(*) FROM kinds) || ',' || (SELECT count(*) FROM events) || ','"
                            " || (SELECT count(*) FROM tags)", database=pg_database).strip()
    assert counts == "0,0,0"
    assert pg_server.psql(FOREIGN_KEYS, database=pg_database) == keys_before
    assert sha(source.path) == before


def test_a_quarantine_receives_every_rejected_row_and_the_rest_moves(dirty_source, target, pg_server, pg_database,
                                                                     tmp_path):
    quarantine = tmp_path / "rejects.db"
    report = move(dirty_source, target, quarantine=quarantine)
    assert report.passed, report.lines()
    assert count_all(pg_server, pg_database) == {"users": 2, "goals": 3, "notes": 2}
    rows = read_quarantine(quarantine)
    assert len(rows) == 12 == report.quarantined
    orphan = next(row for row in rows if row["reason"] == "foreign_key_orphan" and row["table"] == "goals")
    assert orphan["key"] == {"id": 10} and orphan["values"]["user_id"] == 99 and orphan["values"]["title"] == "orphan"
    ledger = {t.name: (t.source_rows, t.moved, t.quarantined) for t in report.tables}
    assert ledger == {"users": (6, 2, 4), "goals": (9, 3, 6), "notes": (4, 2, 2)}
    assert not list(tmp_path.glob(".rejects.db.partial*"))



def test_a_quarantine_name_taken_during_the_move_keeps_its_rows_in_the_sealed_file(dirty_source, target, pg_server,
                                                                                   pg_database, tmp_path):
    """After the target's COMMIT nothing is rolled back: the rejected rows stay complete under the
    hidden name, the file that took the name is left alone, and the message says both."""
    quarantine = tmp_path / "rejects.db"

    def someone_takes_the_name(line):
        if line.startswith("Transaction open on the target"):
            quarantine.write_bytes(b"not yours")

    with pytest.raises(MoveFailed) as failed:
        move(dirty_source, target, quarantine=quarantine, say=someone_takes_the_name)
    assert "The move committed" in failed.value.message
    assert count_all(pg_server, pg_database) == {"users": 2, "goals": 3, "notes": 2}
    assert quarantine.read_bytes() == b"not yours"
    sealed = Path(failed.value.details["quarantine"])
    assert sealed.parent == tmp_path and sealed.name.startswith(".rejects.db.partial-")
    assert str(sealed) in failed.value.message and len(read_quarantine(sealed)) == 12


def test_a_failure_during_the_copy_leaves_no_quarantine(tmp_path, target, pg_server, pg_database):
    pg_server.psql("ALTER TABLE notes ADD CHECK (body <> 'forbidden')", database=pg_database)
    from tests.core.move.conftest import DIRTY_ROWS
    source = engine_for(make_source(tmp_path / "app.db", DIRTY_ROWS + "INSERT INTO notes VALUES (9, 1, 'forbidden');"))
    with pytest.raises(MoveFailed) as failed:
        move(source, target, quarantine=tmp_path / "rejects.db")
    assert "notes_body_check" in failed.value.message
    assert count_all(pg_server, pg_database) == {"users": 0, "goals": 0, "notes": 0}
    assert [path.name for path in tmp_path.iterdir() if "rejects" in path.name] == []

def test_an_existing_quarantine_file_is_refused_before_anything(dirty_source, target, pg_server, pg_database,
                                                                tmp_path):
    quarantine = tmp_path / "rejects.db"
    quarantine.write_bytes(b"keep me")
    with pytest.raises(QuarantineExists):
        move(dirty_source, target, quarantine=quarantine)
    assert quarantine.read_bytes() == b"keep me"
    assert count_all(pg_server, pg_database) == {"users": 0, "goals": 0, "notes": 0}


def test_a_non_empty_target_is_refused_and_left_as_it_was(clean_source, target, pg_server, pg_database):
    pg_server.psql("INSERT INTO users (email, active, created_at) VALUES ('z@z', true, now())", database=pg_database)
    with pytest.raises(MoveRefused) as refused:
        move(clean_source, target)
    assert "target table users is not empty" in refused.value.message
    assert count_all(pg_server, pg_database) == {"users": 1, "goals": 0, "notes": 0}


def test_a_failure_during_the_copy_rolls_everything_back(tmp_path, target, pg_server, pg_database):
    # A CHECK constraint that preflight does not evaluate: the server refuses the last table's row mid-COPY.
    pg_server.psql("ALTER TABLE notes ADD CHECK (body <> 'forbidden')", database=pg_database)
    source = engine_for(make_source(tmp_path / "app.db", __import__("tests.core.move.conftest", fromlist=["x"]).CLEAN_ROWS
                                    + "INSERT INTO notes VALUES (9, 1, 'forbidden');"))
    with pytest.raises(MoveFailed) as failed:
        move(source, target)
    assert "notes_body_check" in failed.value.message and "rolled back" in failed.value.message
    assert count_all(pg_server, pg_database) == {"users": 0, "goals": 0, "notes": 0}


def test_children_written_before_their_parents_in_the_source_are_ordered(tmp_path, target, pg_server, pg_database):
    rows = ("INSERT INTO users VALUES (1, 'a@a', 1, '2026-01-01');"
            "INSERT INTO goals VALUES (1, 1, 3, 'leaf', 0, NULL, NULL), (2, 1, NULL, 'root', 0, NULL, NULL),"
            " (3, 1, 2, 'middle', 0, NULL, NULL);")
    source = engine_for(make_source(tmp_path / "app.db", rows))
    report = move(source, target)
    assert report.passed
    assert pg_server.psql("SELECT id, root_id FROM goals ORDER BY id", database=pg_database).split() == [
        "1|3", "2|", "3|2"]


def test_rows_naming_each_other_or_themselves_move_in_one_copy(tmp_path, target, pg_server, pg_database):
    # The key is not deferrable, yet the server checks it at the end of the COPY: a cycle and a root
    # goal whose root_id is its own id both move, with no order to find.
    rows = ("INSERT INTO users VALUES (1, 'a@a', 1, '2026-01-01');"
            "INSERT INTO goals VALUES (1, 1, 2, 'a', 0, NULL, NULL), (2, 1, 1, 'b', 0, NULL, NULL),"
            " (3, 1, 3, 'its own root', 0, NULL, NULL), (4, 1, 5, 'child of an orphan', 0, NULL, NULL),"
            " (5, 1, 99, 'orphan', 0, NULL, NULL);")
    source = engine_for(make_source(tmp_path / "app.db", rows))
    report = move(source, target, quarantine=tmp_path / "q.db")
    assert report.passed
    assert pg_server.psql("SELECT id, root_id FROM goals ORDER BY id", database=pg_database).split() == [
        "1|2", "2|1", "3|3"]
    assert {(row["key"]["id"], row["reason"]) for row in read_quarantine(tmp_path / "q.db")} == {
        (4, "parent_rejected"), (5, "foreign_key_orphan")}


def test_json_timestamps_and_floats_keep_their_content(tmp_path, pg_server, pg_database, pg_url):
    pg_server.psql("CREATE TABLE t (id integer PRIMARY KEY, j json, jb jsonb, at timestamptz, r real, d double precision,"
                   " n numeric(8,2), c char(4), day date)", database=pg_database)
    source = engine_for(make_source(
        tmp_path / "t.db", "INSERT INTO t VALUES (1, '{\"b\": 1e2, \"a\": [true, null]}', '{\"z\": 1.0, \"y\": \"\\u00e9\"}',"
        " '2026-01-02T03:04:05.123456+02:00', 0.1, 0.30000000000000004, 12.345, 'ab', '2026-02-03'),"
        " (2, NULL, NULL, '2026-01-02 03:04', 1e20, -0.0, 7, NULL, NULL);",
        "CREATE TABLE t (id INTEGER PRIMARY KEY, j TEXT, jb TEXT, at TEXT, r REAL, d REAL, n REAL, c TEXT, day TEXT);"))
    report = move(source, engine_for(pg_url, kind="postgresql"))
    assert report.passed, report.lines()
    assert pg_server.psql("SELECT at, n, c || '|', jb->>'y' FROM t WHERE id = 1", database=pg_database).strip() == \
        "2026-01-02 01:04:05.123456+00|12.35|ab||é"
    assert json.loads(report.to_dict()["tables"][0]["source_fingerprint"].split(":")[0]) == 2


def test_timestamps_and_dates_keep_their_moment_whatever_the_target_datestyle(tmp_path, pg_server, pg_database,
                                                                              pg_url):
    """Timestamps without a time zone and dates travel as the ISO text the server prints; a target
    whose DateStyle is day-first still stores the same moments, and the fingerprints still match."""
    pg_server.psql(f'ALTER DATABASE "{pg_database}" SET DateStyle = \'SQL, DMY\'', database=pg_database)
    pg_server.psql("CREATE TABLE t (id bigint PRIMARY KEY, at timestamp, day date)", database=pg_database)
    source = engine_for(make_source(
        tmp_path / "t.db", "INSERT INTO t VALUES (1, '2026-03-04 05:06:07', '2026-03-04'),"
        " (2, '2026-03-04 05:06:07.500000', '2026-03-04 23:59:59'), (3, '2026-03-04T05:06:07+02:00', NULL),"
        " (4, '0987-03-04 05:06:07.000001', '0987-03-04'), (5, NULL, '2026-12-31');",
        "CREATE TABLE t (id INTEGER PRIMARY KEY, at DATETIME, day DATE);"))
    report = move(source, engine_for(pg_url, kind="postgresql"))
    assert report.passed, report.lines()
    moved = pg_server.psql("SELECT id, to_char(at, 'YYYY-MM-DD HH24:MI:SS.US'), to_char(day, 'YYYY-MM-DD') FROM t "
                           "ORDER BY id", database=pg_database)
    assert moved.splitlines() == [
        "1|2026-03-04 05:06:07.000000|2026-03-04", "2|2026-03-04 05:06:07.500000|2026-03-04",
        "3|2026-03-04 03:06:07.000000|", "4|0987-03-04 05:06:07.000001|0987-03-04", "5||2026-12-31"]


def test_a_timestamp_changed_on_its_way_in_fails_the_fingerprints(tmp_path, pg_server, pg_database, pg_url):
    pg_server.psql("CREATE TABLE t (id bigint PRIMARY KEY, at timestamp);"
                   "CREATE FUNCTION nudge() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                   " NEW.at := NEW.at + interval '1 microsecond'; RETURN NEW; END $$;"
                   "CREATE TRIGGER nudge BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION nudge();", database=pg_database)
    source = engine_for(make_source(tmp_path / "t.db", "INSERT INTO t VALUES (1, '2026-03-04 05:06:07');",
                                    "CREATE TABLE t (id INTEGER PRIMARY KEY, at DATETIME);"))
    with pytest.raises(MoveFailed) as failed:
        move(source, engine_for(pg_url, kind="postgresql"))
    assert "t: content fingerprint" in failed.value.message
    assert pg_server.psql("SELECT count(*) FROM t", database=pg_database).strip() == "0"


def test_a_row_changed_on_its_way_in_fails_the_fingerprints_and_rolls_back(clean_source, target, pg_server,
                                                                           pg_database):
    # A trigger on the target rewrites what COPY writes: the counts agree, the content does not.
    pg_server.psql("CREATE FUNCTION shout() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.title := upper(NEW.title);"
                   " RETURN NEW; END $$; CREATE TRIGGER shout BEFORE INSERT ON goals FOR EACH ROW EXECUTE FUNCTION shout();",
                   database=pg_database)
    with pytest.raises(MoveFailed) as failed:
        move(clean_source, target)
    assert "goals: content fingerprint" in failed.value.message
    assert "users: content fingerprint" not in failed.value.message
    assert count_all(pg_server, pg_database) == {"users": 0, "goals": 0, "notes": 0}


FOREIGN_KEYS = ("SELECT conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE contype = 'f' ORDER BY 1")


def test_the_target_keeps_every_foreign_key_as_it_was_declared(clean_source, target, pg_server, pg_database):
    pg_server.psql("ALTER TABLE notes DROP CONSTRAINT notes_goal_id_fkey; ALTER TABLE notes ADD CONSTRAINT "
                   "notes_goal_id_fkey FOREIGN KEY (goal_id) REFERENCES goals(id) ON DELETE CASCADE "
                   "DEFERRABLE INITIALLY DEFERRED", database=pg_database)
    before = pg_server.psql(FOREIGN_KEYS, database=pg_database)
    assert move(clean_source, target).passed
    assert pg_server.psql(FOREIGN_KEYS, database=pg_database) == before
    assert "ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED" in before
    with pytest.raises(RuntimeError, match="violates foreign key constraint"):
        pg_server.psql("INSERT INTO goals (user_id, title) VALUES (42, 'no such user')", database=pg_database)


CYCLE_SCHEMA = ("CREATE TABLE teams (id integer PRIMARY KEY, captain_id integer);"
                "CREATE TABLE players (id integer PRIMARY KEY, team_id integer NOT NULL REFERENCES teams(id));"
                "ALTER TABLE teams ADD FOREIGN KEY (captain_id) REFERENCES players(id);")
CYCLE_SOURCE = "CREATE TABLE teams (id INTEGER PRIMARY KEY, captain_id INTEGER); " \
               "CREATE TABLE players (id INTEGER PRIMARY KEY, team_id INTEGER);"


def test_tables_that_refer_to_each_other_move_with_keys_that_are_not_deferrable(tmp_path, pg_server, pg_database,
                                                                                 pg_url):
    pg_server.psql(CYCLE_SCHEMA, database=pg_database)
    source = engine_for(make_source(tmp_path / "c.db", "INSERT INTO teams VALUES (1, 10), (2, NULL);"
                                    "INSERT INTO players VALUES (10, 1), (11, 2);", CYCLE_SOURCE))
    target = engine_for(pg_url, kind="postgresql")
    from app.core.move import preflight

    document = preflight(source, target).to_dict()
    assert document["cycles"] == ["players", "teams"] and document["movable"]
    assert document["checked_by_the_server"] == ["players.players_team_id_fkey"]
    assert move(source, target).passed
    assert pg_server.psql("SELECT count(*) FROM teams", database=pg_database).strip() == "2"


def test_an_orphan_in_a_cycle_of_tables_fails_the_move_at_the_end_and_leaves_nothing(tmp_path, pg_server,
                                                                                      pg_database, pg_url):
    pg_server.psql(CYCLE_SCHEMA, database=pg_database)
    source = engine_for(make_source(tmp_path / "c.db", "INSERT INTO teams VALUES (1, 10);"
                                    "INSERT INTO players VALUES (10, 1), (11, 7);", CYCLE_SOURCE))
    with pytest.raises(MoveFailed) as failed:
        move(source, engine_for(pg_url, kind="postgresql"))
    assert "players_team_id_fkey" in failed.value.message
    assert pg_server.psql("SELECT (SELECT count(*) FROM teams) + (SELECT count(*) FROM players)",
                          database=pg_database).strip() == "0"
    assert pg_server.psql("SELECT count(*) FROM pg_constraint WHERE contype = 'f'", database=pg_database).strip() == "2"


def test_a_user_who_does_not_own_the_tables_moves_with_the_keys_checked_row_by_row(clean_source, target, pg_server,
                                                                                  pg_database, monkeypatch):
    pg_server.psql("DROP ROLE IF EXISTS mover; CREATE ROLE mover LOGIN PASSWORD 'pw-mover';"
                   "GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA public TO mover;"
                   "GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO mover;", database=pg_database)
    from app.core.engines.postgresql.location import PostgresLocation

    monkeypatch.setenv("MOVER_PW", "pw-mover")
    as_mover = engine_for(PostgresLocation(pg_server.url(pg_database, user="mover"), password_env="MOVER_PW"),
                          kind="postgresql")
    before = pg_server.psql(FOREIGN_KEYS, database=pg_database)
    report = move(clean_source, as_mover)
    assert report.passed, report.lines()
    assert count_all(pg_server, pg_database) == {"users": 2, "goals": 3, "notes": 2}
    assert pg_server.psql(FOREIGN_KEYS, database=pg_database) == before
