"""A job's page and its live panel (one partial with a branch per state, polled while active)."""
from __future__ import annotations

from flask import Blueprint, make_response, render_template, request
from sqlalchemy import select

from app.extensions import db
from app.jobs.runner import cancel, log_lines
from app.models import Job
from app.web.operator import acting_operator

bp = Blueprint("jobs", __name__, url_prefix="/jobs")


def get_job(job_id: int) -> Job:
    return db.get_or_404(Job, job_id, description=f"No job {job_id}.")


@bp.get("")
def index():
    """Every operation ever run, newest first: the history an operator answers questions from."""
    page = max(request.args.get("page", 1, type=int), 1)
    jobs = db.paginate(select(Job).order_by(Job.id.desc()), page=page, per_page=50, error_out=False)
    return render_template("jobs/index.html", jobs=jobs)


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
