"""Checks that read a whole database: integrity, foreign keys (more arrive with verification)."""
from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from app.core.database import classify_sqlite_error, open_readonly

INTEGRITY_MESSAGES = 100


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    summary: str
    evidence: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"name": self.name, "passed": self.passed, "summary": self.summary, "evidence": list(self.evidence)}


def integrity_check(path: Path, *, busy_timeout: float = 1.0) -> CheckResult:
    """The full `PRAGMA integrity_check` (quick_check skips index/content cross-checks)."""
    try:
        with closing(open_readonly(path, busy_timeout=busy_timeout)) as conn:
            rows = [row[0] for row in conn.execute(f"PRAGMA integrity_check({INTEGRITY_MESSAGES})")]
    except sqlite3.DatabaseError as exc:
        raise classify_sqlite_error(exc, str(path)) from None
    if rows == ["ok"]:
        return CheckResult("integrity_check", True, "integrity_check: ok")
    return CheckResult("integrity_check", False, f"integrity_check found {len(rows)} problem(s)", tuple(rows))
