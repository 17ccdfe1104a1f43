"""Read everything Cutover shows about a target: schema, facts, row counts, integrity.

How a target is read depends on its engine (engines/sqlite/introspection.py for SQLite).
"""
from app.core.engines.sqlite.introspection import inspect_database, read_schema  # noqa: F401
