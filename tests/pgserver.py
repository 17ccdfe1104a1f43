"""A real PostgreSQL server for the suite: one throwaway cluster per test session (per xdist worker).

Debian's server binaries (`postgresql` package) are started on a free loopback port with
their socket in a private folder; every test gets a fresh database of its own. initdb refuses
to run as root, so as root the cluster runs as the unprivileged user `cutoverpg`, which
scripts/test.sh creates. `fsync=off` is for throwaway test data only.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from itertools import count
from pathlib import Path

import pytest

CLUSTER_USER = "cutoverpg"
_database_numbers = count(1)


def server_bindir() -> Path | None:
    """The newest installed server's bin folder (/usr/lib/postgresql/N/bin), or None."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda path: int(path.parent.parent.name))
    return found[-1].parent if found else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _as_cluster_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    if shutil.which("runuser") is None:
        raise RuntimeError("running the suite as root needs runuser (util-linux)")
    return ["runuser", "-u", CLUSTER_USER, "--", *command]


@dataclass
class PostgresServer:
    bindir: Path
    folder: Path
    port: int
    superuser: str = "postgres"

    def url(self, database: str = "postgres", user: str | None = None, password: str | None = None) -> str:
        credentials = user or self.superuser
        if password is not None:
            credentials += f":{password}"
        return f"postgresql://{credentials}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL as the superuser through psql; stop on the first error."""
        finished = subprocess.run(
            [str(self.bindir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At",
             "-d", self.url(database), "-c", sql],
            capture_output=True, text=True, timeout=120,
        )
        if finished.returncode != 0:
            raise RuntimeError(f"psql failed: {finished.stderr.strip()}")
        return finished.stdout

    def create_database(self, prefix: str = "test") -> str:
        name = f"{prefix}_{os.getpid()}_{next(_database_numbers)}"
        self.psql(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def databases(self) -> list[str]:
        return self.psql("SELECT datname FROM pg_database WHERE NOT datistemplate").split()

    def stop(self) -> None:
        subprocess.run(_as_cluster_user([str(self.bindir / "pg_ctl"), "-D", str(self.folder / "data"),
                                         "-m", "immediate", "stop"]), capture_output=True, timeout=60)


def start_server() -> PostgresServer:
    bindir = server_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL's server is not installed: scripts/test.sh installs it "
                           "(apt-get install postgresql)")
    folder = Path(tempfile.mkdtemp(prefix="cutover-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, CLUSTER_USER)
    server = PostgresServer(bindir, folder, _free_port())
    _run(_as_cluster_user([str(bindir / "initdb"), "-D", str(folder / "data"), "-U", server.superuser,
                           "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"]))
    _write_access_rules(folder / "data" / "pg_hba.conf")
    options = (f"-p {server.port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off "
               "-c full_page_writes=off -c max_connections=200")
    _run(_as_cluster_user([str(bindir / "pg_ctl"), "-D", str(folder / "data"), "-l",
                           str(folder / "log"), "-w", "-o", options, "start"]))
    return server


def _write_access_rules(hba: Path) -> None:
    """The superuser gets in without a password; every other role needs its real one, so
    tests of wrong passwords and missing rights meet the server's own refusals."""
    hba.write_text(
        "local all all trust\n"
        "host all postgres 127.0.0.1/32 trust\n"
        "host all all 127.0.0.1/32 scram-sha-256\n"
    )


def _run(command: list[str]) -> None:
    finished = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if finished.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{finished.stdout}{finished.stderr}")


@pytest.fixture(scope="session")
def pg_server():
    server = start_server()
    yield server
    server.stop()
    shutil.rmtree(server.folder, ignore_errors=True)


@pytest.fixture
def pg_database(pg_server):
    """The name of a fresh, empty database, dropped after the test."""
    name = pg_server.create_database()
    yield name
    pg_server.drop_database(name)


@pytest.fixture
def pg_url(pg_server, pg_database) -> str:
    return pg_server.url(pg_database)
