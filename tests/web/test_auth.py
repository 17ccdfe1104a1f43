"""Login, logout, throttling, session handling, the first operator."""
import re

from sqlalchemy import select

from app import audit
from app.extensions import db
from app.models import AuditEntry, Operator
from tests.conftest import ADMIN_PASSWORD, csrf_token_from, log_in, make_app


def session_cookie(client):
    cookie = client.get_cookie("session")
    return cookie.value if cookie else None


def test_login_page_is_public(client):
    response = client.get("/login")
    assert response.status_code == 200
    assert "Log in" in response.get_data(as_text=True)


def test_login_and_reach_dashboard(client):
    response = log_in(client)
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert client.get("/").status_code == 200


def test_unknown_user_and_wrong_password_get_the_same_message(client):
    unknown = log_in(client, "nobody", "whatever-password")
    wrong = log_in(client, "admin", "wrong-password")
    assert unknown.status_code == wrong.status_code == 401
    message = "Unknown operator or wrong password."
    assert message in unknown.get_data(as_text=True)
    assert message in wrong.get_data(as_text=True)


def test_repeated_failures_are_throttled_even_with_the_right_password(app, client):
    for _ in range(app.config["CUTOVER_LOGIN_ATTEMPTS"]):
        assert log_in(client, "admin", "wrong-password").status_code == 401
    throttled = log_in(client, "admin", ADMIN_PASSWORD)
    assert throttled.status_code == 429
    assert "Too many failed attempts" in throttled.get_data(as_text=True)


def test_session_cookie_changes_at_login_and_dies_at_logout(app, client):
    client.get("/login")
    before = session_cookie(client)
    log_in(client)
    during = session_cookie(client)
    assert during and during != before
    token = csrf_token_from(client.get("/").get_data(as_text=True))
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    # Replaying the cookie captured while logged in must not work any more.
    replay = app.test_client()
    replay.set_cookie("session", during)
    response = replay.get("/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_next_to_a_local_page_is_followed(client):
    page = client.get("/login?next=/api/v1/environments")
    token = csrf_token_from(page.get_data(as_text=True))
    response = client.post("/login", data={"username": "admin", "password": ADMIN_PASSWORD,
                                           "csrf_token": token, "next": "/api/v1/environments"})
    assert response.headers["Location"] == "/api/v1/environments"


def test_login_and_failures_are_audited(app, client):
    log_in(client, "admin", "wrong-password")
    log_in(client, "evil\r\nFAKE ENTRY", "x")
    log_in(client)
    with app.app_context():
        rows = db.session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
        assert [(r.actor, r.action, r.result) for r in rows] == [
            ("admin", "login", "failed"),
            ("evil\\r\\nFAKE ENTRY", "login", "failed"),
            ("admin", "login", "ok"),
        ]
        assert audit.verify_chain() is None


def test_first_start_creates_admin_with_a_printed_random_password(tmp_path, demo_config, capfd):
    app = make_app(tmp_path, demo_config, CUTOVER_ADMIN_PASSWORD=None)
    printed = capfd.readouterr().err
    password = re.search(r"password: (\S+)", printed).group(1)
    client = app.test_client()
    assert log_in(client, "admin", password).status_code == 302
    # A second start with the same state database prints nothing new.
    make_app(tmp_path, demo_config, CUTOVER_ADMIN_PASSWORD=None)
    assert "password" not in capfd.readouterr().err
    with app.app_context():
        assert db.session.scalars(select(Operator.username)).all() == ["admin"]
        db.engine.dispose()


def test_concurrent_appends_from_several_processes_keep_one_chain(app, tmp_path):
    """Workers and the CLI append too; the chain must not fork."""
    import subprocess
    import sys

    script = (
        "import sys; from app import create_app; from app import audit\n"
        "app = create_app(overrides={'CUTOVER_IS_WORKER': True})\n"
        "with app.app_context():\n"
        "    [audit.record('p' + sys.argv[1], 'test', detail=str(i)) for i in range(15)]\n"
    )
    env = {**__import__("os").environ, "CUTOVER_STATE_DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
           "CUTOVER_INSTANCE_DIR": str(app.config["INSTANCE_DIR"]), "CUTOVER_CONFIG": app.config["CUTOVER_CONFIG"]}
    processes = [subprocess.Popen([sys.executable, "-c", script, str(n)], env=env) for n in range(4)]
    assert all(p.wait(timeout=120) == 0 for p in processes)
    with app.app_context():
        assert db.session.query(AuditEntry).filter_by(action="test").count() == 60
        assert audit.verify_chain() is None


def test_audit_chain_detects_deleted_entries_in_the_middle_and_at_the_end(app, client):
    log_in(client, "admin", "wrong-password")
    log_in(client, "nobody", "wrong-password")
    log_in(client)
    with app.app_context():
        entries = db.session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
        assert len(entries) >= 3 and audit.verify_chain() is None
        last_id = entries[-1].id
        db.session.delete(entries[-1])  # the end: the chain itself still looks whole
        db.session.commit()
        assert audit.verify_chain() == last_id
        db.session.delete(entries[1])
        db.session.commit()
        assert audit.verify_chain() == entries[2].id


def test_a_head_one_entry_behind_is_a_crash_not_a_deletion(app, client):
    log_in(client, "admin", "wrong-password")
    log_in(client)
    with app.app_context():
        entries = db.session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
        head = audit._head_path()
        head.write_text(f"{entries[-2].id} {entries[-2].entry_hash}\n")
        assert audit.verify_chain() is None


def test_a_failed_login_keeps_the_name_and_asks_for_the_password_again(client):
    response = log_in(client, "admin", "not-the-password")
    page = response.get_data(as_text=True)
    assert response.status_code == 401
    assert 'name="username" autocomplete="username" required value="admin"' in page
    assert 'autocomplete="current-password" required autofocus' in page


def test_a_typed_name_is_escaped_when_shown_again(client):
    page = log_in(client, '"><script>alert(1)</script>', "x").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page and "&#34;&gt;&lt;script&gt;" in page
