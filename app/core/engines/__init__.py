"""Database engines: everything that depends on the kind of database, one folder each.

`engine_for(location)` picks a target's engine once (see base.py); the SQLite engine is
engines/sqlite/. A new engine is a new folder with an Engine subclass naming itself.
"""
from app.core.engines.base import Dialect, Engine, engine_for  # noqa: F401
