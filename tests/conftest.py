"""Shared fixtures: real workspaces, real database files in tmp_path, a real app."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from app import create_app
from app.core.demo import create_demo_workspace
from config import TestConfig

ADMIN_PASSWORD = TestConfig.CUTOVER_ADMIN_PASSWORD


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory) -> Path:
    """The demo workspace built once; each test gets its own copy."""
    folder = tmp_path_factory.mktemp("demo-template") / "demo"
    create_demo_workspace(folder)
    return folder


@pytest.fixture
def demo_dir(tmp_path, demo_template) -> Path:
    folder = tmp_path / "demo"
    shutil.copytree(demo_template, folder)
    return folder


@pytest.fixture
def demo(demo_dir) -> Path:
    """The folder of a fresh demo workspace (the core tests' name for it)."""
    return demo_dir


@pytest.fixture
def demo_config(demo_dir) -> Path:
    return demo_dir / "cutover.toml"


def make_app(tmp_path: Path, config_path: Path, **overrides):
    instance = tmp_path / "instance"
    settings = {
        "CUTOVER_CONFIG": str(config_path),
        "INSTANCE_DIR": instance,
        "CUTOVER_DEMO_DIR": instance / "demo",
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'state.db'}",
        **overrides,
    }
    return create_app(TestConfig, settings)


@pytest.fixture
def app(tmp_path, demo_config):
    app = make_app(tmp_path, demo_config)
    yield app
    with app.app_context():
        from app.extensions import db

        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def csrf_token_from(html: str) -> str:
    marker = 'name="csrf-token" content="'
    start = html.index(marker) + len(marker)
    return html[start:html.index('"', start)]


def log_in(client, username: str = "admin", password: str = ADMIN_PASSWORD):
    page = client.get("/login")
    token = csrf_token_from(page.get_data(as_text=True))
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token})


@pytest.fixture
def logged_in(client):
    response = log_in(client)
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


@pytest.fixture
def api_headers():
    return {"Authorization": f"Bearer {TestConfig.CUTOVER_API_TOKEN}"}


# A real PostgreSQL server, started once per session when a test asks for it.
from tests.pgserver import pg_database, pg_server, pg_url  # noqa: E402,F401
