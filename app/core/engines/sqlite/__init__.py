"""The SQLite engine: every sqlite3 call Cutover makes to a target lives in this folder."""
