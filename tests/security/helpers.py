"""What the attack suite shares: the app's routes as data, plausible URL values, and proof
that nothing happened (row counts of the dashboard's state, folder snapshots)."""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import func, select

PUBLIC_ENDPOINTS = {"auth.login", "static"}
# Query strings a route needs to do its work (the values are the demo's environments).
QUERY = {"api.diff": "?left=development&right=production", "api.prep_route": "?reference=development&save=1"}
ARGUMENT = re.compile(r"<(?:(?P<converter>\w+)(?:\([^)]*\))?:)?(?P<name>\w+)>")


@dataclass(frozen=True)
class Route:
    """One (rule, method) of the app's URL map."""

    rule: str
    endpoint: str
    method: str
    methods: frozenset

    def __str__(self) -> str:
        return f"{self.method} {self.rule}"

    @property
    def api(self) -> bool:
        return self.rule.startswith("/api/")

    @property
    def public(self) -> bool:
        return self.endpoint in PUBLIC_ENDPOINTS

    @property
    def stream(self) -> bool:
        return self.rule.endswith("/events")

    @property
    def arguments(self) -> list[tuple[str, str | None]]:
        return [(m["name"], m["converter"]) for m in ARGUMENT.finditer(self.rule)]

    def url(self, values: dict, **override) -> str:
        """The rule with each argument filled: override, else values, else by converter
        (int: 1, anything else: "production"), so a route added later is covered too."""

        def fill(match: re.Match) -> str:
            name, converter = match["name"], match["converter"]
            if name in override:
                return override[name]  # given as it goes on the wire (already encoded, or not)
            value = values.get(name, 1 if converter == "int" else "production")
            return quote(str(value), safe="/" if converter == "path" else "")

        return ARGUMENT.sub(fill, self.rule) + QUERY.get(self.endpoint, "")


def routes_of(app) -> list[Route]:
    found = []
    for rule in app.url_map.iter_rules():
        methods = frozenset(rule.methods - {"HEAD", "OPTIONS"})
        found += [Route(rule.rule, rule.endpoint, method, methods) for method in sorted(methods)]
    return sorted(found, key=lambda r: (r.rule, r.method))


@lru_cache(maxsize=1)
def route_table() -> tuple[Route, ...]:
    """Every route of a real app, for parametrizing at collection time (the tests check the
    table still matches the app they run against)."""
    from app.extensions import db
    from tests.conftest import make_app

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        config = folder / "cutover.toml"
        config.write_text('[environments.production]\ndatabase = "goals.db"\n')
        app = make_app(folder, config)
        routes = tuple(routes_of(app))
        with app.app_context():
            db.engine.dispose()
    return routes


def protected_routes() -> list[Route]:
    return [route for route in route_table() if not route.public]


def state_changing_routes() -> list[Route]:
    return [route for route in route_table() if route.method not in ("GET", "HEAD", "OPTIONS")]


def ids(routes) -> list[str]:
    return [str(route) for route in routes]


# --------------------------------------------------------------------------- proof of nothing


def file_state(path: Path):
    """What a file is now, without following a symlink."""
    info = path.lstat()
    if path.is_symlink():
        return ("symlink", os.readlink(path))
    if path.is_dir():
        return ("dir", info.st_mode)
    return ("file", info.st_size, info.st_mtime_ns, info.st_mode, hashlib.sha256(path.read_bytes()).hexdigest())


def snapshot(folder: Path, *, exclude: tuple[str, ...] = ()) -> dict:
    """Every entry under `folder` (relative path -> state); `exclude` names top-level entries to skip."""
    result = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(root) / name
            relative = path.relative_to(folder)
            if relative.parts[0] in exclude:
                continue
            result[str(relative)] = file_state(path)
    return result


def state_counts(app) -> dict:
    """Rows of the dashboard's own state an action would add, and the operators' session generations."""
    from app.extensions import db
    from app.models import AuditEntry, HealthSample, Job, LogLine, MonitorWindow, Operator, Run, SignOff

    with app.app_context():
        counts = {model.__name__: db.session.scalar(select(func.count()).select_from(model))
                  for model in (AuditEntry, Job, Run, SignOff, LogLine, MonitorWindow, HealthSample, Operator)}
        counts["session_generations"] = db.session.scalar(select(func.sum(Operator.session_generation)))
        counts["run_statuses"] = sorted(db.session.scalars(select(Run.status)))
        db.session.remove()
    return counts


def audit_entries_after(app, entry_id: int) -> list[tuple[str, str, str, str, str]]:
    from app.extensions import db
    from app.models import AuditEntry

    with app.app_context():
        rows = db.session.scalars(select(AuditEntry).where(AuditEntry.id > entry_id).order_by(AuditEntry.id)).all()
        found = [(r.actor, r.action, r.target, r.result, r.detail) for r in rows]
        db.session.remove()
    return found


def last_audit_id(app) -> int:
    from app.extensions import db
    from app.models import AuditEntry

    with app.app_context():
        found = db.session.scalar(select(func.max(AuditEntry.id))) or 0
        db.session.remove()
    return found


def wait_for_jobs(app, timeout: float = 60.0) -> None:
    """Until no job of the app is queued or running (launched children report through the database)."""
    from app.extensions import db
    from app.models import ACTIVE_JOB_STATES, Job

    deadline = time.monotonic() + timeout
    while True:
        with app.app_context():
            active = db.session.scalar(select(func.count()).select_from(Job).where(Job.state.in_(ACTIVE_JOB_STATES)))
            db.session.remove()
        if not active:
            return
        assert time.monotonic() < deadline, f"{active} job(s) still active after {timeout} s"
        time.sleep(0.05)
