"""`python -m app.worker JOB_ID`: the child process that runs one job (see app.runner)."""
import signal
import sys


def main(argv: list[str]) -> int:
    from app import create_app
    from app.runner import JobCancelled, run_job

    def cancelled(signum, frame):
        raise JobCancelled()

    signal.signal(signal.SIGTERM, cancelled)
    app = create_app(overrides={"CUTOVER_IS_WORKER": True})
    with app.app_context():
        job = run_job(int(argv[1]))
        return 0 if job.state == "passed" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
