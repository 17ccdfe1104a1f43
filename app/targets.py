"""Bind the workspace (cutover.toml) and the snapshot cache to the app."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flask import Flask, current_app, g, request

from app.core.demo import create_demo_workspace
from app.core.diff import summarise_drift
from app.core.engines import Engine, engine_for
from app.core.engines.base import DifferentEngines, compare_schemas
from app.core.errors import NotFound, UsageError
from app.core.snapshots import Inspection, SnapshotCache
from app.core.workspace import Environment, Workspace, load_workspace


@dataclass(frozen=True)
class Comparison:
    left: str
    right: str
    left_inspection: Inspection
    right_inspection: Inspection
    differences: list | None
    summary: object | None
    problem: DifferentEngines | None = None  # why two readable schemas were not compared


class Targets:
    """What the web and CLI layers ask about environments; all reads, all through the cache."""

    def __init__(self, workspace: Workspace, busy_timeout: float, deep_interval: float = 300.0):
        self.workspace = workspace
        self.cache = SnapshotCache(busy_timeout, deep_interval)

    def environment(self, name: str) -> Environment:
        env = self.workspace.environment(name)
        if env is None:
            known = ", ".join(self.workspace.names())
            raise NotFound(f"No environment named '{name}'. Configured environments: {known}.", environment=name)
        return env

    def inspect(self, env: Environment, refresh: bool = False, wait_for_checks: bool = True,
                run_checks: bool = True) -> Inspection:
        return self.cache.inspect(env.target, refresh=refresh, wait_for_checks=wait_for_checks,
                                  run_checks=run_checks)

    def resolve(self, name_or_path: str) -> tuple[str, Engine]:
        """An environment name, or else the path of a (SQLite) database file."""
        env = self.workspace.environment(name_or_path)
        if env:
            return env.name, env.target
        path = Path(name_or_path).expanduser()
        if path.exists():
            return str(path), engine_for(path.absolute())
        raise UsageError(
            f"'{name_or_path}' is neither a configured environment ({', '.join(self.workspace.names())}) "
            f"nor an existing database file."
        )

    def compare(self, left: str, right: str, wait_for_checks: bool = True, run_checks: bool = True) -> Comparison:
        """`wait_for_checks`, `run_checks`: see SnapshotCache.inspect; a diff needs neither."""
        left_label, left_target = self.resolve(left)
        right_label, right_target = self.resolve(right)
        options = {"wait_for_checks": wait_for_checks, "run_checks": run_checks}
        left_inspection = self.cache.inspect(left_target, **options)
        right_inspection = self.cache.inspect(right_target, **options)
        differences = summary = problem = None
        if left_inspection.ok and right_inspection.ok:
            try:
                differences = compare_schemas(
                    left_target, right_target, left_inspection.snapshot.schema,
                    right_inspection.snapshot.schema, left_label=left_label, right_label=right_label)
                summary = summarise_drift(differences)
            except DifferentEngines as different:
                problem = different
        return Comparison(left_label, right_label, left_inspection, right_inspection, differences, summary,
                          problem)

    def compared(self, left: str, right: str, wait_for_checks: bool = True, run_checks: bool = True) -> Comparison:
        """compare(), for a caller that needs the differences: every reason there are none raised."""
        comparison = self.compare(left, right, wait_for_checks, run_checks)
        for inspection in (comparison.left_inspection, comparison.right_inspection):
            if not inspection.ok:
                raise inspection.error
        if comparison.problem is not None:
            raise comparison.problem
        return comparison

    def default_pair(self) -> tuple[str, str] | None:
        """Reference on the left, the first other environment (normally production) on the right."""
        reference = self.workspace.reference
        others = [env.name for env in self.workspace.environments if not env.reference]
        if reference and others:
            return reference.name, others[0]
        names = self.workspace.names()
        return (names[0], names[1]) if len(names) > 1 else None


def resolve_config_path(config: dict) -> Path:
    if config.get("CUTOVER_CONFIG"):
        return Path(config["CUTOVER_CONFIG"])
    local = Path.cwd() / "cutover.toml"
    if local.is_file():
        return local
    return create_demo_workspace(Path(config["CUTOVER_DEMO_DIR"]))


def init_app(app: Flask) -> None:
    app.jinja_env.globals["nav_environments"] = navigation_environments
    workspace = load_workspace(resolve_config_path(app.config))
    app.extensions["cutover.targets"] = Targets(
        workspace, app.config["CUTOVER_BUSY_TIMEOUT"], app.config["CUTOVER_DEEP_CHECK_SECONDS"]
    )
    app.before_request(_hold_stamps)
    app.teardown_request(_release_stamps)


def _hold_stamps() -> None:
    """A page reads each target's stamp once (see SnapshotCache.stamps_held). Only for GET:
    a request that changes a target must see the change when it reads it afterwards."""
    if request.method == "GET":
        g.cutover_stamps = current_targets().cache.stamps_held()
        g.cutover_stamps.__enter__()


def _release_stamps(_error=None) -> None:
    held = g.pop("cutover_stamps", None)
    if held is not None:
        held.__exit__(None, None, None)


def navigation_environments(targets_only: bool = False) -> list[str]:
    """Environment names for the menu; migrations target the non-reference ones."""
    environments = current_targets().workspace.environments
    return [env.name for env in environments if not (targets_only and env.reference)]


def current_targets() -> Targets:
    return current_app.extensions["cutover.targets"]
