"""A job's page and its live panel (one partial with a branch per state, polled while active),
and the history of every job, filterable."""
from __future__ import annotations

from flask import Blueprint, Flask, make_response, render_template, request
from sqlalchemy import select

from app.checklist.progress import checklist_of
from app.extensions import db
from app.jobs.runner import cancel, log_lines
from app.models import Job, Run
from app.web.operator import acting_operator

bp = Blueprint("jobs", __name__, url_prefix="/jobs")

# What an operator calls each kind of job; a checklist step's job is called by its step's title.
KIND_NAMES = {"backup": "Backup", "verify": "Backup verification", "restore": "Restore",
              "rehearse": "Rehearsal", "migrate": "Migration", "integrity": "Integrity check",
              "command": "Command", "manual": "Done by hand"}
FILTERS = ("kind", "environment", "state", "operator")


def job_title(job: Job) -> str:
    run = db.session.get(Run, job.run_id) if job.run_id else None
    if run is not None and job.step:
        step = checklist_of(run).step(job.step)
        if step is not None:
            return step.title
    return KIND_NAMES.get(job.kind, job.kind.replace("-", " ").capitalize())


def get_job(job_id: int) -> Job:
    return db.get_or_404(Job, job_id, description=f"No job {job_id}.")


@bp.get("")
def index():
    """Every operation ever run, newest first: the history an operator answers questions from."""
    page = max(request.args.get("page", 1, type=int), 1)
    chosen = {name: request.args.get(name, "") for name in FILTERS}
    query = select(Job).order_by(Job.id.desc())
    for name, value in chosen.items():
        if value:
            query = query.where(getattr(Job, name) == value)
    if request.args.get("run", type=int):
        chosen["run"] = request.args.get("run", type=int)
        query = query.where(Job.run_id == chosen["run"])
    jobs = db.paginate(query, page=page, per_page=50, error_out=False)
    choices = {name: db.session.scalars(select(getattr(Job, name)).distinct().order_by(getattr(Job, name))).all()
               for name in FILTERS}
    return render_template("jobs/index.html", jobs=jobs, chosen=chosen, choices=choices, kind_names=KIND_NAMES)


@bp.get("/<int:job_id>")
def detail(job_id: int):
    job = get_job(job_id)
    return render_template("jobs/detail.html", job=job, lines=log_lines(job.id))


@bp.get("/<int:job_id>/panel")
def panel(job_id: int):
    """Polled while the job is active; the poll that sees it finish reloads the page,
    so what the job changed (a new backup, a restored database) shows at once."""
    job = get_job(job_id)
    response = make_response(render_template("jobs/_panel.html", job=job, lines=log_lines(job.id)))
    if not job.active:
        response.headers["HX-Refresh"] = "true"
    return response


@bp.post("/<int:job_id>/cancel")
def cancel_job(job_id: int):
    job = cancel(get_job(job_id), acting_operator())
    return render_template("jobs/_panel.html", job=job, lines=log_lines(job.id))


def utc_text(moment: str | None) -> str:
    """An ISO time of the report's facts as the pages show times: to the second, in UTC."""
    if not moment:
        return ""
    return moment[:19].replace("T", " ") + " UTC"


def init_app(app: Flask) -> None:
    app.jinja_env.globals["job_title"] = job_title
    app.jinja_env.filters["utc"] = utc_text
