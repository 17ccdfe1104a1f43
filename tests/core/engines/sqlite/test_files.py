"""app.core.engines.sqlite.files: read-only opening, and a clear reason for every file it refuses.

Each bad input is checked twice: the right reason and message, and that the folder
holding it is byte-for-byte and mtime-for-mtime what it was (no -journal, -wal or -shm).
"""

import itertools
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from contextlib import closing
from pathlib import Path

import pytest

from app.core.engines.sqlite.files import classify_sqlite_error, open_readonly, read_consistently
from app.core.errors import TargetUnavailable
from app.core.inspect import inspect_database
from tests.core.conftest import create_database, folder_state

PROJECT_ROOT = Path(__file__).resolve().parents[4]
NOBODY = 65534
MANY_ROWS = "CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT);" + "".join(
    f"INSERT INTO t (body) VALUES (printf('%.500c', '{chr(97 + i % 26)}'));" for i in range(200)
)


def assert_refused(path: Path, reason: str, *words: str) -> TargetUnavailable:
    """open_readonly and inspect_database both refuse `path`, and touch nothing."""
    folder = next(parent for parent in path.parents if parent.is_dir())
    before = folder_state(folder)
    for attempt in (open_readonly, inspect_database):
        with pytest.raises(TargetUnavailable) as caught:
            attempt(path, busy_timeout=0.1)
        error = caught.value
        assert (error.reason, error.path) == (reason, str(path))
        for word in words:
            assert word in error.message
        assert folder_state(folder) == before
    return error


# --- good files -------------------------------------------------------------------------


def test_open_readonly_reads_and_refuses_writes(make_db):
    path = make_db("CREATE TABLE t (a); INSERT INTO t VALUES (1);")
    before = folder_state(path.parent)
    with closing(open_readonly(path)) as connection:
        assert connection.execute("SELECT a FROM t").fetchall() == [(1,)]
        assert connection.execute("PRAGMA query_only").fetchone() == (1,)
        with pytest.raises(sqlite3.OperationalError):
            connection.execute("INSERT INTO t VALUES (2)")
    assert folder_state(path.parent) == before


def test_open_readonly_handles_uri_special_characters(tmp_path):
    folder = tmp_path / "odd ?#% names"
    folder.mkdir()
    path = create_database(folder / "db ?x=1#frag%20.sqlite", "CREATE TABLE t (a);")
    with closing(open_readonly(path)) as connection:
        assert connection.execute("SELECT count(*) FROM t").fetchone() == (0,)
    assert sorted(p.name for p in folder.iterdir()) == ["db ?x=1#frag%20.sqlite"]


def test_wal_database_with_its_wal_and_shm_files(make_db):
    path = make_db("PRAGMA journal_mode = WAL; CREATE TABLE t (a);")
    with closing(sqlite3.connect(path)) as writer:
        writer.execute("INSERT INTO t VALUES (1)")
        writer.commit()  # the row lives in -wal until a checkpoint
        assert Path(f"{path}-wal").exists() and Path(f"{path}-shm").exists()
        with closing(open_readonly(path)) as connection:
            assert connection.execute("SELECT count(*) FROM t").fetchone() == (1,)
        snapshot = inspect_database(path)
    assert snapshot.row_counts() == {"t": 1}
    assert snapshot.facts.journal_mode == "wal"


def test_idle_wal_database_is_read_without_creating_wal_or_shm(make_db):
    path = make_db("PRAGMA journal_mode = WAL; CREATE TABLE t (a); INSERT INTO t VALUES (1);")
    before = folder_state(path.parent)
    assert sorted(before) == ["test.db"]  # the last connection removed -wal and -shm
    with closing(open_readonly(path)) as connection:
        assert connection.execute("SELECT count(*) FROM t").fetchone() == (1,)
    snapshot = inspect_database(path)
    assert (snapshot.row_counts(), snapshot.facts.journal_mode) == ({"t": 1}, "wal")
    assert folder_state(path.parent) == before


def test_read_consistently_repeats_a_read_that_overlapped_a_writer(make_db):
    path = make_db("PRAGMA journal_mode = WAL; CREATE TABLE t (a);")
    calls = []

    def read(connection):
        calls.append(1)
        if len(calls) == 1:  # a writer touches the file during the first (lock-free) read
            os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
        return connection.execute("SELECT count(*) FROM t").fetchone()[0]

    assert read_consistently(path, read) == 0
    assert len(calls) == 2


def test_read_consistently_gives_up_on_a_file_that_keeps_changing(make_db):
    path = make_db("PRAGMA journal_mode = WAL; CREATE TABLE t (a);")

    stamps = itertools.count(time.time_ns() + 10**9, 10**9)

    def read(connection):
        stamp = next(stamps)  # every read sees a new modification time
        os.utime(path, ns=(stamp, stamp))

    with pytest.raises(TargetUnavailable) as caught:
        read_consistently(path, read)
    assert caught.value.reason == "locked"
    assert "kept changing" in caught.value.message


# --- bad files --------------------------------------------------------------------------


def test_missing_file(tmp_path):
    error = assert_refused(tmp_path / "nope.db", "missing", "does not exist")
    assert not (tmp_path / "nope.db").exists()
    assert str(tmp_path / "nope.db") in error.message


def test_messages_say_what_is_wrong_and_what_to_do(tmp_path):
    with pytest.raises(TargetUnavailable) as caught:
        open_readonly(tmp_path / "goals.db")
    assert caught.value.message == (
        f"{tmp_path / 'goals.db'} does not exist. Check the configured path (nothing was created there)."
    )
    (tmp_path / "goals.db").touch()
    with pytest.raises(TargetUnavailable) as caught:
        open_readonly(tmp_path / "goals.db")
    assert caught.value.message == (
        f"{tmp_path / 'goals.db'}: the file is empty (0 bytes), so it holds no database yet. Check "
        "the path; if the application has never run, start it once, otherwise restore the "
        "database from a backup."
    )
    assert caught.value.to_dict() == {
        "error": "database_unavailable",
        "message": caught.value.message,
        "path": str(tmp_path / "goals.db"),
        "reason": "empty",
    }


def test_missing_folder(tmp_path):
    assert_refused(tmp_path / "no-such-dir" / "x.db", "missing", "does not exist")
    assert not (tmp_path / "no-such-dir").exists()


def test_path_through_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    assert_refused(tmp_path / "file" / "x.db", "missing")


def test_directory(tmp_path):
    (tmp_path / "db.sqlite").mkdir()
    assert_refused(tmp_path / "db.sqlite", "is_directory", "is a directory")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.db"
    path.touch()
    assert_refused(path, "empty", "the file is empty (0 bytes), so it holds no database yet")
    assert path.stat().st_size == 0


def test_text_file(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("these are not the rows you are looking for\n" * 10)
    assert_refused(path, "not_sqlite", "is not a SQLite database")


def test_tiny_non_sqlite_file(tmp_path):
    path = tmp_path / "tiny.db"
    path.write_bytes(b"hi")
    assert_refused(path, "not_sqlite")


def test_file_cut_inside_the_header(tmp_path, make_db):
    source = make_db("CREATE TABLE t (a);")
    path = tmp_path / "cut.db"
    path.write_bytes(source.read_bytes()[:60])
    assert_refused(path, "truncated", "100-byte")


def test_truncated_database(tmp_path, make_db):
    source = make_db(MANY_ROWS)
    data = source.read_bytes()
    assert len(data) >= 4096 * 20
    path = tmp_path / "half.db"
    path.write_bytes(data[: len(data) // 2])
    assert_refused(path, "truncated", "is truncated", f"{len(data) // 2:,} bytes")


def test_damaged_header_page_size(tmp_path, make_db):
    data = bytearray(make_db("CREATE TABLE t (a);").read_bytes())
    data[16:18] = (1000).to_bytes(2, "big")
    path = tmp_path / "bad-header.db"
    path.write_bytes(bytes(data))
    assert_refused(path, "corrupt", "damaged header")


def test_corrupt_schema_page(tmp_path, make_db):
    data = bytearray(make_db(MANY_ROWS).read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # page 1 holds sqlite_schema
    path = tmp_path / "corrupt.db"
    path.write_bytes(bytes(data))
    error = assert_refused(path, "corrupt", "malformed", "restore it from a backup")
    assert error.to_dict()["reason"] == "corrupt"


def _damage_middle_page(source: Path, target: Path) -> Path:
    data = bytearray(source.read_bytes())
    middle = (len(data) // 4096 // 2) * 4096
    data[middle : middle + 4096] = b"\x0d" + b"\xa5" * 4095  # a table leaf page of nonsense
    target.write_bytes(bytes(data))
    return target


def test_corrupt_data_page_found_by_counting(tmp_path, make_db):
    # The schema (page 1) is intact, so opening works; COUNT(*) walks the table's own
    # pages, so the damage stops the inspection.
    path = _damage_middle_page(make_db(MANY_ROWS), tmp_path / "corrupt-data.db")
    before = folder_state(tmp_path)
    open_readonly(path).close()
    with pytest.raises(TargetUnavailable) as caught:
        inspect_database(path, deep=False)
    assert caught.value.reason == "corrupt"
    assert caught.value.message == (
        f'{path}: SQLite says "database disk image is malformed"; the database is damaged '
        "(corrupt). Do not migrate it: restore it from a backup (the sqlite3 command's "
        ".recover may save what is left)."
    )
    assert folder_state(tmp_path) == before


def test_corrupt_data_page_found_by_quick_check(tmp_path, make_db):
    # With an index, COUNT(*) reads the (smaller, intact) index instead; quick_check,
    # which reads every page, is what finds the damage.
    indexed = MANY_ROWS + "CREATE INDEX t_id ON t (id);"
    path = _damage_middle_page(make_db(indexed), tmp_path / "corrupt-data.db")
    before = folder_state(tmp_path)
    shallow, deep = inspect_database(path, deep=False), inspect_database(path)
    assert shallow.row_counts() == deep.row_counts() == {"t": 200}
    assert shallow.facts.quick_check is None
    assert deep.facts.quick_check == "quick_check stopped: database disk image is malformed"
    assert deep.facts.foreign_key_violations is None
    assert folder_state(tmp_path) == before


def test_locked_by_a_writer(make_db):
    path = make_db("CREATE TABLE t (a); INSERT INTO t VALUES (1);")
    with closing(sqlite3.connect(path, isolation_level=None)) as writer:
        writer.execute("BEGIN EXCLUSIVE")
        writer.execute("INSERT INTO t VALUES (2)")
        started = time.monotonic()
        error = assert_refused(path, "locked", "database is locked", "0.1 s", "try again")
        assert time.monotonic() - started < 5
        writer.execute("ROLLBACK")
    assert "writing to it" in error.message


def test_hot_journal_needs_recovery(tmp_path, make_db):
    path = make_db(MANY_ROWS)
    crash = textwrap.dedent(
        f"""
        import os, sqlite3
        connection = sqlite3.connect({str(path)!r})
        connection.execute("PRAGMA cache_size = 1")  # spill changed pages to the file
        connection.execute("BEGIN")
        connection.execute("UPDATE t SET body = body || body")
        os._exit(0)  # die mid-transaction: the -journal stays behind, "hot"
        """
    )
    subprocess.run([sys.executable, "-c", crash], check=True)
    assert Path(f"{path}-journal").exists()
    assert_refused(path, "needs_recovery", "interrupted", "read-write")


# Imports app.core through the real package, which loads no Flask for it: the interpreter
# nobody can run may not have Flask installed.
NOBODY_SCRIPT = """
import sys
sys.path.insert(0, {root!r})
from app.core.engines.sqlite.files import open_readonly
from app.core.errors import TargetUnavailable
try:
    open_readonly({path!r}).close()
except TargetUnavailable as error:
    print(error.reason, error.message, sep="|")
else:
    print("opened|")
"""


def _run_as_nobody(python: str, path: Path) -> str:
    result = subprocess.run(
        [python, "-c", NOBODY_SCRIPT.format(root=str(PROJECT_ROOT), path=str(path))],
        user=NOBODY,
        cwd="/",
        env={"PYTHONDONTWRITEBYTECODE": "1", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def _python_nobody_can_run() -> str | None:
    for python in (sys.executable, shutil.which("python3", path="/usr/bin:/bin")):
        if not python:
            continue
        try:
            subprocess.run([python, "-c", "pass"], user=NOBODY, cwd="/", check=True)
        except (OSError, subprocess.CalledProcessError):
            continue
        return python
    return None


@pytest.fixture
def as_nobody():
    """(folder, run): a folder everyone can enter, and run(path) -> "reason|message"."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run a check as another user (uid 65534)")
    python = _python_nobody_can_run()
    if python is None:
        pytest.skip("no Python interpreter that uid 65534 may execute")
    # Not tmp_path: pytest's own folders are private to root, which would hide the file
    # permission case behind the folder one.
    folder = Path(tempfile.mkdtemp(prefix="cutover-perm-"))
    folder.chmod(0o755)
    yield folder, lambda path: _run_as_nobody(python, path)
    shutil.rmtree(folder)


def test_unreadable_file(as_nobody):
    folder, run = as_nobody
    path = create_database(folder / "secret.db", "CREATE TABLE t (a);")
    path.chmod(0o600)
    before = folder_state(folder)
    reason, message = run(path).split("|", 1)
    assert reason == "unreadable"
    assert "Permission denied" in message and "read access" in message
    assert folder_state(folder) == before


def test_file_in_a_folder_nobody_can_enter(as_nobody):
    folder, run = as_nobody
    private = folder / "private"
    private.mkdir(mode=0o700)
    path = create_database(private / "app.db", "CREATE TABLE t (a);")
    path.chmod(0o644)
    before = folder_state(private)
    reason, message = run(path).split("|", 1)
    assert reason == "unreadable"
    assert "every folder above it" in message
    assert folder_state(private) == before


def test_readable_file_opens_for_nobody(as_nobody):
    folder, run = as_nobody
    path = create_database(folder / "public.db", "CREATE TABLE t (a);")
    path.chmod(0o644)
    assert run(path) == "opened|"


# --- classify_sqlite_error ----------------------------------------------------------------


class _FakeError(sqlite3.OperationalError):
    def __init__(self, message: str, name: str):
        super().__init__(message)
        self.sqlite_errorname = name


@pytest.mark.parametrize(
    ("message", "name", "reason"),
    [
        ("database is locked", "SQLITE_BUSY", "locked"),
        ("database table is locked", "SQLITE_LOCKED_SHAREDCACHE", "locked"),
        ("database disk image is malformed", "SQLITE_CORRUPT", "corrupt"),
        ("file is not a database", "SQLITE_NOTADB", "corrupt"),
        ("unable to open database file", "SQLITE_CANTOPEN", "unreadable"),
        ("disk I/O error", "SQLITE_IOERR_SHORT_READ", "unreadable"),
        ("attempt to write a readonly database", "SQLITE_READONLY_ROLLBACK", "needs_recovery"),
        ("database is locked", "", "locked"),
        ("something new", "SQLITE_WHATEVER", "error"),
    ],
)
def test_classify_sqlite_error(message, name, reason):
    error = classify_sqlite_error(_FakeError(message, name), "/data/app.db")
    assert (error.reason, error.path) == (reason, "/data/app.db")
    assert error.message.startswith(f'/data/app.db: SQLite says "{message}"; the database ')


def test_a_path_with_uri_characters_names_that_very_file(tmp_path):
    """`?`, `#` and `%` in a folder name must not cut the path short or be decoded."""
    import sqlite3 as sqlite

    from app.core.engines.sqlite.files import open_readonly, sqlite_uri

    folder = tmp_path / "odd?name#with%20chars"
    folder.mkdir()
    path = folder / "goals.db"
    conn = sqlite.connect(path)
    conn.execute("CREATE TABLE goals (id INTEGER PRIMARY KEY)")
    conn.commit()
    conn.close()
    assert "?" not in sqlite_uri(path, "ro").split("?mode=")[0]
    with __import__("contextlib").closing(open_readonly(path)) as reader:
        assert reader.execute("SELECT name FROM sqlite_schema").fetchall() == [("goals",)]
    assert sorted(p.name for p in folder.iterdir()) == ["goals.db"]
    assert not (tmp_path / "odd").exists()
