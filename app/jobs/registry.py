"""The kinds a job can be, and who hears that a job ended: the runner looks both up here.

Job kinds join from above (app.actions.tasks, app.checklist.steps; the app factory wires
them), so the runner imports none of them. A checklist step's job (it has a run) runs its step
kind, any other job its task kind: the two name spaces are apart (both have a "backup").
"""
from __future__ import annotations

from typing import Callable

from app.models import Job

Task = Callable[..., dict]  # takes the runner's JobContext, returns the job's JSON-ready result
EndHook = Callable[[Job], None]

_TASK_KINDS: dict[str, Task] = {}
_STEP_KINDS: dict[str, Task] = {}
_END_HOOKS: list[EndHook] = []


def register_tasks(kinds: dict[str, Task]) -> None:
    _TASK_KINDS.update(kinds)


def register_steps(kinds: dict[str, Task]) -> None:
    _STEP_KINDS.update(kinds)


def when_a_job_ends(hook: EndHook) -> None:
    """`hook(job)` runs in the process that ended the job, once its outcome is recorded."""
    if hook not in _END_HOOKS:
        _END_HOOKS.append(hook)


def task_for(job: Job) -> Task:
    kinds = _STEP_KINDS if job.run_id is not None else _TASK_KINDS
    return kinds[job.kind]


def job_ended(job: Job) -> None:
    for hook in _END_HOOKS:
        hook(job)
