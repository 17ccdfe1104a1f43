"""config.py: every numeric environment variable is checked once, at start-up, with one line
and exit code 2 for a value Cutover cannot use; a relative CUTOVER_INSTANCE_DIR is one folder."""
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.core.errors import ConfigError
from config import NUMERIC_SETTINGS, Config, check_numeric_settings

PROJECT = Path(__file__).resolve().parents[1]
# variable -> (values it takes, what the message says it accepts)
ACCEPTS = {
    "CUTOVER_PORT": (["1", "5000", "65535"], "a TCP port number from 1 to 65535"),
    "CUTOVER_THREADS": (["1", "256", "10000"], "a whole number from 1 to 10000"),
    "CUTOVER_BUSY_TIMEOUT": (["0", "0.2", "3600"], "a number of seconds from 0 to 3600"),
    "CUTOVER_DEEP_CHECK_SECONDS": (["0", "300", "604800"], "a number of seconds from 0 to 604800"),
    "CUTOVER_BACKUP_KEEP_DAYS": (["0", "30", "36500"], "a whole number of days from 0 to 36500"),
    "CUTOVER_MONITOR_POLL_SECONDS": (["0.2", "5", "3600"], "a positive number of seconds, at most 3600"),
    "CUTOVER_LOGIN_ATTEMPTS": (["1", "5", "10000"], "a whole number from 1 to 10000"),
    "CUTOVER_MAX_VIEWERS": (["1", "200", "10000"], "a whole number from 1 to 10000"),
    "CUTOVER_MAX_VIEWERS_PER_CLIENT": (["1", "50", "10000"], "a whole number from 1 to 10000"),
    "CUTOVER_REQUEST_HEAD_TIMEOUT": (["0.5", "10", "3600"], "a positive number of seconds, at most 3600"),
    "CUTOVER_REQUEST_BODY_TIMEOUT": (["0.5", "30", "3600"], "a positive number of seconds, at most 3600"),
    "CUTOVER_MAX_REQUEST_BYTES": (["1024", "1048576", "1073741824"],
                                  "a whole number of bytes from 1024 to 1073741824"),
}
BAD = ["nan", "NaN", "inf", "-inf", "Infinity", "1e999", "1e300", "-1", "", " ", "abc", "5 000", "0x10", "true",
       "9" * 5000]
ZERO_INVALID = ["CUTOVER_PORT", "CUTOVER_THREADS", "CUTOVER_MONITOR_POLL_SECONDS", "CUTOVER_LOGIN_ATTEMPTS",
                "CUTOVER_MAX_VIEWERS", "CUTOVER_MAX_VIEWERS_PER_CLIENT", "CUTOVER_REQUEST_HEAD_TIMEOUT",
                "CUTOVER_REQUEST_BODY_TIMEOUT", "CUTOVER_MAX_REQUEST_BYTES"]
WHOLE = ["CUTOVER_PORT", "CUTOVER_THREADS", "CUTOVER_BACKUP_KEEP_DAYS", "CUTOVER_LOGIN_ATTEMPTS", "CUTOVER_MAX_VIEWERS",
         "CUTOVER_MAX_VIEWERS_PER_CLIENT", "CUTOVER_MAX_REQUEST_BYTES"]


def defaults() -> dict:
    return {name: getattr(Config, name) for name in NUMERIC_SETTINGS}


def test_every_numeric_setting_is_checked():
    assert set(ACCEPTS) == set(NUMERIC_SETTINGS)


def test_no_setting_converts_an_environment_variable_itself():
    """int(os.environ[...]) would end start-up in a traceback and float() would take nan:
    every numeric variable is read with _env_number and checked by check_numeric_settings."""
    import ast

    tree = ast.parse((PROJECT / "config.py").read_text())
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)]
    converted = [ast.unparse(node) for node in calls if node.func.id in ("int", "float", "Decimal")
                 and "environ" in ast.unparse(node)]
    assert converted == []
    read = {node.args[0].value for node in calls if node.func.id == "_env_number"}
    assert read == set(NUMERIC_SETTINGS)


def bad_values(name: str) -> list[str]:
    return BAD + (["0", "0.0"] if name in ZERO_INVALID else []) + (["5.0", "2.5"] if name in WHOLE else [])


@pytest.mark.parametrize("name, text", [(name, text) for name in ACCEPTS for text in bad_values(name)])
def test_a_bad_environment_variable_is_one_line_naming_it(name, text):
    settings = {**defaults(), name: text}
    with pytest.raises(ConfigError) as caught:
        check_numeric_settings(settings)
    message = caught.value.message
    assert message.startswith(f"the environment variable {name} must be {ACCEPTS[name][1]}; it is ")
    assert message.endswith(". Fix it or unset it.") and "\n" not in message and len(message) < 300
    assert caught.value.exit_code == 2


@pytest.mark.parametrize("name, text", [(name, text) for name, (good, _) in ACCEPTS.items() for text in good])
def test_a_good_environment_variable_becomes_its_number(name, text):
    settings = {**defaults(), name: text}
    check_numeric_settings(settings)
    assert settings[name] == float(text) and type(settings[name]) is (int if name in WHOLE else float)


@pytest.mark.parametrize("value", [True, float("nan"), float("inf"), -1, "x"])
def test_a_bad_setting_given_in_code_is_refused_too(value):
    with pytest.raises(ConfigError, match="CUTOVER_THREADS must be a whole number from 1 to 10000"):
        check_numeric_settings({**defaults(), "CUTOVER_THREADS": value})


def start(args: list[str], cwd: Path, **variables) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(PROJECT), "CUTOVER_ADMIN_PASSWORD": "config-admin-password",
           **variables}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args", [["run.py"], ["-m", "flask", "--app", "run", "cutover", "envs"]])
@pytest.mark.parametrize("name, text", [("CUTOVER_PORT", "80a"), ("CUTOVER_THREADS", "1e999"),
                                        ("CUTOVER_BUSY_TIMEOUT", "nan"), ("CUTOVER_LOGIN_ATTEMPTS", "")])
def test_the_server_and_the_cli_stop_with_one_line_and_exit_2(tmp_path, demo_config, args, name, text):
    result = start(args, PROJECT, **{name: text, "CUTOVER_CONFIG": str(demo_config),
                                     "CUTOVER_INSTANCE_DIR": str(tmp_path / "instance")})
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith(f"cutover: the environment variable {name} must be ")
    assert len(result.stderr.splitlines()) == 1, result.stderr


def test_a_relative_instance_dir_is_one_folder_under_the_starting_directory(tmp_path, demo_config):
    """The secret key and the state database used to land in two folders: one under the current
    directory, one under Flask's own instance folder in the project."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    relative = f"instance-{secrets.token_hex(4)}"
    stray = PROJECT / "instance" / relative
    try:
        result = start(["-m", "flask", "--app", "run", "cutover", "envs"], elsewhere,
                       CUTOVER_INSTANCE_DIR=relative, CUTOVER_CONFIG=str(demo_config))
        assert result.returncode == 0, result.stderr
        instance = elsewhere / relative
        assert (instance / "secret_key").is_file() and (instance / "cutover.db").is_file()
        assert not stray.exists()
        assert sorted(p.name for p in elsewhere.iterdir()) == [relative]
        # A relative state database URL is a file of that same folder.
        result = start(["-m", "flask", "--app", "run", "cutover", "envs"], elsewhere, CUTOVER_INSTANCE_DIR=relative,
                       CUTOVER_CONFIG=str(demo_config), CUTOVER_STATE_DATABASE_URL="sqlite:///state.db")
        assert result.returncode == 0, result.stderr
        assert (instance / "state.db").is_file() and not stray.exists()
    finally:
        shutil.rmtree(stray, ignore_errors=True)
