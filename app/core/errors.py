"""The one error hierarchy. Every message names the object, the cause and the fix."""


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
