"""[checklist] in cutover.toml: the default runbook order, what a project may change, and
the one clear message (file and key) for each thing it refuses."""
import json
from pathlib import Path

import pytest

from app.core.checklist import BUILT_IN_KINDS, Checklist
from app.core.demo import create_demo_workspace
from app.core.errors import ConfigError
from app.core.workspace import load_workspace

# The demo's structure (app/core/demo.py DEMO_CONFIG), without the checklist.
BASE = """
[environments.development]
database = "goals_dev.db"
reference = true
backup_dirs = ["backups/development"]

[environments.production]
database = "goals.db"
backup_dirs = ["backups/local", "backups/offsite"]

[migration]
plans = ["plans/migrate.sql", "plans/extra.sql", "plans/hotfix.sql"]

[checks]
null_root_id_goals = "SELECT COUNT(*) FROM goals WHERE root_id IS NULL"
"""

RUNBOOK = ["verify-target", "app-stopped", "data-volume", "backup", "integrity", "rehearse",
           "migrate", "hotfix", "verify", "start-app", "smoke", "monitor"]

NOTIFY = """
[checklist.steps.notify-team]
kind = "command"
argv = ["/usr/local/bin/notify", "--channel", "ops"]
"""


def write(tmp_path: Path, checklist: str = "") -> Path:
    path = tmp_path / "cutover.toml"
    path.write_text(BASE + checklist)
    return path


def load(tmp_path: Path, checklist: str = "") -> Checklist:
    return load_workspace(write(tmp_path, checklist)).checklist


def refusal(tmp_path: Path, checklist: str) -> str:
    path = write(tmp_path, checklist)
    with pytest.raises(ConfigError) as caught:
        load_workspace(path)
    assert caught.value.message.startswith(f"{path}: "), caught.value.message
    assert caught.value.exit_code == 2
    return caught.value.message


# --------------------------------------------------------------------------- the default


def test_default_checklist_is_the_twelve_runbook_steps_in_order(tmp_path):
    checklist = load(tmp_path)
    assert checklist.ids() == RUNBOOK
    assert [step.kind for step in checklist.steps] == list(BUILT_IN_KINDS) == RUNBOOK


def test_each_default_step_requires_every_earlier_step(tmp_path):
    for index, step in enumerate(load(tmp_path).steps):
        assert step.requires == tuple(RUNBOOK[:index]), step.id


def test_default_sign_offs_are_target_rehearsal_and_smoke_and_nothing_needs_approval(tmp_path):
    steps = load(tmp_path).steps
    assert [s.id for s in steps if s.signoff] == ["verify-target", "rehearse", "smoke"]
    assert not any(s.approval for s in steps)


def test_default_hotfix_has_no_plans_and_no_step_is_a_command(tmp_path):
    checklist = load(tmp_path)
    assert checklist.step("hotfix").plans == ()
    assert all(step.argv == () and step.cwd is None for step in checklist.steps)


def test_an_empty_checklist_table_is_the_default(tmp_path):
    assert load(tmp_path, "[checklist]\n") == load(tmp_path)


def test_step_lookup_answers_none_for_an_unknown_id(tmp_path):
    checklist = load(tmp_path)
    assert checklist.step("migrate").kind == "migrate"
    assert checklist.step("nope") is None


# --------------------------------------------------------------------------- what a project may change


def test_order_reorders_and_subsets_the_steps(tmp_path):
    checklist = load(tmp_path, """
[checklist]
order = ["app-stopped", "verify-target", "backup", "rehearse", "migrate", "verify"]
""")
    assert checklist.ids() == ["app-stopped", "verify-target", "backup", "rehearse", "migrate", "verify"]
    assert checklist.step("verify-target").requires == ("app-stopped",)
    assert checklist.step("verify").requires == ("app-stopped", "verify-target", "backup", "rehearse", "migrate")
    assert checklist.step("integrity") is None


def test_a_command_step_keeps_argv_env_stdin_and_timeout_and_resolves_cwd(tmp_path):
    step = load(tmp_path, NOTIFY + """
env = { CHANNEL = "ops", LEVEL = "2" }
cwd = "hooks"
stdin = "cutover finished\\n"
timeout = 30
""").step("notify-team")
    assert step.kind == "command"
    assert step.argv == ("/usr/local/bin/notify", "--channel", "ops")
    assert dict(step.env) == {"CHANNEL": "ops", "LEVEL": "2"}
    assert step.cwd == str(tmp_path / "hooks")
    assert step.stdin == "cutover finished\n"
    assert step.timeout == 30.0 and isinstance(step.timeout, float)
    assert step.title == "Notify team"


def test_a_command_step_keeps_an_absolute_cwd_and_defaults_to_no_timeout(tmp_path):
    step = load(tmp_path, NOTIFY + 'cwd = "/srv/hooks"\n').step("notify-team")
    assert step.cwd == "/srv/hooks"
    assert (step.timeout, step.stdin, step.env) == (None, "", ())


def test_an_extra_step_goes_after_the_runbook_when_there_is_no_order(tmp_path):
    checklist = load(tmp_path, NOTIFY)
    assert checklist.ids() == RUNBOOK + ["notify-team"]
    assert checklist.step("notify-team").requires == tuple(RUNBOOK)


def test_an_extra_step_goes_where_the_order_puts_it(tmp_path):
    checklist = load(tmp_path, '[checklist]\norder = ["verify-target", "notify-team", "backup"]\n' + NOTIFY)
    assert checklist.ids() == ["verify-target", "notify-team", "backup"]
    assert checklist.step("backup").requires == ("verify-target", "notify-team")


@pytest.mark.parametrize("text", ['instructions = "Tell the on-call engineer in #ops."',
                                  'description = "Tell the on-call engineer in #ops."'])
def test_a_manual_step_needs_only_instructions_or_a_description(tmp_path, text):
    step = load(tmp_path, f'[checklist.steps.tell-oncall]\nkind = "manual"\ntitle = "Tell on-call"\n{text}\n').step("tell-oncall")
    assert (step.kind, step.title) == ("manual", "Tell on-call")
    assert "Tell the on-call engineer" in step.instructions + step.description


def test_a_built_in_step_takes_a_title_sign_off_and_approval(tmp_path):
    step = load(tmp_path, """
[checklist.steps.migrate]
title = "Migrate production"
signoff = true
approval = true
""").step("migrate")
    assert (step.kind, step.title, step.signoff, step.approval) == ("migrate", "Migrate production", True, True)
    assert "one transaction" in step.description  # the built-in description is kept


def test_a_built_in_sign_off_can_be_turned_off(tmp_path):
    assert load(tmp_path, "[checklist.steps.smoke]\nsignoff = false\n").step("smoke").signoff is False


def test_explicit_requires_replace_every_earlier_step(tmp_path):
    checklist = load(tmp_path, '[checklist.steps.start-app]\nrequires = ["verify", "migrate"]\n')
    assert checklist.step("start-app").requires == ("verify", "migrate")
    assert checklist.step("smoke").requires == tuple(RUNBOOK[:10])


def test_hotfix_plans_resolve_against_the_config_folder(tmp_path):
    step = load(tmp_path, '[checklist.steps.hotfix]\nplans = ["./plans/hotfix.sql"]\n').step("hotfix")
    assert step.plans == (str(tmp_path / "plans/hotfix.sql"),)


def test_hotfix_may_take_the_last_two_plans_in_order(tmp_path):
    step = load(tmp_path, '[checklist.steps.hotfix]\nplans = ["plans/extra.sql", "plans/hotfix.sql"]\n').step("hotfix")
    assert step.plans == (str(tmp_path / "plans/extra.sql"), str(tmp_path / "plans/hotfix.sql"))


def test_hotfix_plan_spelt_another_way_is_the_configured_plan_and_is_left_out_of_the_migrate_step(tmp_path):
    (tmp_path / "plans").mkdir()
    for name in ("migrate.sql", "extra.sql", "hotfix.sql"):
        (tmp_path / "plans" / name).write_text("SELECT 1;\n")
    (tmp_path / "fixes").symlink_to(tmp_path / "plans")
    step = load(tmp_path, '[checklist.steps.hotfix]\nplans = ["fixes/../plans/./hotfix.sql"]\n').step("hotfix")
    # The [migration] spelling: the migrate step runs every plan but these, compared as text.
    assert step.plans == (str(tmp_path / "plans/hotfix.sql"),)


def test_hotfix_plan_that_is_the_same_file_by_a_hard_link_is_the_configured_plan(tmp_path):
    (tmp_path / "plans").mkdir()
    for name in ("migrate.sql", "extra.sql", "hotfix.sql"):
        (tmp_path / "plans" / name).write_text("SELECT 1;\n")
    (tmp_path / "urgent.sql").hardlink_to(tmp_path / "plans/hotfix.sql")
    step = load(tmp_path, '[checklist.steps.hotfix]\nplans = ["urgent.sql"]\n').step("hotfix")
    assert step.plans == (str(tmp_path / "plans/hotfix.sql"),)


# --------------------------------------------------------------------------- the demo workspace


def test_demo_workspace_hotfix_step_applies_the_hotfix_plan(tmp_path):
    workspace = load_workspace(create_demo_workspace(tmp_path / "demo"))
    hotfix = workspace.checklist.step("hotfix")
    assert hotfix.plans == (str(tmp_path / "demo/plans/hotfix_activity_instances.sql"),)
    assert Path(hotfix.plans[0]) == workspace.plans[-1]
    assert len(workspace.plans) == 2
    assert workspace.checklist.ids() == RUNBOOK


def test_checklist_round_trips_through_to_list_and_from_list(tmp_path):
    checklist = load(tmp_path, NOTIFY + """
env = { CHANNEL = "ops" }
cwd = "hooks"
stdin = "done"
timeout = 2.5
[checklist.steps.hotfix]
plans = ["plans/hotfix.sql"]
approval = true
[checklist.steps.tell-oncall]
kind = "manual"
instructions = "Phone them."
requires = ["verify-target"]
""")
    assert Checklist.from_list(checklist.to_list()) == checklist
    # Runs keep their checklist as JSON: that trip must not change it either.
    assert Checklist.from_list(json.loads(json.dumps(checklist.to_list()))) == checklist


def test_default_checklist_object_is_the_default_configuration(tmp_path):
    assert Checklist() == load(tmp_path)


# --------------------------------------------------------------------------- what it refuses


@pytest.mark.parametrize("checklist, expected", [
    # [checklist] itself
    ("[checklist]\nsequence = []\n", "unknown key 'checklist.sequence'"),
    ("[checklist]\nsteps = [1]\n", "'checklist.steps' must be a table"),
    ("[checklist]\norder = []\n", "'checklist.order' must be a non-empty list of step ids"),
    ("[checklist]\norder = \"verify-target\"\n", "'checklist.order' must be a non-empty list"),
    ('[checklist]\norder = ["verify-target", "nope"]\n', "'checklist.order' names step 'nope', which is neither built in"),
    ('[checklist]\norder = ["verify-target", "backup", "verify-target"]\n', "'checklist.order' lists step 'verify-target' twice"),
    ('[checklist]\norder = ["verify-target", "backup"]\n' + NOTIFY,
     "'checklist.steps.notify-team' is not in 'checklist.order'"),
    ('[checklist]\norder = ["verify-target"]\n[checklist.steps.smoke]\nsignoff = false\n',
     "'checklist.steps.smoke' is not in 'checklist.order'"),
    # a step's id, kind and keys
    ('[checklist.steps.migrate]\naproval = true\n', "unknown key 'checklist.steps.migrate.aproval'"),
    ('[checklist.steps.Notify_Team]\nkind = "manual"\ninstructions = "x"\n',
     "'checklist.steps.Notify_Team': step ids use lower-case letters"),
    ('[checklist.steps.notify]\nargv = ["x"]\n', "'checklist.steps.notify.kind' must be one of"),
    ('[checklist.steps.notify]\nkind = "shell"\nargv = ["x"]\n', "'checklist.steps.notify.kind' must be one of"),
    ('[checklist.steps.notify]\nkind = 3\n', "'checklist.steps.notify.kind' must be a string"),
    ("[checklist.steps]\nnotify = 1\n", "'checklist.steps.notify' must be a table"),
    ('[checklist.steps.smoke]\ntitle = 5\n', "'checklist.steps.smoke.title' must be a string"),
    ('[checklist.steps.tell]\nkind = "manual"\n', "'checklist.steps.tell' is a manual step: say what to do in 'instructions'"),
    # keys for another kind of step
    ('[checklist.steps.verify]\nargv = ["x"]\n', "'checklist.steps.verify.argv' is only for steps of kind \"command\""),
    ('[checklist.steps.tell]\nkind = "manual"\ninstructions = "x"\ntimeout = 5\n',
     "'checklist.steps.tell.timeout' is only for steps of kind \"command\""),
    ('[checklist.steps.migrate]\nplans = ["plans/hotfix.sql"]\n', "'checklist.steps.migrate.plans' is only for the hotfix step"),
    ('[checklist.steps.hotfix]\nkind = "manual"\ninstructions = "x"\nplans = ["plans/hotfix.sql"]\n',
     "'checklist.steps.hotfix.plans' is only for the hotfix step"),
    # a command's settings
    ('[checklist.steps.notify]\nkind = "command"\n', "'checklist.steps.notify.argv' must be a non-empty list of strings"),
    ('[checklist.steps.notify]\nkind = "command"\nargv = []\n', "'checklist.steps.notify.argv' must be a non-empty list"),
    ('[checklist.steps.notify]\nkind = "command"\nargv = "notify --all"\n', "'checklist.steps.notify.argv' must be a list"),
    ('[checklist.steps.notify]\nkind = "command"\nargv = ["notify", ""]\n', "'checklist.steps.notify.argv' must be a list of non-empty strings"),
    (NOTIFY + "env = { RETRIES = 3 }\n", "'checklist.steps.notify-team.env' must be a table of NAME = \"value\" strings"),
    (NOTIFY + 'env = ["A=1"]\n', "'checklist.steps.notify-team.env' must be a table"),
    (NOTIFY + "timeout = 0\n", "'checklist.steps.notify-team.timeout' must be a positive number of seconds"),
    (NOTIFY + "timeout = -5\n", "'checklist.steps.notify-team.timeout' must be a positive number"),
    (NOTIFY + 'timeout = "30"\n', "'checklist.steps.notify-team.timeout' must be a positive number"),
    (NOTIFY + "timeout = true\n", "'checklist.steps.notify-team.timeout' must be a positive number"),
    (NOTIFY + "cwd = 7\n", "'checklist.steps.notify-team.cwd' must be a string"),
    (NOTIFY + "stdin = [1]\n", "'checklist.steps.notify-team.stdin' must be a string"),
    # switches
    ('[checklist.steps.migrate]\nsignoff = "yes"\n', "'checklist.steps.migrate.signoff' must be true or false"),
    ('[checklist.steps.migrate]\napproval = 1\n', "'checklist.steps.migrate.approval' must be true or false"),
    # requires
    ('[checklist.steps.backup]\nrequires = ["migrate"]\n', "'checklist.steps.backup.requires' names 'migrate', which comes after it"),
    ('[checklist.steps.smoke]\nrequires = ["nope"]\n', "'checklist.steps.smoke.requires' names 'nope', which does not exist"),
    ('[checklist]\norder = ["verify-target", "backup"]\n[checklist.steps.backup]\nrequires = ["integrity"]\n',
     "'checklist.steps.backup.requires' names 'integrity', which does not exist"),
    ('[checklist.steps.smoke]\nrequires = "verify"\n', "'checklist.steps.smoke.requires' must be a list of non-empty strings"),
])
def test_each_mistake_names_the_file_and_the_key(tmp_path, checklist, expected):
    assert expected in refusal(tmp_path, checklist)


def test_a_step_that_requires_itself_is_told_so(tmp_path):
    assert "'checklist.steps.smoke.requires' names 'smoke', which is the step itself" in refusal(
        tmp_path, '[checklist.steps.smoke]\nrequires = ["smoke"]\n')


@pytest.mark.parametrize("plans", [
    '["plans/migrate.sql"]',                                         # not the last one
    '["plans/hotfix.sql", "plans/extra.sql"]',                       # the last two, out of order
    '["plans/migrate.sql", "plans/extra.sql", "plans/hotfix.sql"]',  # all of them: nothing left to migrate
    '["plans/other.sql"]',                                           # not a configured plan at all
    '["/elsewhere/plans/hotfix.sql"]',                               # same name, another file
])
def test_hotfix_plans_must_be_the_last_of_the_migration_plans_and_not_all(tmp_path, plans):
    message = refusal(tmp_path, f"[checklist.steps.hotfix]\nplans = {plans}\n")
    assert "'checklist.steps.hotfix.plans' must be the last of [migration] plans, in the same order" in message
    assert "cannot be all of them" in message


def test_hotfix_plans_need_migration_plans(tmp_path):
    path = tmp_path / "cutover.toml"
    path.write_text(BASE.replace('plans = ["plans/migrate.sql", "plans/extra.sql", "plans/hotfix.sql"]', "")
                    + '[checklist.steps.hotfix]\nplans = ["plans/hotfix.sql"]\n')
    with pytest.raises(ConfigError, match=r"'checklist\.steps\.hotfix\.plans' must be the last of \[migration\] plans"):
        load_workspace(path)


# --------------------------------------------------------------------------- what the OS or the runner cannot take


@pytest.mark.parametrize("timeout", ["nan", "inf", "-inf"])
def test_a_command_timeout_must_be_a_finite_number(tmp_path, timeout):
    # nan killed the command at once; inf crashed the timer thread, leaving no time limit at all.
    assert "'checklist.steps.notify-team.timeout' must be a positive number of seconds" in refusal(
        tmp_path, NOTIFY + f"timeout = {timeout}\n")


@pytest.mark.parametrize("env", ['{ "A=B" = "1" }', '{ "" = "1" }', '{ "A\\u0000" = "1" }', '{ A = "x\\u0000y" }'])
def test_command_environment_names_and_values_must_be_usable(tmp_path, env):
    assert "'checklist.steps.notify-team.env'" in refusal(tmp_path, NOTIFY + f"env = {env}\n")


@pytest.mark.parametrize("key, value", [("argv", '["notify", "a\\u0000b"]'), ("stdin", '"a\\u0000b"'),
                                        ("cwd", '"hooks\\u0000"')])
def test_command_strings_cannot_hold_a_nul_byte(tmp_path, key, value):
    text = NOTIFY.replace('argv = ["/usr/local/bin/notify", "--channel", "ops"]\n', "") if key == "argv" else NOTIFY
    message = refusal(tmp_path, text + f"{key} = {value}\n")
    assert f"'checklist.steps.notify-team.{key}'" in message
    assert "NUL" in message


@pytest.mark.parametrize("order, step, needs", [
    ('["verify-target", "rehearse", "migrate"]', "migrate", "backup"),
    ('["verify-target", "migrate", "backup", "rehearse"]', "migrate", "backup"),
    ('["verify-target", "backup", "migrate", "rehearse"]', "migrate", "rehearse"),
    ('["verify-target", "backup", "rehearse", "hotfix", "migrate"]', "hotfix", "migrate"),
    ('["verify-target", "integrity", "backup"]', "integrity", "backup"),
])
def test_a_step_whose_prerequisite_is_missing_or_later_is_refused(tmp_path, order, step, needs):
    # The step would refuse to run at every attempt: the run could never finish.
    message = refusal(tmp_path, f"[checklist]\norder = {order}\n")
    assert f"'checklist.order': step '{step}' needs a {needs} step before it" in message


def test_a_backup_step_turned_manual_leaves_the_steps_after_it_without_their_backup(tmp_path):
    message = refusal(tmp_path, '[checklist.steps.backup]\nkind = "manual"\ninstructions = "Copy the file."\n')
    assert "step 'integrity' needs a backup step before it" in message


@pytest.mark.parametrize("kind, extra", [("migrate", ""), ("hotfix", 'plans = ["plans/hotfix.sql"]\n')])
def test_a_second_migrate_or_hotfix_step_is_refused(tmp_path, kind, extra):
    # Every hotfix step applies every hotfix plan, and every migrate step all the others.
    message = refusal(tmp_path, f'[checklist.steps.{kind}]\n{extra}[checklist.steps.{kind}-again]\nkind = "{kind}"\n{extra}')
    assert f"'checklist.steps.{kind}-again.kind': a checklist has at most one {kind} step" in message


def test_a_minimal_order_with_its_prerequisites_is_accepted(tmp_path):
    order = '["backup", "integrity", "rehearse", "migrate", "hotfix"]'
    checklist = load(tmp_path, f'[checklist]\norder = {order}\n[checklist.steps.hotfix]\nplans = ["plans/hotfix.sql"]\n')
    assert checklist.ids() == ["backup", "integrity", "rehearse", "migrate", "hotfix"]
