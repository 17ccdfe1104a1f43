"""Every setting of the dashboard, with its environment variable. One comment each."""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent


def _env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


class Config:
    # Where the dashboard keeps its own state (never a target database): instance/ by default.
    INSTANCE_DIR = Path(os.environ.get("CUTOVER_INSTANCE_DIR", BASE_DIR / "instance"))
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
    CUTOVER_PORT = int(os.environ.get("CUTOVER_PORT", "5000"))
    # Threads of the WSGI server: each live log viewer holds one, so keep plenty.
    CUTOVER_THREADS = int(os.environ.get("CUTOVER_THREADS", "256"))
    # Live log viewers served at once (each holds a thread); never more than CUTOVER_THREADS - 32.
    CUTOVER_MAX_VIEWERS = int(os.environ.get("CUTOVER_MAX_VIEWERS", "200"))
    # Live log viewers one client address may hold at once.
    CUTOVER_MAX_VIEWERS_PER_CLIENT = int(os.environ.get("CUTOVER_MAX_VIEWERS_PER_CLIENT", "50"))
    # Seconds a client has to send a request's line and headers, from its first byte on.
    CUTOVER_REQUEST_HEAD_TIMEOUT = float(os.environ.get("CUTOVER_REQUEST_HEAD_TIMEOUT", "10"))
    # Seconds a client has to send a request's body, once its headers arrived.
    CUTOVER_REQUEST_BODY_TIMEOUT = float(os.environ.get("CUTOVER_REQUEST_BODY_TIMEOUT", "30"))
    # Largest request body accepted, in bytes (a larger one is answered 413 before it is read).
    MAX_CONTENT_LENGTH = int(os.environ.get("CUTOVER_MAX_REQUEST_BYTES", str(1024 * 1024)))
    # Largest form accepted in memory: the same bound.
    MAX_FORM_MEMORY_SIZE = MAX_CONTENT_LENGTH
    # Host headers accepted (DNS-rebinding defence); add your hostname when exposing the dashboard.
    TRUSTED_HOSTS = _env_list("CUTOVER_TRUSTED_HOSTS", "127.0.0.1,localhost,[::1]")
    # Seconds an inspection waits for a writer's lock before reporting the database as locked.
    CUTOVER_BUSY_TIMEOUT = float(os.environ.get("CUTOVER_BUSY_TIMEOUT", "1.0"))
    # Seconds a quick_check/foreign_key_check result is reused for a file that keeps changing
    # (these checks read the whole file and, in rollback-journal mode, stall the app's writers).
    CUTOVER_DEEP_CHECK_SECONDS = float(os.environ.get("CUTOVER_DEEP_CHECK_SECONDS", "300"))
    # Days a backup is kept before pruning may remove it (never the newest verified one).
    CUTOVER_BACKUP_KEEP_DAYS = int(os.environ.get("CUTOVER_BACKUP_KEEP_DAYS", "30"))
    # How often the monitoring scheduler looks for due ticks (the interval itself is in cutover.toml).
    CUTOVER_MONITOR_POLL_SECONDS = float(os.environ.get("CUTOVER_MONITOR_POLL_SECONDS", "5"))
    # Failed logins allowed per user name and address within 15 minutes before throttling.
    CUTOVER_LOGIN_ATTEMPTS = int(os.environ.get("CUTOVER_LOGIN_ATTEMPTS", "5"))
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
