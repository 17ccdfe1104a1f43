"""NULLs in rows written after a migration, where the migration had filled every row."""
import sqlite3

from app.core.newrows import capture_baseline, new_rows_check


def make(path):
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE activity_instances (id INTEGER PRIMARY KEY, root_id INTEGER, notes TEXT);"
        "INSERT INTO activity_instances (root_id, notes) VALUES (1, NULL), (1, 'x'), (2, NULL);"
        'CREATE TABLE "odd ""name""" (id INTEGER PRIMARY KEY, v TEXT);'
    )
    conn.close()


def add(path, sql):
    conn = sqlite3.connect(path)
    conn.execute(sql)
    conn.commit()
    conn.close()


def test_baseline_records_filled_columns_and_the_last_rowid(tmp_path):
    path = tmp_path / "app.db"
    make(path)
    assert capture_baseline(path) == {
        "activity_instances": {"max_rowid": 3, "filled": ["root_id"]},
        'odd "name"': {"max_rowid": 0, "filled": ["v"]},
    }


def test_new_rows_that_fill_the_column_pass(tmp_path):
    path = tmp_path / "app.db"
    make(path)
    baseline = capture_baseline(path)
    add(path, "INSERT INTO activity_instances (root_id, notes) VALUES (3, NULL)")  # notes was never always filled
    result = new_rows_check(path, baseline)
    assert result.passed and result.summary == "1 new row(s) since the start; none leaves a filled column NULL"


def test_a_new_row_with_null_root_id_fails_with_the_count(tmp_path):
    path = tmp_path / "app.db"
    make(path)
    baseline = capture_baseline(path)
    add(path, "INSERT INTO activity_instances (root_id) VALUES (NULL)")
    add(path, "INSERT INTO activity_instances (root_id) VALUES (4)")
    add(path, "INSERT INTO \"odd \"\"name\"\"\" (v) VALUES (NULL)")
    result = new_rows_check(path, baseline)
    assert not result.passed
    assert result.evidence == ("activity_instances.root_id: 1 of 2 new row(s) are NULL",
                               'odd "name".v: 1 of 1 new row(s) are NULL')


def test_an_unreadable_database_is_a_failed_check_not_a_crash(tmp_path):
    result = new_rows_check(tmp_path / "gone.db", {"t": {"max_rowid": 0, "filled": []}})
    assert not result.passed and "could not read" in result.summary
