"""The SQLite engine: every sqlite3 call Cutover makes to a target lives in this folder.

files.py (header checks, read-only open, consistent reads, error meanings), stamps.py
(has the file changed), transactions.py (the one write transaction, the read transaction),
introspection.py (schema and facts), integrity.py (quick_check, integrity_check, foreign
keys, time limits), copies.py (consistent copies), swap.py (putting a restored file in
place), dialect.py (where a statement ends), engine.py (SQLiteEngine, tying them together).
"""
from app.core.engines.sqlite.engine import SQLiteEngine  # noqa: F401  (registers "sqlite")
