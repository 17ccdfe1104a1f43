"""Choosing PostgreSQL's client programs: the newest, and never older than the server."""
import stat

import pytest

from app.core.engines.postgresql.tools import ClientToolMissing, client_tool


def fake_client(folder, name: str, says: str):
    """A real executable that prints what an installed client of that version prints."""
    folder.mkdir(parents=True, exist_ok=True)
    program = folder / name
    program.write_text(f"#!/bin/sh\necho '{says}'\n")
    program.chmod(program.stat().st_mode | stat.S_IEXEC)
    return folder


def test_the_installed_pg_dump_is_found_with_its_version(pg_server):
    tool = client_tool("pg_dump", server_major=15)
    assert tool.major >= 15 and tool.path.name == "pg_dump"


def test_the_newest_of_several_is_chosen(tmp_path):
    old = fake_client(tmp_path / "13", "pg_dump", "pg_dump (PostgreSQL) 13.9")
    new = fake_client(tmp_path / "16", "pg_dump", "pg_dump (PostgreSQL) 16.4 (Debian 16.4-1)")
    tool = client_tool("pg_dump", 15, search=[old, new])
    assert (tool.major, tool.minor, tool.path) == (16, 4, new / "pg_dump")


def test_a_client_older_than_the_server_is_refused_naming_the_fix(tmp_path):
    old = fake_client(tmp_path / "14", "pg_dump", "pg_dump (PostgreSQL) 14.11")
    with pytest.raises(ClientToolMissing) as caught:
        client_tool("pg_dump", 16, search=[old])
    assert "pg_dump 14.11" in caught.value.message
    assert "postgresql-client-16" in caught.value.message


def test_no_client_at_all(tmp_path):
    with pytest.raises(ClientToolMissing, match="pg_restore is not installed"):
        client_tool("pg_restore", 15, search=[tmp_path])
