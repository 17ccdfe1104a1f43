"""Talks to app/alembic_runner.py, run by the application's interpreter (`alembic_python`).

The revision modules are imported there, never in Cutover's own process: they may import the
application, which Cutover's interpreter cannot (and should not) import."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from app.core.errors import AlembicError
from app.core.workspace import AlembicSettings

RUNNER = Path(__file__).resolve().parents[2] / "alembic_runner.py"

_EXPLAINED = {
    "no_alembic": "{python} cannot import Alembic ({message}): install alembic (and SQLAlchemy) in the "
                  "application's environment, or set [migration] alembic_python to the interpreter that has it.",
    "import": "A revision does not import: {message}. Fix the file (alembic itself would fail on it too); "
              "nothing was changed.",
    "ini": "{message}. Check [migration] alembic in cutover.toml; nothing was changed.",
    "target": "{message}",
    "capture": "{message}",
    "error": "The Alembic project at {ini} could not be read: {message}. Nothing was changed.",
}


def ask(settings: AlembicSettings, request: dict, *, environment: dict[str, str] | None = None) -> dict:
    """The runner's answer to `request` (graph, render or capture); AlembicError when it refuses."""
    if not settings.ini.is_file():
        raise AlembicError(f"The Alembic configuration {settings.ini} does not exist: set [migration] alembic "
                           "in cutover.toml to the application's alembic.ini. Nothing was changed.")
    request = {**request, "ini": str(settings.ini)}
    answer = _run(settings, request, environment or {})
    if not answer.get("ok"):
        error = answer.get("error") or {}
        template = _EXPLAINED.get(error.get("kind"), _EXPLAINED["error"])
        raise AlembicError(template.format(python=settings.python, ini=settings.ini,
                                           message=error.get("message", "no reason given")),
                           **{k: v for k, v in error.items() if k in ("file", "revision", "kind")})
    return answer


def _run(settings: AlembicSettings, request: dict, environment: dict[str, str]) -> dict:
    try:
        done = subprocess.run([settings.python, str(RUNNER)], input=json.dumps(request), capture_output=True,
                              text=True, cwd=settings.ini.parent, env={**os.environ, **environment})
    except OSError as exc:
        raise AlembicError(f"alembic_python = {settings.python!r} cannot be started "
                           f"({exc.strerror or exc}): name the application's Python interpreter "
                           "(e.g. /srv/app/.venv/bin/python) in [migration] alembic_python.") from None
    try:
        return json.loads(done.stdout)
    except ValueError:
        said = ((done.stderr or done.stdout).strip().splitlines() or ["no output"])[-1]
        raise AlembicError(f"alembic_python = {settings.python!r} is not a Python interpreter that can read the "
                           f"revisions (exit code {done.returncode}: {said[:300]}): name the application's "
                           "Python interpreter in [migration] alembic_python.") from None
