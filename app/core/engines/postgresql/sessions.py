"""Who else is connected to a PostgreSQL target: the application, a psql shell, a cron job.

"The application is stopped" means no session on the database but Cutover's own, which set
application_name "cutover" (location.APPLICATION_NAME). A user without pg_read_all_stats still
sees that other users' sessions exist, but not their state or address: such a session is
reported with what can be seen, and the fix is named.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from app.core.engines.postgresql.location import APPLICATION_NAME
from app.core.processes import ProcessInfo

SESSION_COLUMNS = """
SELECT pid, coalesce(application_name, ''), coalesce(usename, ''),
       coalesce(host(client_addr), CASE WHEN client_port = -1 THEN 'local socket' END),
       state, coalesce(state_change, backend_start)
FROM pg_stat_activity
"""
_OTHER_SESSIONS = SESSION_COLUMNS + """
WHERE datname = current_database()
  AND pid <> pg_backend_pid()
  -- backend_type is hidden too from a user without pg_read_all_stats: count such a session
  -- as a client (refusing too often is safe; missing the application is not).
  AND (backend_type = 'client backend' OR (backend_type IS NULL AND usename IS NOT NULL))
  AND coalesce(application_name, '') NOT LIKE %(ours)s
ORDER BY backend_start, pid
"""
HIDDEN = "hidden: grant pg_read_all_stats to Cutover's user to see it"


@dataclass(frozen=True)
class Session:
    pid: int
    application_name: str
    user: str
    client_address: str | None
    state: str | None  # active, idle, idle in transaction ...; None when hidden from us
    since: str | None  # ISO 8601: when it entered that state

    def describe(self) -> str:
        name = self.application_name or "(no application_name)"
        if self.state is None:
            return f"{name} as {self.user or '?'} (pid {self.pid}; state and address {HIDDEN})"
        since = f" since {self.since}" if self.since else ""
        return (f"{name} as {self.user} from {self.client_address or 'an unknown address'}, "
                f"{self.state}{since} (pid {self.pid})")

    def to_dict(self) -> dict:
        return asdict(self)

    def as_process(self) -> ProcessInfo:
        """The engine-neutral form the checklist and the restore guard report."""
        return ProcessInfo(self.pid, self.application_name, f"connected: {self.describe()}")


def session_from_row(row) -> Session:
    pid, application, user, address, state, since = row
    return Session(pid, application, user, address, state, since.isoformat() if since else None)


def other_sessions(connection) -> list[Session]:
    """Every client session on this database that is not Cutover's own."""
    rows = connection.execute(_OTHER_SESSIONS, {"ours": APPLICATION_NAME + "%"}).fetchall()
    return [session_from_row(row) for row in rows]


def blocking_sessions(connection, pid: int) -> list[Session]:
    """The sessions `pid` waits for: holders of a lock it asked for and was not granted."""
    rows = connection.execute(
        SESSION_COLUMNS + " WHERE pid = ANY(pg_blocking_pids(%s)) ORDER BY pid", (pid,)).fetchall()
    return [session_from_row(row) for row in rows]
