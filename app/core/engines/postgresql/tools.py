"""PostgreSQL's own client programs (pg_dump, pg_restore, psql), chosen to match the server.

pg_dump refuses, or worse writes a dump that restores wrongly, when it is older than the server
it reads, so the newest installed client is chosen and its major version checked against the
server's before anything runs. Debian keeps one folder per major version
(/usr/lib/postgresql/N/bin) and puts only a wrapper on PATH; both places are looked in.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from app.core.errors import CutoverError

VERSIONED_FOLDERS = Path("/usr/lib/postgresql")
_VERSION = re.compile(r"\(PostgreSQL\) (\d+)(?:\.(\d+))?")


class ClientToolMissing(CutoverError):
    """No usable pg_dump / pg_restore / psql for this server: nothing was run."""

    code = "client_tool_missing"
    http_status = 409


@dataclass(frozen=True)
class ClientTool:
    path: Path
    major: int
    minor: int

    @property
    def version(self) -> str:
        return f"{self.major}.{self.minor}"


def client_tool(name: str, server_major: int, *, search: list[Path] | None = None) -> ClientTool:
    """The newest `name` (pg_dump, pg_restore, psql) installed; refused when older than the server."""
    found = [tool for tool in map(_describe, _candidates(name, search)) if tool is not None]
    if not found:
        raise ClientToolMissing(
            f"{name} is not installed: install PostgreSQL's client programs, version {server_major} "
            f"or newer (Debian: apt-get install postgresql-client-{server_major}).")
    newest = max(found, key=lambda tool: (tool.major, tool.minor))
    if newest.major < server_major:
        raise ClientToolMissing(
            f"{name} {newest.version} ({newest.path}) is older than the PostgreSQL {server_major} "
            f"server it would work on, and cannot be trusted with it: install the version "
            f"{server_major} client programs or newer (Debian: apt-get install "
            f"postgresql-client-{server_major}).")
    return newest


def _candidates(name: str, search: list[Path] | None) -> list[Path]:
    if search is not None:
        return [folder / name for folder in search if (folder / name).is_file()]
    folders = sorted(VERSIONED_FOLDERS.glob("*/bin"))
    on_path = shutil.which(name)
    return [folder / name for folder in folders if (folder / name).is_file()] + (
        [Path(on_path)] if on_path else [])


def _describe(path: Path) -> ClientTool | None:
    """The version a program says it is; None when it does not run or says nothing usable."""
    try:
        said = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=30,
                              env={**os.environ, "LC_ALL": "C"}).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = _VERSION.search(said)
    if match is None:
        return None
    return ClientTool(path, int(match.group(1)), int(match.group(2) or 0))
