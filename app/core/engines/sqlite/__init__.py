"""The SQLite engine: every sqlite3 call Cutover makes to a target lives in this folder.

files.py (header checks, read-only open, consistent reads, error meanings), stamps.py
(has the file changed), transactions.py (the one write transaction, the read transaction),
introspection.py (schema and facts), integrity.py (quick_check, integrity_check, foreign
keys, time limits), guards.py (what an assertion or a smoke test may do), scratch.py (an
empty in-memory database to try DDL on), copies.py (a private snapshot to rehearse on, the
backup API copy), backup_copy.py (a backup's consistent snapshot), swap.py (putting a restored
file in place), building.py (a new file built from nothing, the demo's), dialect.py (where a
statement ends, what a plan may not run, whether an assertion's query compiles), engine.py
(SQLiteEngine, tying them together behind the Engine interface).
"""
from app.core.engines.sqlite.engine import SQLiteEngine  # noqa: F401  (registers "sqlite")
