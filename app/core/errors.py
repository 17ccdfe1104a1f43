"""The one error hierarchy. Every message names the object, the cause and the fix."""


def said_by(exc: BaseException) -> str:
    """The first line of what a driver or a program said (a PostgreSQL error carries a DETAIL and
    a HINT below it), or the exception's name when it said nothing: what a message quotes."""
    return (str(exc).strip() or type(exc).__name__).splitlines()[0]


class CutoverError(Exception):
    """Base class; `code` is a stable machine-readable name, `exit_code` the CLI's answer."""

    code = "error"
    exit_code = 1
    http_status = 400

    def __init__(self, message: str, **details):
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict:
        return {"error": self.code, "message": self.message, **self.details}


class ConfigError(CutoverError):
    """The configuration file cannot be used; start-up stops."""

    code = "config_error"
    exit_code = 2


class UsageError(CutoverError):
    """A command or request was given something it cannot take."""

    code = "usage_error"
    exit_code = 2


class NotFound(CutoverError):
    code = "not_found"
    http_status = 404


class TargetUnavailable(CutoverError):
    """A target database cannot be read; `reason` says why in one word."""

    code = "database_unavailable"
    http_status = 409

    def __init__(self, message: str, *, path: str, reason: str):
        super().__init__(message, path=path, reason=reason)
        self.path = path
        self.reason = reason


class BackupError(CutoverError):
    """A backup could not be made or did not verify; nothing that looks valid was left."""

    code = "backup_failed"
    http_status = 500


class RestoreRefused(CutoverError):
    """A restore was not started: nothing was changed. The message says what to fix."""

    code = "restore_refused"
    http_status = 409


class RestoreFailed(CutoverError):
    """A restore failed after it began changing the target; the safety copy is named."""

    code = "restore_failed"
    http_status = 500


class PlanError(CutoverError):
    """A migration plan cannot be used as written; nothing ran. Names file, line and statement."""

    code = "plan_error"
    exit_code = 2


class MigrationFailed(CutoverError):
    """A migration stopped and was rolled back: the target is exactly as it was.

    `result` (an ApplyResult) holds every statement's outcome and the failing one.
    """

    code = "migration_failed"
    http_status = 409

    def __init__(self, message: str, *, result=None, **details):
        super().__init__(message, **details)
        self.result = result

    def to_dict(self) -> dict:
        data = super().to_dict()
        if self.result is not None:
            data["result"] = self.result.to_dict()
        return data


class RehearsalMismatch(CutoverError):
    """A migration was refused: no passing rehearsal of this plan on this target's schema."""

    code = "rehearsal_required"
    exit_code = 2
    http_status = 409


class TargetChanged(CutoverError):
    """A mutation was refused: the target is no longer the file that was backed up and rehearsed."""

    code = "target_changed"
    http_status = 409


class Conflict(CutoverError):
    """Another operation holds the target: exactly one runs at a time."""

    code = "conflict"
    http_status = 409


class NotSupported(CutoverError):
    """Something Cutover does for one engine's targets that it does not yet do for this one's.

    Refused before anything touches the target: nothing was changed."""

    code = "not_supported"
    http_status = 409


def source_damaged(source: str, problem: str, investigate: str) -> BackupError:
    """A backup refused because its source failed the check at snapshot time."""
    return BackupError(
        f"The source database {source} failed its integrity check at snapshot time "
        f"({problem}). No backup was kept: a backup of a damaged database cannot be "
        f"trusted. {investigate}",
        source=str(source),
        reason="source_damaged",
    )


class MoveRefused(CutoverError):
    """A move (SQLite to PostgreSQL) was not started: nothing was written anywhere."""

    code = "move_refused"
    http_status = 409


class MoveFailed(CutoverError):
    """A move stopped after it began writing: its one transaction rolled back, the target is as it was."""

    code = "move_failed"
    http_status = 500


class QuarantineExists(MoveRefused):
    """The quarantine file named for a move already exists: it is never written into."""

    code = "quarantine_exists"


class AlembicError(CutoverError):
    """The application's Alembic project cannot be read or followed as asked; nothing ran."""

    code = "alembic_error"
    exit_code = 2
    http_status = 409
