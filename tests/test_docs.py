"""The README is the front door: every setting, command and API route is documented there."""
import re
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
README = (PROJECT / "README.md").read_text()


def test_every_environment_variable_is_documented():
    names = set(re.findall(r"os\.environ\.get\(\"(CUTOVER_[A-Z_]+)\"", (PROJECT / "config.py").read_text()))
    names |= set(re.findall(r"_env_list\(\"(CUTOVER_[A-Z_]+)\"", (PROJECT / "config.py").read_text()))
    assert len(names) >= 10
    assert sorted(n for n in names if f"`{n}`" not in README) == []


def test_every_cli_command_is_documented(app):
    group = app.cli.commands["cutover"]
    assert sorted(c for c in group.commands if f"cutover {c}" not in README) == []


def test_every_api_route_is_documented(app):
    routes = {re.sub(r"<(?:int:)?[a-z_]+>", "X", rule.rule) for rule in app.url_map.iter_rules()
              if rule.rule.startswith("/api/v1")}
    documented = {re.sub(r"\b[A-Z][A-Z_]*\b", "X", route) for route in re.findall(r"`(?:GET|POST) (/api/v1/[^`?\[ ]+)", README)}
    assert sorted(routes - documented) == []
