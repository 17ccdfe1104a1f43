"""The one write transaction; kept for callers outside the core (see engines/sqlite/transactions.py)."""
from app.core.engines.sqlite.transactions import (  # noqa: F401
    TargetConnection, immediate_transaction, open_for_writing, read_transaction, settle_hot_journal,
)
