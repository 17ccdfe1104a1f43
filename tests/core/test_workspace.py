"""cutover.toml: what it accepts, and the one clear message for each thing it refuses."""
import os
import re
from pathlib import Path

import pytest

from app.core.errors import ConfigError
from app.core.workspace import load_workspace

VALID = """
[environments.development]
database = "dev/goals_dev.db"
reference = true

[environments.production]
database = "/srv/app/goals.db"
backup_dirs = ["backups", "/mnt/safe"]

[environments.production.app]
health_url = "http://127.0.0.1:8001/health"
process_patterns = ["flask", "vite"]
start_command = ["./start.sh", "production"]
log_file = "logs/production.log"

[migration]
plans = ["plans/phase1.sql", "plans/hotfix.sql"]

[checks]
no_null_root = "SELECT COUNT(*) FROM goals WHERE root_id IS NULL"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cutover.toml"
    path.write_text(text)
    return path


def test_valid_config_resolves_relative_paths_against_its_folder(tmp_path):
    workspace = load_workspace(write(tmp_path, VALID))
    dev, prod = workspace.environments
    assert dev.location == tmp_path / "dev/goals_dev.db"
    assert dev.reference and not prod.reference
    assert workspace.reference is dev
    assert dev.backup_dirs == (tmp_path / "backups/development",)
    assert prod.location == Path("/srv/app/goals.db")
    assert prod.backup_dirs == (tmp_path / "backups", Path("/mnt/safe"))
    assert prod.app.health_url == "http://127.0.0.1:8001/health"
    assert prod.app.process_patterns == ("flask", "vite")
    assert prod.app.start_command == ("./start.sh", "production")
    assert prod.app.log_file == tmp_path / "logs/production.log"
    assert workspace.plans == (tmp_path / "plans/phase1.sql", tmp_path / "plans/hotfix.sql")
    assert workspace.checks == (("no_null_root", "SELECT COUNT(*) FROM goals WHERE root_id IS NULL"),)
    assert workspace.names() == ["development", "production"]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("[environments.prod]\ndatabase = 'a.db'\ndatabse = 'b.db'\n", "unknown key 'environments.prod.databse'. Did you mean 'environments.prod.database'?"),
        ("[environments.prod]\nreference = true\n", "'environments.prod.database' is missing"),
        ("[environments.a]\ndatabase='a.db'\nreference=true\n[environments.b]\ndatabase='b.db'\nreference=true\n", "'environments.b.reference': more than one reference environment (a, b)"),
        ("[environments.a]\ndatabase='x.db'\n[environments.b]\ndatabase='./x.db'\n", "'environments.b.database' names the same file as environment 'a'"),
        ("[environments.a]\ndatabase='a.db'\n[environments.a]\ndatabase='b.db'\n", "TOML syntax error"),
        ("[environments.a\ndatabase='a.db'\n", "TOML syntax error"),
        ("[environment.a]\ndatabase='a.db'\n", "unknown key 'environment'. Did you mean 'environments'?"),
        ("", "no environments configured"),
        ("[environments.a]\ndatabase='a.db'\nreference='yes'\n", "'environments.a.reference' must be true or false"),
        ("[environments.a]\ndatabase='a.db'\n[migration]\nplans='p.sql'\n", "'migration.plans' must be a list of non-empty strings"),
        ("[environments.a]\ndatabase='a.db'\n[environments.a.app]\nport=70000\n", "'environments.a.app.port' must be a TCP port number"),
        ("[environments.a]\ndatabase='a.db'\n[environments.a.app]\nhealth_url='ftp://x'\n", "'environments.a.app.health_url' must be an http"),
        ('[environments."a b"]\ndatabase="a.db"\n', "'environments.a b': environment names use letters"),
        ("[environments.a]\ndatabase='a.db'\n[checks]\nempty=''\n", "'checks.empty' must be an SQL query string"),
    ],
)
def test_bad_config_names_the_file_and_the_key(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_workspace(path)
    assert str(path) in caught.value.message
    assert expected in caught.value.message
    assert caught.value.exit_code == 2


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_workspace(tmp_path / "nope.toml")


def test_config_path_that_is_a_directory(tmp_path):
    with pytest.raises(ConfigError, match="is a directory"):
        load_workspace(tmp_path)


def test_config_that_is_not_utf8(tmp_path):
    path = tmp_path / "cutover.toml"
    path.write_bytes(b"[environments.a]\ndatabase = '\xff.db'\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_workspace(path)


def test_loading_never_touches_the_databases(tmp_path):
    load_workspace(write(tmp_path, VALID))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cutover.toml"]


def test_verification_settings(tmp_path):
    path = write(tmp_path, VALID + """
[verification]
smoke = ["DELETE FROM practice_sessions WHERE id = -1"]
accepted_differences = ["column goals.target_date", "table legacy_notes"]
declared_row_changes = { audit_log = 3 }
monitor_hours = 0.5
monitor_interval_minutes = 1
""")
    settings = load_workspace(path).verification
    assert settings.smoke == ("DELETE FROM practice_sessions WHERE id = -1",)
    assert settings.accepted_differences == (("column", "goals", "target_date"), ("table", None, "legacy_notes"))
    assert settings.declared_row_changes == (("audit_log", 3),)
    assert (settings.monitor_hours, settings.monitor_interval_minutes) == (0.5, 1.0)


def test_verification_defaults_are_the_runbooks(tmp_path):
    settings = load_workspace(write(tmp_path, VALID)).verification
    assert (settings.monitor_hours, settings.monitor_interval_minutes, settings.smoke) == (24.0, 15.0, ())


@pytest.mark.parametrize("body, expected", [
    ("monitor_hours = 0", "'verification.monitor_hours' must be a positive number"),
    ("monitor_interval_minutes = 'often'", "'verification.monitor_interval_minutes' must be a positive number"),
    ("accepted_differences = ['goals.target_date']", "must read 'OBJECT NAME'"),
    ("declared_row_changes = 'many'", "'verification.declared_row_changes' must be a table"),
    ("declared_row_changes = { audit_log = 'many' }", "'verification.declared_row_changes.audit_log' must be a whole number"),
    ("smok = []", "unknown key 'verification.smok'. Did you mean 'verification.smoke'?"),
])
def test_bad_verification_settings(tmp_path, body, expected):
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.").replace("?", r"\?").replace("[", r"\[")):
        load_workspace(write(tmp_path, VALID + "\n[verification]\n" + body + "\n"))


# --- one file, several paths: compared by device and inode, never by spelling -----------------

TWO = "[environments.development]\ndatabase = '{dev}'\nreference = true\n[environments.production]\ndatabase = '{prod}'\n"


def sqlite_file(path: Path) -> Path:
    import sqlite3

    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x)")
    conn.close()
    return path


def alias_hard_link(tmp_path):
    (tmp_path / "prod").mkdir()
    (tmp_path / "prod/goals.db").hardlink_to(sqlite_file(tmp_path / "dev/goals_dev.db"))
    return "dev/goals_dev.db", "prod/goals.db"


def alias_symlink(tmp_path):
    sqlite_file(tmp_path / "dev/goals_dev.db")
    (tmp_path / "goals.db").symlink_to(tmp_path / "dev/goals_dev.db")
    return "dev/goals_dev.db", "goals.db"


def alias_symlinked_folder(tmp_path):
    sqlite_file(tmp_path / "dev/goals_dev.db")
    (tmp_path / "mnt").symlink_to(tmp_path / "dev")
    return "dev/goals_dev.db", str(tmp_path / "mnt/goals_dev.db")


def alias_dotdot_through_a_symlink(tmp_path):
    # link/.. is the link target's parent, not tmp_path: only the file system knows.
    sqlite_file(tmp_path / "srv/goals.db")
    (tmp_path / "srv/app").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "srv/app")
    return "srv/goals.db", "link/../goals.db"


def alias_not_created_yet(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    return "real/new.db", "alias/./new.db"


@pytest.mark.parametrize("make_alias", [alias_hard_link, alias_symlink, alias_symlinked_folder,
                                        alias_dotdot_through_a_symlink, alias_not_created_yet])
def test_two_environments_on_one_file_are_refused_at_load(tmp_path, make_alias):
    dev, prod = make_alias(tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*.db") if p.is_file()}
    path = write(tmp_path, TWO.format(dev=dev, prod=prod))
    with pytest.raises(ConfigError) as caught:
        load_workspace(path)
    message = caught.value.message
    assert message.startswith(f"{path}: 'environments.production.database' names the same file as environment "
                              "'development'")
    assert "\n" not in message and caught.value.exit_code == 2
    assert {p: p.read_bytes() for p in tmp_path.rglob("*.db") if p.is_file()} == before


def test_two_distinct_files_are_fine_even_with_one_name_and_one_content(tmp_path):
    sqlite_file(tmp_path / "dev/goals.db")
    (tmp_path / "prod").mkdir()
    (tmp_path / "prod/goals.db").write_bytes((tmp_path / "dev/goals.db").read_bytes())
    (tmp_path / "link").symlink_to(tmp_path / "prod")
    workspace = load_workspace(write(tmp_path, TWO.format(dev="dev/goals.db", prod="link/../dev/../prod/goals.db")))
    assert [env.location.name for env in workspace.environments] == ["goals.db", "goals.db"]


def test_a_database_given_through_a_symbolic_link_is_refused_as_it_could_not_be_restored(tmp_path):
    real = sqlite_file(tmp_path / "data/goals.db")
    (tmp_path / "goals.db").symlink_to(real)
    path = write(tmp_path, "[environments.production]\ndatabase = 'goals.db'\n")
    with pytest.raises(ConfigError) as caught:
        load_workspace(path)
    assert caught.value.message.startswith(
        f"{path}: 'environments.production.database' ({tmp_path / 'goals.db'}) is a symbolic link to {real}: "
        "a restore would replace the link, not the database")
    assert (tmp_path / "goals.db").is_symlink()


def test_two_files_not_created_yet_in_one_folder_are_fine(tmp_path):
    load_workspace(write(tmp_path, TWO.format(dev="new/dev.db", prod="new/prod.db")))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cutover.toml"]


def test_one_backup_folder_listed_twice_under_two_names_is_refused(tmp_path):
    (tmp_path / "backups").mkdir()
    (tmp_path / "safe").symlink_to(tmp_path / "backups")
    path = write(tmp_path, "[environments.production]\ndatabase = 'goals.db'\nbackup_dirs = ['backups', 'safe']\n")
    with pytest.raises(ConfigError) as caught:
        load_workspace(path)
    assert caught.value.message == (
        f"{path}: 'environments.production.backup_dirs' names one folder twice ({tmp_path / 'backups'} and "
        f"{tmp_path / 'safe'}): a backup would count two copies where there is one. List each backup folder once.")


def test_one_plan_listed_twice_under_two_names_is_refused(tmp_path):
    (tmp_path / "plans").mkdir()
    (tmp_path / "plans/001.sql").write_text("DELETE FROM t WHERE x = 1;\n")
    (tmp_path / "plans/again.sql").hardlink_to(tmp_path / "plans/001.sql")
    path = write(tmp_path, "[environments.production]\ndatabase = 'goals.db'\n"
                           "[migration]\nplans = ['plans/001.sql', 'plans/again.sql']\n")
    with pytest.raises(ConfigError, match="'migration.plans' names one file twice .*its statements would run twice"):
        load_workspace(path)


# --- every number in the file: type, finiteness and range, one line naming the file and the key ---

ONE = "[environments.production]\ndatabase = 'goals.db'\n"
# key -> (how to write it in cutover.toml, values it takes, what the message says it accepts)
NUMBER_KEYS = {
    "verification.monitor_hours": (
        "[verification]\nmonitor_hours = {}\n", ["0.0005", "24", "8784"],
        "a positive number of hours, at most 8784"),
    "verification.monitor_interval_minutes": (
        "[verification]\nmonitor_interval_minutes = {}\n", ["0.005", "15", "1440"],
        "a positive number of minutes, at most 1440"),
    "verification.check_time_limit_seconds": (
        "[verification]\ncheck_time_limit_seconds = {}\n", ["0.5", "60", "86400"],
        "a positive number of seconds, at most 86400"),
    "verification.declared_row_changes.audit_log": (
        "[verification]\ndeclared_row_changes = {{ audit_log = {} }}\n", ["-3", "0", "9223372036854775807"],
        "a whole number from -9223372036854775807 to 9223372036854775807"),
    "environments.production.app.port": (
        "[environments.production.app]\nport = {}\n", ["1", "8001", "65535"],
        "a TCP port number from 1 to 65535"),
    "checklist.steps.notify.timeout": (
        "[checklist.steps.notify]\nkind = 'command'\nargv = ['true']\ntimeout = {}\n", ["0.1", "30", "604800"],
        "a positive number of seconds, at most 604800"),
}
BAD_NUMBERS = {
    "nan": "nan", "inf": "inf", "-inf": "-inf", "+inf": "inf", "1e300": "1e+300", "-1": "-1", "-0.5": "-0.5",
    "true": "true", "false": "false", "'30'": '"30"', "[30]": "[30]", "{ a = 1 }": "{'a': 1}",
    "99999999999999999999999": "99999999999999999999999", "1979-05-27": "1979-05-27",
}
ZERO_INVALID = {key for key in NUMBER_KEYS if not key.startswith("verification.declared_row_changes")}
WHOLE = {"verification.declared_row_changes.audit_log", "environments.production.app.port"}


def bad_values(key: str) -> list[tuple[str, str]]:
    values = [(text, shown) for text, shown in BAD_NUMBERS.items()
              if not (key.startswith("verification.declared_row_changes") and text in ("-1",))]
    if key in ZERO_INVALID:
        values += [("0", "0"), ("0.0", "0.0")]
    if key in WHOLE:
        values += [("80.0", "80.0"), ("1.5", "1.5")]
    if key == "environments.production.app.port":
        values += [("65536", "65536")]
    return values


@pytest.mark.parametrize("key, text, shown", [(key, text, shown) for key in NUMBER_KEYS
                                              for text, shown in bad_values(key)])
def test_every_number_refuses_what_is_not_a_sane_finite_number(tmp_path, key, text, shown):
    template, _, accepted = NUMBER_KEYS[key]
    path = write(tmp_path, ONE + template.format(text))
    with pytest.raises(ConfigError) as caught:
        load_workspace(path)
    assert caught.value.message == f"{path}: '{key}' must be {accepted}; it is {shown}."
    assert caught.value.exit_code == 2


@pytest.mark.parametrize("key, text", [(key, text) for key, (_, good, _) in NUMBER_KEYS.items() for text in good])
def test_every_number_takes_its_whole_range(tmp_path, key, text):
    template = NUMBER_KEYS[key][0]
    load_workspace(write(tmp_path, ONE + template.format(text)))


def test_an_integer_too_long_for_python_is_one_line_not_a_traceback(tmp_path):
    path = write(tmp_path, ONE + "[verification]\nmonitor_hours = " + "9" * 5000 + "\n")
    with pytest.raises(ConfigError) as caught:
        load_workspace(path)
    assert caught.value.message.startswith(f"{path}: cannot be read: ") and "\n" not in caught.value.message


@pytest.mark.parametrize("text, key", [
    ('[environments.a]\ndatabase = "a\\u0000.db"\n', "environments.a.database"),
    ('[environments.a]\ndatabase = "a.db"\nbackup_dirs = ["b\\u0000"]\n', "environments.a.backup_dirs"),
    ('[environments.a]\ndatabase = "a.db"\n[environments.a.app]\nlog_file = "l\\u0000.log"\n', "environments.a.app.log_file"),
    ('[environments.a]\ndatabase = "a.db"\n[migration]\nplans = ["p\\u0000.sql"]\n', "migration.plans"),
])
def test_a_path_with_a_nul_character_is_one_line_not_a_traceback(tmp_path, text, key):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_workspace(path)
    assert caught.value.message == f"{path}: '{key}' cannot hold a NUL character (\\u0000): no file has that name."


def test_an_environment_names_its_target_through_the_sqlite_engine(tmp_path):
    from app.core.engines.sqlite import SQLiteEngine
    from app.core.workspace import Environment

    env = Environment("production", tmp_path / "app.db")
    assert isinstance(env.target, SQLiteEngine) and env.target.location == tmp_path / "app.db"
    assert "engine_name" not in env.to_dict()  # the published shape is unchanged
    assert env.target is env.target  # picked once, not at every use


def test_an_environment_is_shown_by_its_label_and_published_as_before(tmp_path):
    from app.core.workspace import Environment

    env = Environment("production", tmp_path / "app.db", backup_dirs=(tmp_path / "b",))
    assert env.label == str(tmp_path / "app.db")
    assert env.to_dict() == {"name": "production", "engine": "sqlite", "database": str(tmp_path / "app.db"), "reference": False,
                             "backup_dirs": [str(tmp_path / "b")], "description": ""}


def test_two_spellings_of_one_file_are_one_target(tmp_path):
    from app.core.workspace import Environment

    (tmp_path / "app.db").write_bytes(b"")
    (tmp_path / "sub").mkdir()
    os.link(tmp_path / "app.db", tmp_path / "linked.db")
    one = Environment("a", tmp_path / "app.db").target
    assert one.identity() == Environment("b", tmp_path / "sub/../app.db").target.identity()
    assert one.identity() == Environment("c", tmp_path / "linked.db").target.identity()
    assert one.identity() != Environment("d", tmp_path / "other.db").target.identity()
    assert one.backup_name == "app.db"


# --- PostgreSQL environments -----------------------------------------------------------

POSTGRES_ENV = '[environments.production]\nurl = "postgresql://app@db.internal:5433/shop"\n'


def test_a_postgresql_environment_is_named_by_its_url(tmp_path):
    workspace = load_workspace(write(tmp_path, POSTGRES_ENV + 'password_env = "SHOP_PW"\nschemas = ["public", "billing"]\n'
                                     'online = true\n[migration]\nlock_timeout_seconds = 2.5\nstatement_timeout_seconds = 600\n'))
    env = workspace.environment("production")
    assert env.engine_name == "postgresql" and env.online
    assert env.to_dict()["url"] == "postgresql://app@db.internal:5433/shop" and "database" not in env.to_dict()
    location = env.target.location
    assert (location.password_env, location.schemas) == ("SHOP_PW", ("public", "billing"))
    assert (location.lock_timeout, location.statement_timeout) == (2.5, 600.0)


def test_migration_waits_default_to_five_seconds_for_locks_and_no_statement_limit(tmp_path):
    location = load_workspace(write(tmp_path, POSTGRES_ENV)).environment("production").target.location
    assert (location.lock_timeout, location.statement_timeout, location.schemas) == (5.0, None, ("public",))


@pytest.mark.parametrize("extra, expected", [
    ('database = "x.db"\n', "gives both 'database' and 'url'"),
    ('password_env = "not a name"\n', "must name an environment variable"),
    ("schemas = []\n", "names no schema"),
    ("online = 1\n", "'environments.production.online' must be true or false"),
    ("[migration]\nlock_timeout_seconds = 0\n", "'migration.lock_timeout_seconds' must be a positive number"),
])
def test_bad_postgresql_settings_name_the_key(tmp_path, extra, expected):
    with pytest.raises(ConfigError, match=re.escape(expected)):
        load_workspace(write(tmp_path, POSTGRES_ENV + extra))


@pytest.mark.parametrize("url, expected", [
    ("postgresql://app:hunter2@db/shop", "carries a password"),
    ("mysql://app@db/shop", "is not a PostgreSQL URL"),
    ("postgresql://app@db", "names no database"),
])
def test_bad_urls_are_refused_without_showing_a_password(tmp_path, url, expected):
    with pytest.raises(ConfigError) as caught:
        load_workspace(write(tmp_path, f'[environments.production]\nurl = "{url}"\n'))
    assert expected in caught.value.message and "hunter2" not in caught.value.message


def test_postgresql_settings_on_a_sqlite_environment_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="applies to PostgreSQL environments"):
        load_workspace(write(tmp_path, '[environments.production]\ndatabase = "x.db"\nonline = true\n'))


def test_two_environments_on_one_postgresql_database_are_refused(tmp_path):
    text = POSTGRES_ENV + '[environments.copy]\nurl = "postgresql://other@DB.internal:5433/shop"\n'
    with pytest.raises(ConfigError, match="names the same database as environment 'production'"):
        load_workspace(write(tmp_path, text))


# --------------------------------------------------------------------------- [migration] alembic

ALEMBIC_ONLY = '[environments.production]\ndatabase = "goals.db"\n\n[migration]\n'


def test_alembic_names_the_applications_ini_relative_to_the_file(tmp_path):
    import sys

    workspace = load_workspace(write(tmp_path, ALEMBIC_ONLY + 'alembic = "../app/alembic.ini"\n'))
    assert workspace.alembic.ini == tmp_path / ".." / "app" / "alembic.ini"
    assert workspace.alembic.python == sys.executable and workspace.plans == ()


def test_alembic_python_is_a_path_relative_to_the_file_or_a_command(tmp_path):
    relative = load_workspace(write(tmp_path, ALEMBIC_ONLY + 'alembic = "a.ini"\nalembic_python = ".venv/bin/python"\n'))
    assert relative.alembic.python == str(tmp_path / ".venv" / "bin" / "python")
    command = load_workspace(write(tmp_path, ALEMBIC_ONLY + 'alembic = "a.ini"\nalembic_python = "python3"\n'))
    assert command.alembic.python == "python3"


@pytest.mark.parametrize("body, message", [
    ('alembic = "a.ini"\nplans = ["p.sql"]\n', "names both 'plans' and 'alembic'"),
    ('alembic_python = "python3"\n', "'migration.alembic_python' needs 'migration.alembic'"),
    ('alembic = ""\n', "'migration.alembic' is missing"),
    ('alembic = 3\n', "'migration.alembic' is missing"),
])
def test_bad_alembic_settings_are_refused_by_name(tmp_path, body, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_workspace(write(tmp_path, ALEMBIC_ONLY + body))
