"""What each kind of job does. A task takes a JobContext, calls the core, reports through
`context.emit` / `context.progress`, returns a JSON-ready result, and raises a CutoverError
to fail. Tasks run in the worker child (or the CLI); they never see request data."""
from __future__ import annotations

import os
import subprocess
import threading

from app.core.checks import integrity_check
from app.core.errors import CutoverError
from app.runner import JobContext


class CommandFailed(CutoverError):
    code = "command_failed"


def integrity_task(context: JobContext) -> dict:
    path = context.environment.database
    context.emit("info", f"Running PRAGMA integrity_check on {path} (reads every page).")
    result = integrity_check(path, busy_timeout=context.targets.cache.busy_timeout)
    for problem in result.evidence:
        context.emit("error", problem)
    if not result.passed:
        raise CutoverError(f"{result.summary} in {path}.")
    context.emit("ok", f"✓ {result.summary}")
    return result.to_dict()


def command_task(context: JobContext) -> dict:
    """Run a configured argv (never a shell), streaming its output line by line."""
    argv, timeout = list(context.params["argv"]), context.params.get("timeout")
    context.emit("info", "$ " + " ".join(argv))
    env = {**os.environ, **context.params.get("env", {})}
    try:
        process = subprocess.Popen(argv, cwd=context.params.get("cwd"), env=env, text=True,
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except OSError as exc:
        raise CommandFailed(f"Cannot start {argv[0]!r}: {exc.strerror}.") from None
    timed_out = threading.Event()

    def stop() -> None:
        timed_out.set()
        process.kill()

    timer = threading.Timer(timeout, stop) if timeout else None
    timer and timer.start()
    try:
        _feed_and_follow(context, process, context.params.get("stdin", ""))
    finally:
        timer and timer.cancel()
    if timed_out.is_set():
        raise CommandFailed(f"{argv[0]} did not finish within {timeout} s and was stopped.")
    if process.returncode != 0:
        raise CommandFailed(f"{argv[0]} exited with code {process.returncode}.")
    context.emit("ok", f"✓ {argv[0]} exited with code 0")
    return {"exit_code": 0}


def _feed_and_follow(context: JobContext, process: subprocess.Popen, stdin_text: str) -> None:
    try:
        process.stdin.write(stdin_text)
        process.stdin.close()
    except BrokenPipeError:
        pass  # the command does not read its input; that is its business
    for line in process.stdout:
        context.emit("info", line.rstrip("\n"))
    process.stdout.close()
    process.wait()


TASKS = {
    "integrity": integrity_task,
    "command": command_task,
}
