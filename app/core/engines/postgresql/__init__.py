"""The PostgreSQL engine: every psycopg call Cutover makes to a target lives in this folder.

location.py (a password-free URL, its schemas and waits), connections.py (connecting as
Cutover, every refusal explained), sessions.py (who else is connected), transactions.py (the
migration transaction: timeouts, one migrator), catalog.py (schema and facts from the system
catalogs), compare.py (two catalogs' differences, classified), inspection.py (the snapshot
pages show), stamps.py (has it changed), scratch.py (private databases, always dropped),
dumps.py and tools.py (pg_dump / pg_restore, the matching client), swap.py (a restored
database takes the target's name), dialect.py (how its SQL is written), engine.py
(PostgresqlEngine behind the Engine interface).
"""
from app.core.engines.postgresql.engine import PostgresqlEngine  # noqa: F401  (registers "postgresql")
