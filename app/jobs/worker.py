"""`python -m app.jobs.worker JOB_ID`: the child process that runs one job (see app.jobs.runner)."""
import signal
import sys


def main(argv: list[str]) -> int:
    from app import create_app
    from app.core.errors import CutoverError
    from app.jobs.runner import JobCancelled, run_job

    def cancelled(signum, frame):
        raise JobCancelled()

    signal.signal(signal.SIGTERM, cancelled)
    try:
        app = create_app(overrides={"CUTOVER_IS_WORKER": True})
    except CutoverError as error:
        record_start_failure(int(argv[1]), error.message)
        return 1
    with app.app_context():
        job = run_job(int(argv[1]))
        return 0 if job.state == "passed" else 1


def record_start_failure(job_id: int, message: str) -> None:
    """The app could not be built (cutover.toml became invalid, say): without it there is no
    session, so the job's failure and its reason are written with a bare engine."""
    import os

    from sqlalchemy import create_engine, insert, update

    from app.models import Job, LogLine, serialise_log_lines, utcnow

    text = f"The worker could not start: {message}"
    engine = create_engine(os.environ["CUTOVER_STATE_DATABASE_URL"])
    serialise_log_lines(engine)
    with engine.begin() as connection:
        job = connection.execute(Job.__table__.select().where(Job.id == job_id)).first()
        if job is None:
            return
        connection.execute(insert(LogLine.__table__).values(job_id=job_id, run_id=job.run_id, step=job.step,
                                                            level="error", text=text, time=utcnow()))
        connection.execute(update(Job.__table__).where(Job.id == job_id).values(
            state="failed", error=text, finished_at=utcnow()))
    engine.dispose()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
