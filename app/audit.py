"""Record what operators do, in a hash chain that shows any later edit or deletion."""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path

from flask import current_app

from sqlalchemy import select

from app.extensions import db
from app.models import AUDIT_CHAIN_LOCK, AuditEntry, take_transaction_lock, utcnow

GENESIS = "0" * 64


# Tab stays: it neither ends a line nor moves the cursor back, and command output uses it.
LINE_BREAKERS = {code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if code != 0x09}
LINE_BREAKERS.update({ord("\r"): "\\r", ord("\n"): "\\n", 0x2028: "\\u2028", 0x2029: "\\u2029"})


def single_line(text: str) -> str:
    """User-supplied text must never start a new log line (log forging), nor move a
    terminal's cursor: every control character and Unicode line separator is escaped."""
    return text.translate(LINE_BREAKERS)


def _entry_hash(previous_hash: str, entry: AuditEntry) -> str:
    payload = json.dumps(
        [previous_hash, entry.time.isoformat(), entry.actor, entry.action, entry.target, entry.result, entry.detail],
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


@contextmanager
def _chain_lock():
    """The server, job workers and the CLI all append: one at a time, or the chain would fork."""
    lock_path = Path(current_app.config["INSTANCE_DIR"]) / "audit.lock"
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def record(actor: str, action: str, target: str = "", result: str = "ok", detail: str = "") -> AuditEntry:
    """Append one entry and commit it: an audit row must survive a later rollback."""
    with _chain_lock():
        entry = _append(actor, action, target, result, detail)
        _write_head(entry)
        return entry


def _head_path() -> Path:
    return Path(current_app.config["INSTANCE_DIR"]) / "audit.head"


def _write_head(entry: AuditEntry) -> None:
    """The newest entry's id and hash, outside the table: a chain alone cannot show that its
    last entries were deleted, the head can."""
    path = _head_path()
    partial = path.with_name(path.name + ".partial")
    partial.write_text(f"{entry.id} {entry.entry_hash}\n")
    os.replace(partial, path)


def _read_head() -> tuple[int, str] | None:
    try:
        entry_id, entry_hash = _head_path().read_text().split()
        return int(entry_id), entry_hash
    except (OSError, ValueError):
        return None


def _append(actor: str, action: str, target: str, result: str, detail: str) -> AuditEntry:
    _lock_the_chain_in_the_database()
    last = db.session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1)).first()
    previous_hash = last.entry_hash if last else GENESIS
    entry = AuditEntry(
        time=utcnow(), actor=single_line(actor), action=action, target=single_line(target),
        result=result, detail=single_line(detail), previous_hash=previous_hash,
    )
    entry.entry_hash = _entry_hash(previous_hash, entry)
    db.session.add(entry)
    db.session.commit()
    return entry


def _lock_the_chain_in_the_database() -> None:
    """The file lock serves processes that share an instance folder; dashboards on several
    machines sharing a PostgreSQL state database share only the database, so there the
    chain is also locked in it, until this append commits (SQLite's file is shared anyway)."""
    connection = db.session.connection()
    if connection.dialect.name == "postgresql":
        take_transaction_lock(connection, AUDIT_CHAIN_LOCK)


def verify_chain() -> int | None:
    """Return the id of the first entry that breaks the chain (for entries deleted from the
    end, the id the head still names), or None when it is intact."""
    head = _read_head()
    previous_hash, head_found = GENESIS, head is None
    for entry in db.session.scalars(select(AuditEntry).order_by(AuditEntry.id)):
        if entry.previous_hash != previous_hash or _entry_hash(previous_hash, entry) != entry.entry_hash:
            return entry.id
        previous_hash = entry.entry_hash
        head_found = head_found or head == (entry.id, entry.entry_hash)
    # The head may lag one entry behind (a crash between commit and head write), never ahead.
    return None if head_found else head[0]
