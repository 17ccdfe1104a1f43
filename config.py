"""Every setting of the dashboard, with its environment variable. One comment each."""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent


def _env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def _env_number(name: str, default):
    """The variable's text when it is set, else the default. Both are checked by
    check_numeric_settings when the app is created, so that a bad value stops start-up with one
    line naming the variable rather than a traceback while this module is imported."""
    return os.environ.get(name, default)


# Every numeric setting and what it accepts: (whole number?, lowest, highest, lowest excluded?, what).
NUMERIC_SETTINGS = {
    "CUTOVER_PORT": (True, 1, 65535, False, "a TCP port number"),
    "CUTOVER_THREADS": (True, 1, 10000, False, ""),
    "CUTOVER_BUSY_TIMEOUT": (False, 0, 3600, False, "a number of seconds"),
    "CUTOVER_DEEP_CHECK_SECONDS": (False, 0, 7 * 24 * 3600, False, "a number of seconds"),
    "CUTOVER_BACKUP_KEEP_DAYS": (True, 0, 36500, False, "a whole number of days"),
    "CUTOVER_MONITOR_POLL_SECONDS": (False, 0, 3600, True, "a number of seconds"),  # 0 would spin
    "CUTOVER_LOGIN_ATTEMPTS": (True, 1, 10000, False, ""),
    "CUTOVER_MAX_VIEWERS": (True, 1, 10000, False, ""),
    "CUTOVER_MAX_VIEWERS_PER_CLIENT": (True, 1, 10000, False, ""),
    "CUTOVER_REQUEST_HEAD_TIMEOUT": (False, 0, 3600, True, "a number of seconds"),
    "CUTOVER_REQUEST_BODY_TIMEOUT": (False, 0, 3600, True, "a number of seconds"),
    "CUTOVER_MAX_REQUEST_BYTES": (True, 1024, 1024 ** 3, False, "a whole number of bytes"),
}


def check_numeric_settings(settings: dict) -> None:
    """Replace each numeric setting by its number, or raise ConfigError (exit code 2) naming it:
    float() and int() would take nan, inf or 1e999, or end start-up in a traceback."""
    from app.core.errors import ConfigError
    from app.core.numbers import Accepted, number_from_text, shown

    for name, (whole, lowest, highest, excluded, what) in NUMERIC_SETTINGS.items():
        accepted = Accepted(lowest, highest, whole=whole, lowest_excluded=excluded, what=what)
        value = settings[name]
        number = number_from_text(value, accepted) if isinstance(value, str) else (
            None if accepted.problem(value) else value)
        if number is None:
            where = "the environment variable" if isinstance(value, str) else "the setting"
            raise ConfigError(f"{where} {name} must be {accepted.describe()}; it is {shown(value)}. "
                              f"Fix it{' or unset it' if isinstance(value, str) else ''}.")
        settings[name] = number


class Config:
    # Where the dashboard keeps its own state (never a target database): instance/ by default. A relative
    # path is taken from the directory Cutover is started in, once, so everything kept there stays together.
    INSTANCE_DIR = Path(os.environ.get("CUTOVER_INSTANCE_DIR", BASE_DIR / "instance")).absolute()
    # The dashboard's own database: operators, runs, log lines, sign-offs, audit.
    SQLALCHEMY_DATABASE_URI = os.environ.get("CUTOVER_STATE_DATABASE_URL", f"sqlite:///{INSTANCE_DIR / 'cutover.db'}")
    # Seconds the dashboard and its job workers wait for their own database while another process holds its lock.
    STATE_BUSY_TIMEOUT = 10.0
    # Path of cutover.toml; None means ./cutover.toml if present, else the demo workspace.
    CUTOVER_CONFIG = os.environ.get("CUTOVER_CONFIG")
    # Folder of the demo workspace created when nothing is configured.
    CUTOVER_DEMO_DIR = Path(os.environ.get("CUTOVER_DEMO_DIR", INSTANCE_DIR / "demo"))
    # Signs session cookies; None means a random key kept in instance/secret_key (mode 0600).
    SECRET_KEY = os.environ.get("CUTOVER_SECRET_KEY")
    # Bearer token accepted by the JSON API (Authorization: Bearer ...); unset disables tokens.
    CUTOVER_API_TOKEN = os.environ.get("CUTOVER_API_TOKEN")
    # Password for the first operator 'admin'; unset means a random one printed once.
    CUTOVER_ADMIN_PASSWORD = os.environ.get("CUTOVER_ADMIN_PASSWORD")
    # Interface and port that `python run.py` binds; loopback unless deliberately exposed.
    CUTOVER_HOST = os.environ.get("CUTOVER_HOST", "127.0.0.1")
    CUTOVER_PORT = _env_number("CUTOVER_PORT", 5000)
    # Threads of the WSGI server: each live log viewer holds one, so keep plenty.
    CUTOVER_THREADS = _env_number("CUTOVER_THREADS", 256)
    # Live log viewers served at once (each holds a thread); never more than CUTOVER_THREADS - 32.
    CUTOVER_MAX_VIEWERS = _env_number("CUTOVER_MAX_VIEWERS", 200)
    # Live log viewers one client address may hold at once.
    CUTOVER_MAX_VIEWERS_PER_CLIENT = _env_number("CUTOVER_MAX_VIEWERS_PER_CLIENT", 50)
    # Seconds a client has to send a request's line and headers, from its first byte on.
    CUTOVER_REQUEST_HEAD_TIMEOUT = _env_number("CUTOVER_REQUEST_HEAD_TIMEOUT", 10)
    # Seconds a client has to send a request's body, once its headers arrived.
    CUTOVER_REQUEST_BODY_TIMEOUT = _env_number("CUTOVER_REQUEST_BODY_TIMEOUT", 30)
    # Largest request body accepted, in bytes (a larger one is answered 413 before it is read);
    # create_app makes it Flask's MAX_CONTENT_LENGTH and MAX_FORM_MEMORY_SIZE once it is checked.
    CUTOVER_MAX_REQUEST_BYTES = _env_number("CUTOVER_MAX_REQUEST_BYTES", 1024 * 1024)
    # Host headers accepted (DNS-rebinding defence); add your hostname when exposing the dashboard.
    TRUSTED_HOSTS = _env_list("CUTOVER_TRUSTED_HOSTS", "127.0.0.1,localhost,[::1]")
    # Seconds an inspection waits for a writer's lock before reporting the database as locked.
    CUTOVER_BUSY_TIMEOUT = _env_number("CUTOVER_BUSY_TIMEOUT", 1.0)
    # Seconds a quick_check/foreign_key_check result is reused for a file that keeps changing
    # (these checks read the whole file and, in rollback-journal mode, stall the app's writers).
    CUTOVER_DEEP_CHECK_SECONDS = _env_number("CUTOVER_DEEP_CHECK_SECONDS", 300.0)
    # Days a backup is kept before pruning may remove it (never the newest verified one).
    CUTOVER_BACKUP_KEEP_DAYS = _env_number("CUTOVER_BACKUP_KEEP_DAYS", 30)
    # How often the monitoring scheduler looks for due ticks (the interval itself is in cutover.toml).
    CUTOVER_MONITOR_POLL_SECONDS = _env_number("CUTOVER_MONITOR_POLL_SECONDS", 5.0)
    # Failed logins allowed per user name and address within 15 minutes before throttling.
    CUTOVER_LOGIN_ATTEMPTS = _env_number("CUTOVER_LOGIN_ATTEMPTS", 5)
    # Session cookie: not readable by scripts, not sent on cross-site requests.
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    # Set CUTOVER_SECURE_COOKIES=1 behind TLS so the cookie never travels in clear.
    SESSION_COOKIE_SECURE = os.environ.get("CUTOVER_SECURE_COOKIES", "0") == "1"
    # Operators stay signed in through a long cutover, but not indefinitely.
    PERMANENT_SESSION_LIFETIME = 12 * 3600
    # CSRF is checked by our own hook so bearer-token API calls can skip it (they carry no cookie).
    WTF_CSRF_CHECK_DEFAULT = False
    # A token lives as long as the session: a cutover page stays open for hours.
    WTF_CSRF_TIME_LIMIT = None
    SQLALCHEMY_TRACK_MODIFICATIONS = False
    TESTING = False


class TestConfig(Config):
    TESTING = True
    SECRET_KEY = "test-secret-key"
    CUTOVER_ADMIN_PASSWORD = "admin-password"
    CUTOVER_API_TOKEN = "test-api-token"
    SQLALCHEMY_DATABASE_URI = "sqlite://"
    CUTOVER_BUSY_TIMEOUT = 0.2
