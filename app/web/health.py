"""The post-migration health page: checks with evidence, the watch window, charts, alerts."""
from __future__ import annotations

import json

from flask import Blueprint, Flask, flash, redirect, render_template, url_for
from sqlalchemy import select

from app.actions.monitoring import active_window, latest_window, start_window, stop_window, window_summary
from app.actions.verification import sqlite_warnings, verify_and_record
from app.core.checks import report
from app.extensions import db
from app.models import HealthSample, MonitorWindow
from app.targets import Targets, current_targets
from app.web.charts import line_chart, tick_strip
from app.web.operator import acting_operator

bp = Blueprint("health", __name__, url_prefix="/environments/<name>/health")


def samples_of(window: MonitorWindow | None) -> list[HealthSample]:
    if window is None:
        return []
    return list(db.session.scalars(select(HealthSample).where(HealthSample.window_id == window.id)
                                   .order_by(HealthSample.tick)))


def latest_result(samples: list[HealthSample]) -> HealthSample | None:
    done = [s for s in samples if s.state in ("passed", "failed")]
    return done[-1] if done else None


def health_document(targets: Targets, env) -> dict:
    inspection = targets.inspect(env)
    facts = inspection.snapshot.facts if inspection.ok else None
    window = latest_window(env.name)
    samples = samples_of(window)
    latest = latest_result(samples)
    return {
        "environment": env.name,
        "sqlite": {"version": facts.sqlite_version if facts else None,
                   "journal_mode": facts.journal_mode if facts else None,
                   "warnings": sqlite_warnings(facts.sqlite_version, facts.journal_mode) if facts else []},
        "window": window_summary(window) if window else None,
        "latest": _sample_document(latest) if latest else None,
        "samples": [_sample_document(s) for s in samples],
    }


def _sample_document(sample: HealthSample) -> dict:
    return {"tick": sample.tick, "due_at": sample.due_at.isoformat() + "Z",
            "ran_at": sample.ran_at.isoformat() + "Z" if sample.ran_at else None, "state": sample.state,
            "checks": json.loads(sample.results or "[]"), "measurements": json.loads(sample.measurements or "{}")}


def charts(samples: list[HealthSample]) -> list:
    measured = [json.loads(s.measurements or "{}") for s in samples]
    rows = [_total_rows(m["row_counts"]) if m.get("row_counts") else None for m in measured]
    return [
        line_chart("Database size", [m.get("size_bytes") for m in measured], "bytes"),
        line_chart("Rows in all tables", rows, "rows"),
        line_chart("Application latency", [m.get("health_latency_ms") for m in measured], "ms"),
    ]


def _total_rows(counts: dict) -> int:
    # A table SQLite cannot read here (a virtual table without its module) has no count.
    return sum(count for count in counts.values() if count is not None)


def _page(targets: Targets, env, verification: dict | None = None):
    window = latest_window(env.name)
    samples = samples_of(window)
    cells, cell_size = tick_strip(samples)
    return render_template("health/index.html", env=env, doc=health_document(targets, env), window=window,
                           samples=samples, cells=cells, cell_size=cell_size, charts=charts(samples),
                           verification=verification)


@bp.get("")
def index(name: str):
    targets = current_targets()
    return _page(targets, targets.environment(name))


@bp.post("/verify")
def verify(name: str):
    targets = current_targets()
    env = targets.environment(name)
    results, baseline = verify_and_record(targets, env, acting_operator())
    return _page(targets, env, {**report(results), "baseline": baseline.notes})


@bp.post("/monitor")
def monitor(name: str):
    targets = current_targets()
    window = start_window(targets, targets.environment(name), acting_operator(), reason="started from the health page")
    flash(f"Watching {name} until {window.ends_at:%Y-%m-%d %H:%M} UTC.", "success")
    return redirect(url_for("health.index", name=name))


@bp.post("/monitor/stop")
def monitor_stop(name: str):
    name = current_targets().environment(name).name  # an unknown name is a 404, like everywhere
    window = active_window(name)
    if window is not None:
        stop_window(window, acting_operator())
        flash("Monitoring stopped.", "success")
    return redirect(url_for("health.index", name=name))


def failing_environments() -> list[str]:
    """Environments whose watch's latest tick failed: every page shows them."""
    failing = []
    for window in db.session.scalars(select(MonitorWindow).where(MonitorWindow.state == "active")):
        latest = latest_result(samples_of(window))
        if latest and latest.state == "failed":
            failing.append(window.environment)
    return failing


def init_app(app: Flask) -> None:
    app.jinja_env.globals["health_alerts"] = failing_environments
