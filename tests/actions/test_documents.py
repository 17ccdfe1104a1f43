"""The dashboard's documents on the demo workspace: differences grouped by table and kind,
each kind explained once, and the environment badge saying what matters."""
from __future__ import annotations

import pytest

from app.actions.documents import (difference_kinds, differences_by_table, environment_condition,
                                   environment_document, kind_meaning)
from app.extensions import db
from tests.conftest import make_app


@pytest.fixture
def targets(tmp_path, demo_config):
    app = make_app(tmp_path, demo_config)
    with app.app_context():
        yield app.extensions["cutover.targets"]
        db.engine.dispose()


def test_the_demo_drift_is_three_kinds_each_explained_once(targets):
    comparison = targets.compare("development", "production")
    kinds = difference_kinds(comparison)
    assert [(k.kind.object, k.kind.fix, k.kind.count) for k in kinds] == [
        ("column", "additive", 14), ("index", "additive", 7), ("table", "additive", 2)]
    assert [k.kind.label for k in kinds] == ["14 columns", "7 indexes", "2 tables"]
    assert "ALTER TABLE … ADD COLUMN adds them" in kinds[0].meaning
    assert sum(k.kind.count for k in kinds) == len(comparison.differences) == 23


def test_differences_are_grouped_by_table_with_counts_per_kind(targets):
    groups = {g.table: g for g in differences_by_table(targets.compare("development", "production"))}
    assert sum(len(g.differences) for g in groups.values()) == 23
    definitions = groups["activity_definitions"]
    assert "group_id" in [d["name"] for d in definitions.differences if d["object"] == "column"]
    assert {(k.object, k.fix): k.count for k in definitions.kinds} == {
        ("column", "additive"): sum(d["object"] == "column" for d in definitions.differences),
        ("index", "additive"): sum(d["object"] == "index" for d in definitions.differences)}
    assert [k.label for k in groups["activity_groups"].kinds] == ["1 table"]


@pytest.mark.parametrize("kind, fix, says", [
    ("table", "rebuild", "the table is rebuilt"),
    ("index", "rebuild", "no table data is lost"),
    ("column", "destructive", "and their data with them"),
    ("view", "destructive", "no table data is lost"),
    ("sequence", "additive", "CREATE SEQUENCE adds them"),
    ("policy", "additive", "a CREATE statement adds them"),  # a kind it does not know still reads well
])
def test_each_kind_has_one_meaning(kind, fix, says):
    assert says in kind_meaning(kind, fix, "development", "production")


def condition(targets, name: str, differences: int | None):
    env = targets.environment(name)
    inspection = targets.inspect(env)  # waits for the whole-file checks
    return environment_condition(environment_document(env, inspection), inspection, differences)


def test_healthy_only_without_orphans_or_drift(targets):
    assert (condition(targets, "development", None).text, condition(targets, "development", None).tone) == \
        ("healthy", "good")
    production = condition(targets, "production", 23)
    assert (production.text, production.tone) == ("2 orphans · drifted", "warn")
    assert condition(targets, "production", 0).text == "2 orphans"


def test_problems_come_before_worries():
    assert environment_condition({"status": "unavailable"}, None, 5).text == "unavailable"
    assert environment_condition({"status": "problem"}, None, 5).text == "integrity problem"
    assert environment_condition({"status": "checking"}, None, 5).tone == "checking"
