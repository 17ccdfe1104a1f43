"""Opening a target read-only; kept for callers outside the core (see engines/sqlite/files.py)."""
from app.core.engines.sqlite.files import (  # noqa: F401
    FileHeader, check_file, classify_sqlite_error, open_readonly,
    read_consistently, sqlite_error_reason, sqlite_uri,
)
