"""The lock-risk preview: what each rule says about a statement, and a real server that
does what the rule says (the lock it takes on each table, whether it rewrites the table,
whether it scans it, whether reads wait meanwhile)."""
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import errors as pg_errors

from app.core.engines.base import Dialect
from app.core.engines.postgresql.dialect import PostgresDialect
from app.core.engines.postgresql.lockrisk import LockRisk, lock_risks
from app.core.engines.sqlite.engine import SQLiteDialect
from tests.pgserver import CLUSTER_USER

AE, SRE, SUE = "ACCESS EXCLUSIVE", "SHARE ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE"
MODES = ("ACCESS SHARE", "ROW SHARE", "ROW EXCLUSIVE", SUE, "SHARE", SRE, "EXCLUSIVE", AE)


def summary(sql: str) -> list[tuple]:
    return [(risk.kind, risk.level, risk.lock, risk.table) for risk in lock_risks(sql)]


# --------------------------------------------------------------------------- the interface


def test_the_dialects_answer_through_the_interface():
    assert Dialect.lock_risks(SQLiteDialect(), "ALTER TABLE t ADD COLUMN a int") == ()
    risks = PostgresDialect().lock_risks("CREATE INDEX ON t (a)")
    assert risks == lock_risks("CREATE INDEX ON t (a)") and len(risks) == 1


def test_a_risk_is_a_frozen_record_with_a_dict():
    risk = lock_risks("CREATE INDEX ON t (a)")[0]
    assert isinstance(risk, LockRisk)
    assert risk.to_dict() == {
        "kind": "index_not_concurrent", "level": "medium", "lock": "SHARE", "table": "t",
        "message": "CREATE INDEX takes a SHARE lock on t: reads go on, but every write to t waits "
                   "until the whole index is built.",
        "fix": "CREATE INDEX CONCURRENTLY in a phase declared `-- phase: TITLE (no transaction)`"}
    with pytest.raises(AttributeError):
        risk.level = "low"


# --------------------------------------------------------------------------- the rules, statically

BRIEF = ("access_exclusive", "low", AE)


@pytest.mark.parametrize("sql, expected", [
    # ADD COLUMN: no rewrite with a non-volatile default since PostgreSQL 11
    ("ALTER TABLE t ADD COLUMN a int", [(*BRIEF, "t")]),
    ("ALTER TABLE t ADD a int DEFAULT 0 NOT NULL", [(*BRIEF, "t")]),
    ("ALTER TABLE t ADD COLUMN a timestamptz DEFAULT now()", [(*BRIEF, "t")]),
    ("ALTER TABLE t ADD COLUMN a timestamptz DEFAULT CURRENT_TIMESTAMP", [(*BRIEF, "t")]),
    ("ALTER TABLE t ADD COLUMN a numeric DEFAULT '1.5'::numeric(10, 2)", [(*BRIEF, "t")]),
    ("ALTER TABLE t ADD COLUMN a text DEFAULT NULL", [(*BRIEF, "t")]),
    ("ALTER TABLE t ADD COLUMN a float8 DEFAULT random()", [("rewrite", "high", AE, "t")]),
    ("ALTER TABLE t ADD COLUMN a uuid DEFAULT gen_random_uuid() NOT NULL", [("rewrite", "high", AE, "t")]),
    ("ALTER TABLE t ADD COLUMN a timestamptz DEFAULT clock_timestamp()", [("rewrite", "high", AE, "t")]),
    ("ALTER TABLE t ADD COLUMN a int DEFAULT my_function()", [("rewrite", "high", AE, "t")]),
    ("ALTER TABLE t ADD COLUMN a bigserial", [("rewrite", "high", AE, "t")]),
    ("ALTER TABLE t ADD COLUMN a int GENERATED ALWAYS AS IDENTITY", [("rewrite", "high", AE, "t")]),
    ("ALTER TABLE t ADD COLUMN a int GENERATED ALWAYS AS (b * 2) STORED", [("rewrite", "high", AE, "t")]),
    ("ALTER TABLE t ADD COLUMN a int NOT NULL", [("not_null_no_default", "high", AE, "t")]),
    ("ALTER TABLE t ADD COLUMN a int CHECK (a > 0)", [("constraint_validated", "high", AE, "t")]),
    ("ALTER TABLE t ADD COLUMN a int UNIQUE", [("index_not_concurrent", "high", AE, "t")]),
    ("ALTER TABLE t ADD COLUMN a int REFERENCES p (id)",
     [("blocks_writes", "low", SRE, "p"), (*BRIEF, "t")]),
    # ALTER COLUMN
    ("ALTER TABLE t ALTER COLUMN a TYPE bigint", [("rewrite", "high", AE, "t")]),
    ("ALTER TABLE t ALTER a SET DATA TYPE varchar(20)", [("rewrite", "high", AE, "t")]),
    ("ALTER TABLE t ALTER COLUMN a SET NOT NULL", [("not_null_scan", "high", AE, "t")]),
    ("ALTER TABLE t ALTER COLUMN a DROP NOT NULL", [(*BRIEF, "t")]),
    ("ALTER TABLE t ALTER COLUMN a SET DEFAULT 5", [(*BRIEF, "t")]),
    ("ALTER TABLE t ALTER COLUMN a SET STATISTICS 500", []),
    # constraints
    ("ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0)", [("constraint_validated", "high", AE, "t")]),
    ("ALTER TABLE t ADD CHECK (a > 0) NOT VALID", [(*BRIEF, "t")]),
    ("ALTER TABLE t ADD CONSTRAINT f FOREIGN KEY (a) REFERENCES p (id)",
     [("constraint_validated", "medium", SRE, "t"), ("constraint_validated", "medium", SRE, "p")]),
    ("ALTER TABLE t ADD FOREIGN KEY (a) REFERENCES s.p NOT VALID",
     [("blocks_writes", "low", SRE, "t"), ("blocks_writes", "low", SRE, "s.p")]),
    ("ALTER TABLE t VALIDATE CONSTRAINT c", []),
    ("ALTER TABLE t ADD PRIMARY KEY (id)", [("index_not_concurrent", "high", AE, "t")]),
    ("ALTER TABLE t ADD CONSTRAINT u UNIQUE (a, b)", [("index_not_concurrent", "high", AE, "t")]),
    ("ALTER TABLE t ADD CONSTRAINT t_pk PRIMARY KEY USING INDEX t_idx", [("not_null_scan", "high", AE, "t")]),
    ("ALTER TABLE t ADD CONSTRAINT t_u UNIQUE USING INDEX t_idx", [(*BRIEF, "t")]),
    ("ALTER TABLE t DROP CONSTRAINT c", [(*BRIEF, "t")]),
    # brief ones, and several subcommands
    ("ALTER TABLE IF EXISTS ONLY \"Odd\" DROP COLUMN a", [(*BRIEF, "Odd")]),
    ("ALTER TABLE t RENAME COLUMN a TO b", [(*BRIEF, "t")]),
    ("ALTER TABLE t RENAME TO u", [(*BRIEF, "t")]),
    ("ALTER TABLE t ADD COLUMN a int, ADD COLUMN b int", [(*BRIEF, "t")]),
    ("ALTER TABLE t ADD COLUMN a int, ALTER COLUMN b TYPE bigint", [("rewrite", "high", AE, "t")]),
    ("ALTER TABLE t DISABLE TRIGGER ALL", [("blocks_writes", "low", SRE, "t")]),
    ("ALTER TABLE t SET (fillfactor = 70)", []),
    ("ALTER TABLE t SET UNLOGGED", [("rewrite", "high", AE, "t")]),
    ("ALTER TABLE t SET TABLESPACE fast", [("rewrite", "high", AE, "t")]),
    ("ALTER TABLE pt ATTACH PARTITION pt1 FOR VALUES FROM (0) TO (10)",
     [("constraint_validated", "high", AE, "pt1")]),
    ("ALTER TABLE pt DETACH PARTITION pt1 CONCURRENTLY", []),
    ("ALTER TABLE pt DETACH PARTITION pt1", [(*BRIEF, "pt"), (*BRIEF, "pt1")]),
    # indexes
    ("CREATE INDEX ON t (a)", [("index_not_concurrent", "medium", "SHARE", "t")]),
    ("CREATE UNIQUE INDEX IF NOT EXISTS t_a ON ONLY public.t USING btree (a)",
     [("index_not_concurrent", "medium", "SHARE", "public.t")]),
    ("CREATE INDEX CONCURRENTLY t_a ON t (a)", []),
    ("DROP INDEX t_a", [(*BRIEF, None)]),
    ("DROP INDEX CONCURRENTLY t_a", []),
    ("REINDEX TABLE t", [("index_not_concurrent", "high", "SHARE", "t")]),
    ("REINDEX (VERBOSE) INDEX t_a", [("index_not_concurrent", "high", "SHARE", None)]),
    ("REINDEX TABLE CONCURRENTLY t", []),
    ("REINDEX (CONCURRENTLY) INDEX t_a", []),
    # tables
    ("CREATE TABLE n (id int PRIMARY KEY, p_id int REFERENCES p (id))", [("blocks_writes", "low", SRE, "p")]),
    ("CREATE TABLE n (id int)", []),
    ("CREATE TABLE pt2 PARTITION OF pt FOR VALUES FROM (10) TO (20)", [(*BRIEF, "pt")]),
    ("CREATE TRIGGER audit AFTER UPDATE ON t FOR EACH ROW EXECUTE FUNCTION f()",
     [("blocks_writes", "low", SRE, "t")]),
    ("DROP TABLE IF EXISTS a, b CASCADE", [(*BRIEF, "a"), (*BRIEF, "b")]),
    ("TRUNCATE t", [(*BRIEF, "t")]),
    # maintenance
    ("VACUUM FULL t", [("rewrite", "high", AE, "t")]),
    ("VACUUM (FULL, ANALYZE) t", [("rewrite", "high", AE, "t")]),
    ("VACUUM (FULL false) t", []),
    ("VACUUM ANALYZE t", []),
    ("CLUSTER t USING t_pkey", [("rewrite", "high", AE, "t")]),
    ("LOCK TABLE t", [("access_exclusive", "high", AE, "t")]),
    ("LOCK TABLE t, u IN SHARE MODE NOWAIT", [("blocks_writes", "medium", "SHARE", "t"),
                                               ("blocks_writes", "medium", "SHARE", "u")]),
    ("LOCK t IN ROW EXCLUSIVE MODE", []),
    # nothing to say
    ("UPDATE t SET a = 1", []),
    ("SELECT 1", []),
    ("COMMENT ON TABLE t IS 'ALTER TABLE t DROP COLUMN a'", []),
])
def test_each_rule_rates_its_statement(sql, expected):
    assert summary(sql) == expected


def test_a_table_the_same_text_creates_carries_no_risk():
    sql = ("CREATE TABLE n (id int, p_id int REFERENCES p (id));\n"
           "CREATE INDEX ON n (p_id);\n"
           "ALTER TABLE n ADD COLUMN z int NOT NULL;\n"
           "CREATE INDEX ON t (a);")
    assert summary(sql) == [("blocks_writes", "low", SRE, "p"),
                            ("index_not_concurrent", "medium", "SHARE", "t")]


def test_words_in_strings_comments_and_bodies_are_not_statements():
    sql = ("-- ALTER TABLE t ALTER COLUMN a TYPE bigint;\n"
           "/* VACUUM FULL t; */\n"
           "SELECT 'CREATE INDEX ON t (a);';\n"
           "DO $$ BEGIN EXECUTE 'LOCK t'; END $$;\n")
    assert summary(sql) == []


def test_any_text_gets_an_answer_even_cut_short():
    """The preview reads plans as they are being written: every prefix of one is answered."""
    plan = ("ALTER TABLE IF EXISTS ONLY s.\"T\" * ADD COLUMN IF NOT EXISTS a int DEFAULT f(1, (2)) NOT NULL "
            "CHECK (a > 0) REFERENCES p (id), ALTER COLUMN b SET DATA TYPE numeric(10, 2) USING b::numeric, "
            "ADD CONSTRAINT c FOREIGN KEY (a) REFERENCES p NOT VALID, DETACH PARTITION x; "
            "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS i ON ONLY t (a); REINDEX (VERBOSE) TABLE t; "
            "VACUUM (FULL true, ANALYZE) t (a); LOCK TABLE ONLY t, u IN SHARE ROW EXCLUSIVE MODE NOWAIT; "
            "CLUSTER (VERBOSE) t USING i; DROP TABLE a, b; TRUNCATE ONLY t RESTART IDENTITY;")
    for end in range(len(plan) + 1):
        assert isinstance(lock_risks(plan[:end]), list)
    assert {risk.kind for risk in lock_risks(plan)} >= {
        "rewrite", "constraint_validated", "index_not_concurrent", "blocks_writes", "access_exclusive"}


def test_what_only_the_server_knows_is_said_as_may():
    may = [lock_risks(sql)[0].message for sql in (
        "ALTER TABLE t ALTER COLUMN a TYPE text",
        "ALTER TABLE t ADD COLUMN a int DEFAULT my_function()",
        "ALTER TABLE t ADD CONSTRAINT t_pk PRIMARY KEY USING INDEX t_idx")]
    assert all(" may " in message for message in may), may
    assert " may " not in lock_risks("ALTER TABLE t ALTER COLUMN a TYPE bigint")[0].message
    assert " may " not in lock_risks("ALTER TABLE t ALTER COLUMN a TYPE text USING a::text")[0].message
    set_not_null = lock_risks("ALTER TABLE t ALTER COLUMN a SET NOT NULL")[0].message
    assert "unless a valid CHECK (column IS NOT NULL)" in set_not_null and "only the server knows" in set_not_null


@pytest.mark.parametrize("sql, fix", [
    ("CREATE INDEX ON t (a)", "CREATE INDEX CONCURRENTLY in a phase declared `-- phase: TITLE (no transaction)`"),
    ("ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0)", "ADD CONSTRAINT ... NOT VALID, then VALIDATE CONSTRAINT in a later phase"),
    ("ALTER TABLE t ADD FOREIGN KEY (a) REFERENCES p", "ADD CONSTRAINT ... NOT VALID, then VALIDATE CONSTRAINT in a later phase"),
    ("ALTER TABLE t ADD PRIMARY KEY (a)", "CREATE UNIQUE INDEX CONCURRENTLY in a phase declared `-- phase: TITLE (no transaction)`, "
                                          "then ADD CONSTRAINT ... PRIMARY KEY USING INDEX"),
    ("REINDEX TABLE t", "REINDEX TABLE CONCURRENTLY in a phase declared"),
    ("ALTER TABLE t ALTER COLUMN a SET NOT NULL", "CHECK (column IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT"),
])
def test_the_fix_names_the_safer_way(sql, fix):
    assert fix in lock_risks(sql)[0].fix


def test_every_risk_speaks_in_one_sentence():
    sql = ("ALTER TABLE t ADD COLUMN a serial; ALTER TABLE t ALTER COLUMN a SET NOT NULL; "
           "CREATE INDEX ON t (a); DROP TABLE u; LOCK t IN EXCLUSIVE MODE; REINDEX INDEX i;")
    for risk in lock_risks(sql):
        assert risk.message.endswith(".") and risk.message.count(". ") == 0, risk.message
        assert risk.level in ("high", "medium", "low") and risk.lock in MODES


# --------------------------------------------------------------------------- the real server

# t: a table with a row, an index and a column of each kind the rules look at; p: a table t
# may reference; f(): a trigger function; volatile_one()/immutable_one(): defaults (in
# PL/pgSQL: PostgreSQL inlines a SQL function's body and judges the result's volatility, so
# a VOLATILE SQL function returning a constant would not rewrite).
SETUP = """
CREATE TABLE p (id int PRIMARY KEY);
INSERT INTO p VALUES (1);
CREATE TABLE t (id int PRIMARY KEY, a int, v varchar(10), n numeric(5, 2), p_id int NOT NULL);
INSERT INTO t VALUES (1, 1, 'x', 1.5, 1);
CREATE INDEX t_a ON t (a);
CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE FUNCTION volatile_one() RETURNS int LANGUAGE plpgsql VOLATILE AS 'BEGIN RETURN 1; END';
CREATE FUNCTION immutable_one() RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT 1';
CREATE TABLE pt (id int) PARTITION BY RANGE (id);
CREATE TABLE pt1 (id int);
INSERT INTO pt1 VALUES (1);
"""


@dataclass
class Case:
    statement: str
    extra_setup: str = ""
    tables: tuple[str, ...] = ("t",)  # the first one stands for a risk that names no table
    # TRUNCATE swaps in an empty file: a new relfilenode, and index builds that scan the empty
    # file, but no copy and no scan of the rows
    checks_files: bool = True
    reads_rows: bool = True  # SET TABLESPACE copies blocks, which counts no scan

    def __str__(self):
        return self.statement


# Statements a transaction can hold: the lock is read while the transaction is still open.
IN_TRANSACTION = [
    Case("ALTER TABLE t ADD COLUMN b int"),
    Case("ALTER TABLE t ADD COLUMN b int DEFAULT 0 NOT NULL"),
    Case("ALTER TABLE t ADD COLUMN b timestamptz DEFAULT now()"),
    Case("ALTER TABLE t ADD COLUMN b numeric DEFAULT '1.5'::numeric(10, 2)"),
    Case("ALTER TABLE t ADD COLUMN b float8 DEFAULT random()"),
    Case("ALTER TABLE t ADD COLUMN b uuid DEFAULT gen_random_uuid()"),
    Case("ALTER TABLE t ADD COLUMN b timestamptz DEFAULT clock_timestamp()"),
    Case("ALTER TABLE t ADD COLUMN b int DEFAULT volatile_one()"),
    Case("ALTER TABLE t ADD COLUMN b int DEFAULT immutable_one()"),
    Case("ALTER TABLE t ADD COLUMN b serial"),
    Case("ALTER TABLE t ADD COLUMN b int GENERATED ALWAYS AS IDENTITY"),
    Case("ALTER TABLE t ADD COLUMN b int GENERATED ALWAYS AS (a * 2) STORED"),
    Case("ALTER TABLE t ADD COLUMN b int CHECK (b > 0)"),
    Case("ALTER TABLE t ADD COLUMN b int UNIQUE"),
    Case("ALTER TABLE t ADD COLUMN b int REFERENCES p (id)", tables=("t", "p")),
    Case("ALTER TABLE e ADD COLUMN b int NOT NULL", "CREATE TABLE e (id int)", tables=("e",)),
    Case("ALTER TABLE t ALTER COLUMN a TYPE bigint"),
    Case("ALTER TABLE t ALTER COLUMN a TYPE bigint USING a + 1"),
    Case("ALTER TABLE t ALTER COLUMN a TYPE text"),
    Case("ALTER TABLE t ALTER COLUMN v TYPE varchar(20)"),
    Case("ALTER TABLE t ALTER COLUMN v TYPE text"),
    Case("ALTER TABLE t ALTER COLUMN v TYPE varchar(5)"),
    Case("ALTER TABLE t ALTER COLUMN n TYPE numeric(10, 2)"),
    Case("ALTER TABLE t ALTER COLUMN a SET NOT NULL"),
    Case("ALTER TABLE t ALTER COLUMN p_id DROP NOT NULL"),
    Case("ALTER TABLE t ALTER COLUMN a SET DEFAULT 5"),
    Case("ALTER TABLE t ALTER COLUMN a SET STATISTICS 500"),
    Case("ALTER TABLE t ADD CONSTRAINT positive CHECK (a > 0)"),
    Case("ALTER TABLE t ADD CONSTRAINT positive CHECK (a > 0) NOT VALID"),
    Case("ALTER TABLE t ADD CONSTRAINT t_p FOREIGN KEY (p_id) REFERENCES p (id)", tables=("t", "p")),
    Case("ALTER TABLE t ADD CONSTRAINT t_p FOREIGN KEY (p_id) REFERENCES p (id) NOT VALID", tables=("t", "p")),
    Case("ALTER TABLE t VALIDATE CONSTRAINT t_p",
         "ALTER TABLE t ADD CONSTRAINT t_p FOREIGN KEY (p_id) REFERENCES p (id) NOT VALID", tables=("t", "p")),
    Case("ALTER TABLE t VALIDATE CONSTRAINT positive", "ALTER TABLE t ADD CONSTRAINT positive CHECK (a > 0) NOT VALID"),
    Case("ALTER TABLE w ADD PRIMARY KEY (id)", "CREATE TABLE w (id int); INSERT INTO w VALUES (1)", tables=("w",)),
    Case("ALTER TABLE t ADD CONSTRAINT t_v UNIQUE (v)"),
    Case("ALTER TABLE w ADD CONSTRAINT w_pk PRIMARY KEY USING INDEX w_id",
         "CREATE TABLE w (id int); INSERT INTO w VALUES (1); CREATE UNIQUE INDEX w_id ON w (id)", tables=("w",)),
    Case("ALTER TABLE w ADD CONSTRAINT w_pk PRIMARY KEY USING INDEX w_id",
         "CREATE TABLE w (id int NOT NULL); INSERT INTO w VALUES (1); CREATE UNIQUE INDEX w_id ON w (id)", tables=("w",)),
    Case("ALTER TABLE t ADD CONSTRAINT t_v UNIQUE USING INDEX t_v", "CREATE UNIQUE INDEX t_v ON t (v)"),
    Case("ALTER TABLE t DROP CONSTRAINT positive", "ALTER TABLE t ADD CONSTRAINT positive CHECK (a > 0)"),
    Case("ALTER TABLE t DROP COLUMN a"),
    Case("ALTER TABLE t RENAME COLUMN a TO b"),
    Case("ALTER TABLE t RENAME TO renamed"),
    Case("ALTER TABLE t ENABLE TRIGGER ALL"),
    Case("ALTER TABLE t SET (fillfactor = 70)"),
    Case("ALTER TABLE t SET UNLOGGED"),
    Case("ALTER TABLE pt ATTACH PARTITION pt1 FOR VALUES FROM (0) TO (10)", tables=("pt1", "pt")),
    Case("ALTER TABLE pt DETACH PARTITION pt1", "ALTER TABLE pt ATTACH PARTITION pt1 FOR VALUES FROM (0) TO (10)",
         tables=("pt", "pt1")),
    Case("CREATE TABLE pt2 PARTITION OF pt FOR VALUES FROM (10) TO (20)", tables=("pt",)),
    Case("CREATE INDEX ON t (v)"),
    Case("CREATE UNIQUE INDEX t_v ON t (v)"),
    Case("DROP INDEX t_a"),
    Case("REINDEX TABLE t"),
    Case("REINDEX INDEX t_a"),
    Case("CLUSTER t USING t_pkey"),
    Case("CREATE TABLE n (id int PRIMARY KEY, p_id int REFERENCES p (id))", tables=("p",)),
    Case("CREATE TRIGGER audit BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()"),
    Case("DROP TABLE t"),
    Case("TRUNCATE t", checks_files=False),
    Case("LOCK TABLE t"),
    Case("LOCK TABLE t IN SHARE MODE"),
    Case("LOCK TABLE t IN ROW EXCLUSIVE MODE"),
]

# Statements PostgreSQL refuses in a transaction block: the lock is read while the statement
# waits for it behind a SHARE UPDATE EXCLUSIVE lock another transaction holds.
OUTSIDE_TRANSACTIONS = [
    Case("VACUUM FULL t"),
    Case("VACUUM t"),
    Case("CREATE INDEX CONCURRENTLY t_v ON t (v)"),
    Case("REINDEX TABLE CONCURRENTLY t"),
    Case("DROP INDEX CONCURRENTLY t_a"),
]


@dataclass
class Observed:
    locks: dict[str, str]  # table -> the strongest lock the statement took on it
    rewritten: dict[str, bool]
    scanned: dict[str, bool]  # only for statements a transaction holds
    reads_waited: dict[str, bool]


def lock_name(mode: str) -> str:
    """pg_locks' AccessExclusiveLock as the documentation names it: ACCESS EXCLUSIVE."""
    return re.sub(r"(?<!^)([A-Z])", r" \1", mode.removesuffix("Lock")).upper()


def strongest(modes) -> str | None:
    return max(modes, key=MODES.index, default=None)


def prepare(admin, case: Case) -> dict[str, int]:
    admin.execute(SETUP)
    if case.extra_setup:
        admin.execute(case.extra_setup)
    return {table: admin.execute("SELECT %s::regclass::oid", [table]).fetchone()[0] for table in case.tables}


def relfilenodes(admin, oids: dict[str, int]) -> dict[str, int | None]:
    found = {}
    for table, oid in oids.items():
        row = admin.execute("SELECT relfilenode FROM pg_class WHERE oid = %s", [oid]).fetchone()
        found[table] = row[0] if row else None
    return found


def locks_of(admin, pid: int, oids: dict[str, int], *, granted: bool) -> dict[str, str | None]:
    rows = admin.execute("SELECT relation, mode FROM pg_locks WHERE pid = %s AND granted = %s",
                         [pid, granted]).fetchall()
    return {table: strongest([lock_name(mode) for relation, mode in rows if relation == oid])
            for table, oid in oids.items()}


def read_waits(url: str, table: str) -> bool:
    """Does a query on `table` (planned, so its indexes are locked too) wait for a lock?"""
    with psycopg.connect(url, autocommit=True) as reader:
        reader.execute("SET lock_timeout = '100ms'")
        try:
            reader.execute(f'SELECT * FROM "{table}"').fetchall()
        except (pg_errors.LockNotAvailable, pg_errors.UndefinedTable):
            return True
    return False


def observe_in_transaction(url: str, case: Case) -> Observed:
    with psycopg.connect(url, autocommit=True) as admin:
        oids = prepare(admin, case)
        before = relfilenodes(admin, oids)
        with psycopg.connect(url) as runner:
            runner.execute(case.statement)
            scans = dict(runner.execute(
                "SELECT relid, seq_scan + coalesce(idx_scan, 0) FROM pg_stat_xact_user_tables").fetchall())
            locks = locks_of(admin, runner.info.backend_pid, oids, granted=True)
            waited = {table: read_waits(url, table) for table in case.tables}
            runner.commit()
        after = relfilenodes(admin, oids)
    return Observed(locks, {table: before[table] != after[table] and after[table] is not None for table in oids},
                    {table: scans.get(oid, 0) > 0 for table, oid in oids.items()}, waited)


def observe_waiting(url: str, case: Case) -> Observed:
    with psycopg.connect(url, autocommit=True) as admin:
        oids = prepare(admin, case)
        before = relfilenodes(admin, oids)
        table = case.tables[0]
        with psycopg.connect(url) as blocker, psycopg.connect(url, autocommit=True) as runner:
            blocker.execute(f"LOCK TABLE {table} IN SHARE UPDATE EXCLUSIVE MODE")
            failures = []
            worker = threading.Thread(target=lambda: _run(runner, case.statement, failures))
            worker.start()
            waiting = {table: None}
            deadline = time.monotonic() + 10
            while waiting[table] is None and time.monotonic() < deadline:
                waiting = locks_of(admin, runner.info.backend_pid, oids, granted=False)
                time.sleep(0.02)
            blocker.rollback()
            worker.join(timeout=30)
        assert not failures, failures
        after = relfilenodes(admin, oids)
    return Observed(waiting, {name: before[name] != after[name] for name in oids}, {}, {})


def _run(connection, statement: str, failures: list) -> None:
    try:
        connection.execute(statement)
    except Exception as exc:  # reported by the test, on its own thread
        failures.append(exc)


def claims(case: Case) -> dict[str, list[LockRisk]]:
    risks = lock_risks(case.statement)
    by_table = {table: [] for table in case.tables}
    for risk in risks:
        by_table[risk.table if risk.table in by_table else case.tables[0]].append(risk)
    return by_table


def may(risk: LockRisk) -> bool:
    return " may " in risk.message


SCANNING = ("rewrite", "not_null_scan", "constraint_validated", "index_not_concurrent")


def check(case: Case, seen: Observed) -> None:
    for table, risks in claims(case).items():
        claimed = strongest(risk.lock for risk in risks)
        if claimed is None:
            assert MODES.index(seen.locks[table] or "ACCESS SHARE") <= MODES.index(SUE), (
                f"{table}: no risk claimed, but the server took {seen.locks[table]}")
        else:
            assert seen.locks[table] == claimed, f"{table}: claimed {claimed}, the server took {seen.locks[table]}"
        rewrites = [risk for risk in risks if risk.kind == "rewrite"]
        if case.checks_files and not any(map(may, rewrites)):
            assert seen.rewritten[table] == bool(rewrites), f"{table}: rewrite claimed: {bool(rewrites)}"
        if case.checks_files and case.reads_rows and seen.scanned and claimed in (AE, "SHARE", SRE) and not any(map(may, risks)):
            scan_claimed = any(risk.kind in SCANNING for risk in risks)
            if scan_claimed or all(risk.level == "low" for risk in risks):
                assert seen.scanned[table] == scan_claimed, f"{table}: scan claimed: {scan_claimed}"
        if seen.reads_waited:
            reads_claimed = any(risk.level == "high" or risk.lock == AE for risk in risks)
            assert seen.reads_waited[table] == reads_claimed, f"{table}: reads wait claimed: {reads_claimed}"


@pytest.mark.parametrize("case", IN_TRANSACTION, ids=str)
def test_the_server_takes_the_lock_and_rewrites_as_claimed(pg_url, case):
    check(case, observe_in_transaction(pg_url, case))


@pytest.mark.parametrize("case", OUTSIDE_TRANSACTIONS, ids=str)
def test_statements_outside_transactions_ask_for_the_lock_claimed(pg_url, case):
    check(case, observe_waiting(pg_url, case))


@pytest.mark.parametrize("statement", ["DROP TABLE t", "ALTER TABLE t DROP CONSTRAINT t_p",
                                       "ALTER TABLE t DROP COLUMN p_id"])
def test_dropping_a_foreign_key_locks_the_table_it_references_too(pg_url, statement):
    """What the messages add: the referenced table's lock, which the text alone cannot name."""
    assert "reference" in lock_risks(statement)[0].message
    with_key = Case(statement, "ALTER TABLE t ADD CONSTRAINT t_p FOREIGN KEY (p_id) REFERENCES p (id)",
                    tables=("t", "p"))
    assert observe_in_transaction(pg_url, with_key).locks == {"t": AE, "p": AE}


def test_set_tablespace_copies_the_table_under_the_lock_claimed(pg_server, pg_url, pg_database):
    space = f"space_{pg_database}"
    folder = pg_server.folder / space
    folder.mkdir()
    if os.geteuid() == 0:
        shutil.chown(folder, CLUSTER_USER)
    pg_server.psql(f"CREATE TABLESPACE {space} LOCATION '{folder}'")
    try:
        case = Case(f"ALTER TABLE t SET TABLESPACE {space}", reads_rows=False)
        check(case, observe_in_transaction(pg_url, case))
    finally:
        pg_server.psql("DROP SCHEMA public CASCADE", database=pg_database)
        pg_server.psql(f"DROP TABLESPACE {space}")


def test_the_maybes_go_both_ways_on_the_server(pg_url):
    """What the rules call "may rewrite" does on some columns and does not on others."""
    outcomes = {}
    for statement in ("ALTER TABLE t ALTER COLUMN a TYPE text", "ALTER TABLE t ALTER COLUMN v TYPE text",
                      "ALTER TABLE t ADD COLUMN b int DEFAULT volatile_one()",
                      "ALTER TABLE t ADD COLUMN b int DEFAULT immutable_one()"):
        outcomes[statement] = observe_in_transaction(pg_url, Case(statement)).rewritten["t"]
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    assert list(outcomes.values()) == [True, False, True, False]


def test_set_not_null_skips_its_scan_when_a_valid_check_proves_it(pg_url):
    proven = Case("ALTER TABLE t ALTER COLUMN a SET NOT NULL",
                  "ALTER TABLE t ADD CONSTRAINT a_set CHECK (a IS NOT NULL)")
    assert not observe_in_transaction(pg_url, proven).scanned["t"]


def test_a_not_null_column_without_a_default_fails_on_a_table_with_rows(pg_url):
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(SETUP)
        with pytest.raises(pg_errors.NotNullViolation):
            admin.execute("ALTER TABLE t ADD COLUMN b int NOT NULL")
