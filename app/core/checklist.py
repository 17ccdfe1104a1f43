"""The production checklist as data: which steps a run has, in what order, and what each needs.

The default is the runbook's production checklist. A project changes it in cutover.toml:

    [checklist]
    order = ["verify-target", "app-stopped", ..., "notify-team"]   # optional: the whole order

    [checklist.steps.hotfix]            # a built-in step's settings
    plans = ["plans/hotfix.sql"]        # the configured plans this step applies on its own

    [checklist.steps.notify-team]       # an extra step
    kind = "command"
    argv = ["/usr/local/bin/notify", "--channel", "ops"]
    timeout = 30

A `command` step's argv comes from this file only (never from a request) and runs without a
shell. A `manual` step is confirmed by an operator with a note. Steps run in order: by
default each requires every step before it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from app.core.errors import ConfigError
from app.core.fsutil import same_file
from app.core.numbers import Accepted, config_number

STEP_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,47}$")
BUILT_IN_KINDS = ("verify-target", "app-stopped", "data-volume", "backup", "integrity", "rehearse",
                  "migrate", "hotfix", "verify", "start-app", "smoke", "monitor")
# The steps of a move from SQLite to PostgreSQL ([checklist] kind = "move").
MOVE_KINDS = ("move-targets", "move-backup", "move-preflight", "move-copy", "move-verify")
KINDS = BUILT_IN_KINDS + MOVE_KINDS + ("command", "manual")
# Kinds that change the target database: each needs this run's verified backup first.
MUTATING_KINDS = ("migrate", "hotfix")
# What a step of these kinds refuses to run without (app/steps.py), and why. Placed after
# the step it needs, or without it, the step can never pass and the run never finishes:
# better said at start-up than in the middle of a cutover.
PREREQUISITES = {
    "integrity": (("backup", "it checks this run's backup"),),
    "migrate": (("backup", "it changes the database only after this run's verified backup"),
                ("rehearse", "it applies only a plan this run rehearsed")),
    "hotfix": (("backup", "it changes the database only after this run's verified backup"),
               ("migrate", "the hotfix is applied right after the migration")),
    "move-copy": (("move-backup", "it writes only after this run's verified backup of the source"),
                  ("move-preflight", "it copies only what this run's preflight judged")),
    "move-verify": (("move-copy", "it verifies this run's copy"),),
}
# step_plan_paths gives every hotfix step every hotfix plan and every migrate step all the
# others: a second step of these kinds would apply the same plans twice.
SINGLE_KINDS = MUTATING_KINDS + ("move-copy",)
ENV_NAME = re.compile(r"^[^=\x00]+$")  # what the OS takes as an environment variable's name
STEP_KEYS = {"kind", "title", "description", "signoff", "approval", "requires", "plans", "argv", "env",
             "cwd", "stdin", "timeout", "instructions"}
CHECKLIST_KEYS = {"order", "steps", "kind", "source", "quarantine", "drop"}
CHECKLIST_KINDS = ("production", "move")
COMMAND_TIMEOUT = Accepted(0, 7 * 24 * 3600, lowest_excluded=True, unit="seconds")  # a week at most


@dataclass(frozen=True)
class StepDefinition:
    id: str
    kind: str
    title: str
    description: str = ""
    signoff: bool = False  # an operator must sign off what the step showed before later steps run
    approval: bool = False  # a second operator must approve before it starts
    requires: tuple[str, ...] = ()
    plans: tuple[str, ...] = ()  # hotfix: the configured plans it applies (the last ones)
    argv: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    cwd: str | None = None
    stdin: str = ""
    timeout: float | None = None
    instructions: str = ""

    def to_dict(self) -> dict:
        return {"id": self.id, "kind": self.kind, "title": self.title, "description": self.description,
                "signoff": self.signoff, "approval": self.approval, "requires": list(self.requires),
                "plans": list(self.plans), "argv": list(self.argv), "env": dict(self.env), "cwd": self.cwd,
                "stdin": self.stdin, "timeout": self.timeout, "instructions": self.instructions}

    @classmethod
    def from_dict(cls, data: dict) -> StepDefinition:
        return cls(**{**data, "requires": tuple(data["requires"]), "plans": tuple(data["plans"]),
                      "argv": tuple(data["argv"]), "env": tuple(data["env"].items())})


# The steps both checklists end and begin with.
APP_STOPPED = StepDefinition("app-stopped", "app-stopped", "Check the application is stopped",
                             "No process matching the application's patterns runs, and none holds the database open.")
START_APP = StepDefinition("start-app", "start-app", "Start the application",
                          "The configured start command, then the application must answer; without one, start it by hand.")
SMOKE = StepDefinition("smoke", "smoke", "Smoke test",
                      "What the application writes, written in a transaction that is always rolled back.",
                      signoff=True)
MONITOR = StepDefinition("monitor", "monitor", "Monitor (24 hours stable)",
                        "Every check on a schedule over the monitoring window; passes when the window ends clean.")

DEFAULT_STEPS = (
    StepDefinition("verify-target", "verify-target", "Verify the target",
                   "The path resolves to this environment's database, not the reference's; the file is "
                   "the one inspected; its fingerprint is recorded.", signoff=True),
    APP_STOPPED,
    StepDefinition("data-volume", "data-volume", "Record data volume",
                   "Exact row counts of every table, kept for the ledger after the migration."),
    StepDefinition("backup", "backup", "Back up (verified, every location)",
                   "A consistent copy into every backup folder, each verified by hash and quick_check."),
    StepDefinition("integrity", "integrity", "Integrity check of the backup",
                   "PRAGMA integrity_check on the verified backup copy: the way back must be sound."),
    StepDefinition("rehearse", "rehearse", "Rehearse on a snapshot",
                   "The whole plan set, hotfix included, applied to a snapshot and verified; the target is only read.",
                   signoff=True),
    StepDefinition("migrate", "migrate", "Migrate",
                   "The plans applied in one transaction, after this run's verified backup and passing rehearsal."),
    StepDefinition("hotfix", "hotfix", "Apply the hotfix",
                   "The hotfix plan applied immediately after the migration, in its own transaction."),
    StepDefinition("verify", "verify", "Verify",
                   "Integrity, foreign keys, assertions, schema against the reference, row-count ledger, indexes."),
    START_APP,
    SMOKE,
    MONITOR,
)


MOVE_STEPS = (
    StepDefinition("move-targets", "move-targets", "Verify both databases",
                   "The source is the SQLite file configured as [checklist] source, the target this PostgreSQL "
                   "environment; they are not the same database, and every target table is empty.", signoff=True),
    APP_STOPPED,
    StepDefinition("move-backup", "move-backup", "Back up the source (verified, every location)",
                   "A consistent copy of the SQLite source into every backup folder, each verified."),
    StepDefinition("move-preflight", "move-preflight", "Preflight every row",
                   "Every source row judged against the target's schema, rejects counted and explained per table "
                   "with examples; with rejects, the quarantine file they will go to. Writes nothing.", signoff=True),
    StepDefinition("move-copy", "move-copy", "Copy in one transaction",
                   "COPY into the target in one transaction, foreign keys enforced, converted by the target's "
                   "types, rejects to the quarantine, verified before COMMIT; nothing is left on failure."),
    StepDefinition("move-verify", "move-verify", "Verify the move",
                   "Per table moved + quarantined = source rows, the target's counts and constraints, the source "
                   "byte-identical to its backup."),
    StepDefinition("switch-url", "command", "Switch the application's database URL",
                   "The configured command points the application at the PostgreSQL database."),
    START_APP,
    SMOKE,
    MONITOR,
)


@dataclass(frozen=True)
class MoveSettings:
    """[checklist] source, quarantine, drop: what a move checklist moves, and where rejects go."""

    source: str  # the SQLite environment's name
    quarantine: str | None = None  # a new SQLite file for rejected rows
    drop: tuple[str, ...] = ()  # source tables or table.columns to leave behind


@dataclass(frozen=True)
class Checklist:
    steps: tuple[StepDefinition, ...] = field(default_factory=lambda: default_checklist().steps)
    move: MoveSettings | None = None  # a move checklist's settings (read from cutover.toml by its steps)

    def step(self, step_id: str) -> StepDefinition | None:
        return next((s for s in self.steps if s.id == step_id), None)

    def ids(self) -> list[str]:
        return [s.id for s in self.steps]

    def to_list(self) -> list[dict]:
        return [s.to_dict() for s in self.steps]

    @classmethod
    def from_list(cls, items: list[dict]) -> Checklist:
        return cls(tuple(StepDefinition.from_dict(item) for item in items))


def default_checklist() -> Checklist:
    return Checklist(_linear(DEFAULT_STEPS))


def _linear(steps) -> tuple[StepDefinition, ...]:
    """Steps without `requires` need every step before them: the checklist runs in order."""
    ids: list[str] = []
    result = []
    for step in steps:
        result.append(step if step.requires else replace(step, requires=tuple(ids)))
        ids.append(step.id)
    return tuple(result)


def parse_checklist(path: Path, raw: dict, plans: tuple[Path, ...], resolve) -> Checklist:
    """Build the checklist from [checklist] (already a dict); every mistake names its key."""
    unknown = set(raw) - CHECKLIST_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown key 'checklist.{sorted(unknown)[0]}'. Known keys: order, steps.")
    settings = raw.get("steps", {})
    if not isinstance(settings, dict):
        raise ConfigError(f"{path}: 'checklist.steps' must be a table of steps ([checklist.steps.ID]).")
    move = _move_settings(path, raw, resolve)
    defaults = {step.id: step for step in (MOVE_STEPS if move else DEFAULT_STEPS)}
    order = _order(path, raw, defaults, settings)
    steps = [_step(path, step_id, settings.get(step_id, {}), defaults.get(step_id), plans, resolve)
             for step_id in order]
    for step_id in settings:
        if step_id not in order:
            raise ConfigError(f"{path}: 'checklist.steps.{step_id}' is not in 'checklist.order'; add it there or remove it.")
    checklist = Checklist(_linear(steps), move)
    _check_requirements(path, checklist)
    _check_single_kinds(path, checklist)
    _check_prerequisites(path, checklist)
    return checklist


def _move_settings(path: Path, raw: dict, resolve) -> MoveSettings | None:
    kind = raw.get("kind", "production")
    if kind not in CHECKLIST_KINDS:
        raise ConfigError(f"{path}: 'checklist.kind' must be one of {', '.join(CHECKLIST_KINDS)}.")
    move_keys = sorted({"source", "quarantine", "drop"} & set(raw))
    if kind != "move":
        if move_keys:
            raise ConfigError(f"{path}: 'checklist.{move_keys[0]}' is only for kind = \"move\".")
        return None
    source = _string(path, raw, "source", "checklist")
    if not source:
        raise ConfigError(f"{path}: a move checklist needs 'checklist.source': the name of the SQLite "
                          "environment whose rows move (the run is started on the PostgreSQL one).")
    quarantine = _string(path, raw, "quarantine", "checklist")
    return MoveSettings(source, str(resolve(quarantine)) if quarantine else None,
                        tuple(_strings(path, raw, "drop", "checklist")))


def _order(path: Path, raw: dict, defaults: dict, settings: dict) -> list[str]:
    if "order" not in raw:
        extra = [step_id for step_id in settings if step_id not in defaults]
        return list(defaults) + extra
    order = raw["order"]
    if not isinstance(order, list) or not order or not all(isinstance(item, str) for item in order):
        raise ConfigError(f"{path}: 'checklist.order' must be a non-empty list of step ids.")
    duplicates = sorted({item for item in order if order.count(item) > 1})
    if duplicates:
        raise ConfigError(f"{path}: 'checklist.order' lists step '{duplicates[0]}' twice.")
    for step_id in order:
        if step_id not in defaults and step_id not in settings:
            raise ConfigError(f"{path}: 'checklist.order' names step '{step_id}', which is neither built in "
                              f"({', '.join(defaults)}) nor defined in [checklist.steps.{step_id}].")
    return order


def _step(path: Path, step_id: str, body, default: StepDefinition | None, plans, resolve) -> StepDefinition:
    label = f"checklist.steps.{step_id}"
    if not STEP_ID.match(step_id):
        raise ConfigError(f"{path}: '{label}': step ids use lower-case letters, digits and '-' (at most 48).")
    if not isinstance(body, dict):
        raise ConfigError(f"{path}: '{label}' must be a table.")
    unknown = sorted(set(body) - STEP_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown key '{label}.{unknown[0]}'. Known keys: {', '.join(sorted(STEP_KEYS))}.")
    kind = _string(path, body, "kind", label) or (default.kind if default else None)
    if kind not in KINDS:
        raise ConfigError(f"{path}: '{label}.kind' must be one of {', '.join(KINDS)}"
                          f"{'' if kind else ' (a new step needs a kind)'}.")
    base = default if default and default.kind == kind else StepDefinition(step_id, kind, step_id.replace("-", " ").capitalize())
    step = replace(
        base, id=step_id,
        title=_string(path, body, "title", label) or base.title,
        description=_string(path, body, "description", label) or base.description,
        signoff=_boolean(path, body, "signoff", label, base.signoff),
        approval=_boolean(path, body, "approval", label, base.approval),
        requires=tuple(_strings(path, body, "requires", label)),
        instructions=_string(path, body, "instructions", label) or base.instructions,
    )
    return _kind_settings(path, label, step, body, plans, resolve)


def _kind_settings(path, label, step: StepDefinition, body: dict, plans, resolve) -> StepDefinition:
    command_keys = {"argv", "env", "cwd", "stdin", "timeout"} & set(body)
    if command_keys and step.kind != "command":
        raise ConfigError(f"{path}: '{label}.{sorted(command_keys)[0]}' is only for steps of kind \"command\".")
    if "plans" in body and step.kind != "hotfix":
        raise ConfigError(f"{path}: '{label}.plans' is only for the hotfix step (kind \"hotfix\").")
    if step.kind == "command":
        return _command(path, label, step, body, resolve)
    if step.kind == "hotfix":
        return replace(step, plans=_hotfix_plans(path, label, body, plans, resolve))
    if step.kind == "manual" and not step.instructions and not step.description:
        raise ConfigError(f"{path}: '{label}' is a manual step: say what to do in 'instructions'.")
    return step


def _command(path, label, step: StepDefinition, body: dict, resolve) -> StepDefinition:
    argv = _strings(path, body, "argv", label)
    if not argv:
        raise ConfigError(f"{path}: '{label}.argv' must be a non-empty list of strings (no shell is used).")
    env = body.get("env", {})
    if (not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values())
            or not all(ENV_NAME.match(name) for name in env)):
        raise ConfigError(f"{path}: '{label}.env' must be a table of NAME = \"value\" strings "
                          "(a name cannot be empty or hold '=').")
    timeout = body.get("timeout")
    if timeout is not None:
        # nan would stop the command at once and inf or 1e300 crash its timer: no time limit at all.
        timeout = config_number(path, f"{label}.timeout", timeout, COMMAND_TIMEOUT)
    cwd, stdin = _string(path, body, "cwd", label), _string(path, body, "stdin", label) or ""
    _refuse_nul(path, label, {"argv": argv, "env": list(env.values()), "cwd": [cwd or ""], "stdin": [stdin]})
    return replace(step, argv=tuple(argv), env=tuple(env.items()), cwd=str(resolve(cwd)) if cwd else None,
                   stdin=stdin, timeout=timeout)


def _refuse_nul(path, label, strings: dict[str, list[str]]) -> None:
    """TOML can spell a NUL byte (\\u0000); the OS cannot pass one to a command."""
    for key, values in strings.items():
        if any("\x00" in value for value in values):
            raise ConfigError(f"{path}: '{label}.{key}' cannot hold a NUL character (\\u0000).")


def _hotfix_plans(path, label, body: dict, plans: tuple[Path, ...], resolve) -> tuple[str, ...]:
    """The hotfix applies the last configured plans: the rehearsal ran them in that order."""
    chosen = [resolve(p) for p in _strings(path, body, "plans", label)]
    if not chosen:
        return ()
    configured = list(plans)
    tail = configured[-len(chosen):]
    # Compared as files, not as spellings; the [migration] spelling is kept, so that the
    # migrate step (every plan but the hotfix's) leaves out exactly these.
    if len(chosen) >= len(configured) or not all(map(same_file, tail, chosen)):
        raise ConfigError(f"{path}: '{label}.plans' must be the last of [migration] plans, in the same order "
                          "(the rehearsal applies them after the others), and cannot be all of them.")
    return tuple(str(p) for p in tail)


def _check_requirements(path: Path, checklist: Checklist) -> None:
    seen: set[str] = set()
    for step in checklist.steps:
        for needed in step.requires:
            if needed not in seen:
                where = ("is the step itself" if needed == step.id else
                         "comes after it" if checklist.step(needed) else "does not exist")
                raise ConfigError(f"{path}: 'checklist.steps.{step.id}.requires' names '{needed}', which {where}.")
        seen.add(step.id)


def _check_single_kinds(path: Path, checklist: Checklist) -> None:
    first: dict[str, str] = {}
    for step in checklist.steps:
        if step.kind in SINGLE_KINDS and step.kind in first:
            raise ConfigError(f"{path}: 'checklist.steps.{step.id}.kind': a checklist has at most one {step.kind} "
                              f"step ('{first[step.kind]}' is one); it would apply the same plans again.")
        first.setdefault(step.kind, step.id)


def _check_prerequisites(path: Path, checklist: Checklist) -> None:
    kinds_before: set[str] = set()
    for step in checklist.steps:
        for kind, why in PREREQUISITES.get(step.kind, ()):
            if kind not in kinds_before:
                raise ConfigError(f"{path}: 'checklist.order': step '{step.id}' needs a {kind} step before it "
                                  f"({why}); without one it could never pass.")
        kinds_before.add(step.kind)


def _string(path, body: dict, key: str, label: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{path}: '{label}.{key}' must be a string.")
    return value


def _strings(path, body: dict, key: str, label: str) -> list[str]:
    value = body.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise ConfigError(f"{path}: '{label}.{key}' must be a list of non-empty strings.")
    return value


def _boolean(path, body: dict, key: str, label: str, default: bool) -> bool:
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{path}: '{label}.{key}' must be true or false.")
    return value
