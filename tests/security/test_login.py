"""Attacks on the login: enumeration, guessing, session fixation and replay, open redirects.

tests/web/test_auth.py keeps the basic behaviour (the one message, throttling after
CUTOVER_LOGIN_ATTEMPTS failures, the cookie rotated at login and dead after logout, the
cookie flags); here each of those is pushed further."""
import re
import sys
import time

import pytest

from tests.conftest import ADMIN_PASSWORD, csrf_token_from, log_in, make_app

REQUIRED_NEXT = ["https://evil.example", "//evil.example", "/\\evil.example", "https:evil.example"]
EVIL_NEXT = REQUIRED_NEXT + [
    "http:/evil.example", "https:/\\evil.example", "\\\\evil.example", "///evil.example", "/\t/evil.example",
    " //evil.example", "/\\/evil.example", "javascript:alert(1)", "HTTPS://evil.example", "\r\n//evil.example",
]


def without_token(html: str) -> str:
    return re.sub(r'(name="csrf[-_]token" (?:content|value)=")[^"]*"', r'\1"', html)


def post_login(client, username: str, password: str, **extra):
    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token, **extra})


def without_typed_name(html: str, name: str) -> str:
    """The form shows the name typed back (whoever typed it): that part says nothing."""
    return html.replace(f'value="{name}"', 'value=""')


def test_unknown_user_and_wrong_password_answer_byte_for_byte_the_same(app):
    unknown = post_login(app.test_client(), "nobody", "wrong-password")
    wrong = post_login(app.test_client(), "admin", "wrong-password")
    assert unknown.status_code == wrong.status_code == 401
    assert (without_typed_name(without_token(unknown.get_data(as_text=True)), "nobody")
            == without_typed_name(without_token(wrong.get_data(as_text=True)), "admin"))
    assert unknown.headers.get("Set-Cookie") is not None and wrong.headers.get("Set-Cookie") is not None


def password_hashings(action) -> list[str]:
    """The key-derivation calls (scrypt, PBKDF2) made while `action` runs in this thread."""
    calls = []

    def profile(frame, event, arg):
        if event == "c_call" and getattr(arg, "__name__", "") in ("scrypt", "pbkdf2_hmac"):
            calls.append(arg.__name__)

    sys.setprofile(profile)
    try:
        action()
    finally:
        sys.setprofile(None)
    return calls


def test_an_unknown_name_costs_the_same_password_hashing_as_a_wrong_password(tmp_path, demo_config):
    """The time must not tell which names exist either. Without a hash computed for unknown
    names they answered some 40 times faster (2 ms against 100 ms); counting the hashings
    proves the same work is done, without timing anything on a shared machine."""
    app = make_app(tmp_path, demo_config, CUTOVER_LOGIN_ATTEMPTS=100)
    client = app.test_client()
    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    post_login(client, "warm-up", "wrong-password")

    def attempt(name):
        response = client.post("/login", data={"username": name, "password": "wrong-password", "csrf_token": token})
        assert response.status_code == 401

    known = password_hashings(lambda: attempt("admin"))
    unknown = password_hashings(lambda: attempt("nobody"))
    assert known and unknown == known


def test_throttling_tells_no_more_than_the_message_and_lets_nobody_in(app):
    """An unknown name is throttled exactly like a real one (no enumeration through the
    throttle), and the right password during the throttle opens nothing."""
    limit = app.config["CUTOVER_LOGIN_ATTEMPTS"]
    answers = {}
    for name in ("admin", "nobody"):
        client = app.test_client()
        for _ in range(limit):
            assert post_login(client, name, "wrong-password").status_code == 401
        throttled = post_login(client, name, ADMIN_PASSWORD)
        assert throttled.status_code == 429
        answers[name] = without_typed_name(without_token(throttled.get_data(as_text=True)), name)
        assert client.get("/jobs").status_code == 302  # not logged in
    assert answers["admin"] == answers["nobody"]
    # The throttle is per name and address: another name from the same address still works.
    other = app.test_client()
    from app.auth_setup import create_operator

    with app.app_context():
        create_operator("second", "second-password")
    assert post_login(other, "second", "second-password").status_code == 302


def test_a_cookie_planted_before_login_never_becomes_the_operators(app):
    """Session fixation: the cookie an attacker obtains (and plants) before the victim logs
    in is still anonymous afterwards."""
    victim = app.test_client()
    victim.get("/login")
    planted = victim.get_cookie("session").value
    assert log_in(victim).status_code == 302
    assert victim.get_cookie("session").value != planted
    attacker = app.test_client()
    attacker.set_cookie("session", planted)
    response = attacker.get("/jobs")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    assert attacker.get("/api/v1/runs").status_code == 401


def test_a_cookie_copied_before_logout_opens_nothing_afterwards(app):
    """Replay after logout, on pages, the API, a stream and a state change with the old token."""
    client = app.test_client()
    log_in(client)
    stolen = client.get_cookie("session").value
    token = csrf_token_from(client.get("/jobs").get_data(as_text=True))
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    thief = app.test_client()
    thief.set_cookie("session", stolen)
    assert thief.get("/jobs").status_code == 302
    assert thief.get("/api/v1/runs").status_code == 401
    assert thief.get("/api/v1/jobs/1/events", headers={"Accept": "text/event-stream"}).status_code == 401
    assert thief.post("/runs", data={"environment": "production", "csrf_token": token}).status_code == 302
    with app.app_context():
        from app.extensions import db
        from app.models import Run

        assert db.session.query(Run).count() == 0


def test_there_is_no_remember_me_and_no_session_outlives_its_lifetime(tmp_path, demo_config):
    """Cutover has no remember-me sessions: the login form offers none, the login sets no
    remember cookie and a session cookie without an expiry (gone with the browser), and a
    session cookie older than PERMANENT_SESSION_LIFETIME is refused even if it is replayed
    (here the lifetime is one second)."""
    app = make_app(tmp_path, demo_config, PERMANENT_SESSION_LIFETIME=1)
    client = app.test_client()
    form = client.get("/login").get_data(as_text=True)
    assert "remember" not in form.lower()
    assert set(re.findall(r'<input[^>]*name="([^"]+)"', form)) == {"csrf_token", "next", "username", "password"}
    response = post_login(client, "admin", ADMIN_PASSWORD, remember="1", remember_me="on")
    assert response.status_code == 302
    cookies = response.headers.getlist("Set-Cookie")
    assert [c.split("=", 1)[0] for c in cookies] == ["session"]
    assert "expires=" not in cookies[0].lower() and "max-age" not in cookies[0].lower()
    assert client.get("/jobs").status_code == 200
    time.sleep(2.1)
    response = client.get("/jobs")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


@pytest.fixture(scope="module")
def shared_app(tmp_path_factory, demo_template):
    import shutil

    root = tmp_path_factory.mktemp("login")
    shutil.copytree(demo_template, root / "demo")
    app = make_app(root, root / "demo" / "cutover.toml")
    yield app
    with app.app_context():
        from app.extensions import db

        db.engine.dispose()


@pytest.mark.parametrize("evil", REQUIRED_NEXT)
def test_next_at_login_never_leaves_the_site(shared_app, evil):
    response = post_login(shared_app.test_client(), "admin", ADMIN_PASSWORD, next=evil)
    assert response.status_code == 302 and response.headers["Location"] == "/", evil


@pytest.fixture(scope="module")
def shared_operator(shared_app):
    client = shared_app.test_client()
    assert log_in(client).status_code == 302
    return client


@pytest.mark.parametrize("evil", EVIL_NEXT)
def test_next_when_already_logged_in_never_leaves_the_site(shared_operator, evil):
    """GET /login?next= redirects a logged-in operator at once: the same rule applies."""
    response = shared_operator.get("/login", query_string={"next": evil})
    assert response.status_code == 302 and response.headers["Location"] == "/", evil


def test_next_to_a_page_of_this_site_is_kept(shared_app):
    response = post_login(shared_app.test_client(), "admin", ADMIN_PASSWORD, next="/runs/1?x=%2F%2Fevil.example")
    assert response.headers["Location"] == "/runs/1?x=%2F%2Fevil.example"
