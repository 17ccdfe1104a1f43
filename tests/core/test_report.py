"""The completion report as Markdown: every section, criteria ticked from facts only, and no
text from a log, a note or a schema able to become markup, a new line or the end of a fence."""
import re

import pytest

from app.core.report import render_markdown

SECTIONS = ["# Cutover completion report: run 7 on production", "## Success criteria", "## Steps",
            "## Timeline (UTC)", "## Sign-offs and approvals", "## Backup", "## Schema against the reference",
            "## Row-count ledger", "## Verification", "## Monitoring", "## Failures and how they were resolved",
            "## Log excerpts"]

# Everything an operator, a log or a database can put in a string to fake markup.
HOSTILE = ("<img src=x onerror=alert(1)> [link](http://evil) | pipes | *bold* _under_ ~~gone~~ `tick` "
           "\\[esc](http://evil) \\*star\\* \\\n# Injected")
FAKE_MARKUP = ["<img", "[link]", "](http", "*bold*", "_under_", "~~gone~~", "[esc]"]


def step(step_id: str, title: str, state: str = "passed", **changes) -> dict:
    return {"id": step_id, "title": title, "kind": step_id, "state": state, "reason": None, "attempts": 1,
            "operator": "alice", "started_at": "2026-01-02T09:00:00.000Z", "finished_at": "2026-01-02T09:00:04.000Z",
            "duration_seconds": 4.25, "excerpt": [], "signatures": [], **changes}


def facts() -> dict:
    """A finished run, in the shape app.reports.report_facts returns."""
    signature = {"id": 1, "kind": "signoff", "operator": "bob", "time": "2026-01-02T09:05:00.000Z",
                 "note": "looked fine", "job": 3, "log_sha256": "ab" * 32, "subject": "the result of job 3",
                 "subject_sha256": "cd" * 32, "valid": True, "why_not": None}
    return {
        "run": {"id": 7, "environment": "production", "database": "/srv/goals.db", "status": "finished",
                "status_note": None, "created_by": "alice", "created_at": "2026-01-02T08:59:00.000Z",
                "finished_at": "2026-01-03T10:00:00.000Z", "complete": True},
        "steps": [
            step("backup", "Back up (verified, every location)",
                 excerpt=[{"level": "info", "text": "Backing up goals.db"},
                          {"level": "gap", "text": "… 4 line(s) …"},
                          {"level": "ok", "text": "✓ Backup verified"}]),
            step("migrate", "Migrate", attempts=2, signatures=[signature]),
            step("hotfix", "Apply the hotfix", "skipped", reason="no hotfix plan is configured",
                 operator=None, duration_seconds=None, attempts=0),
        ],
        "timeline": [{"time": "2026-01-02T08:59:00.000Z", "text": "Run 7 created by alice"},
                     {"time": "2026-01-02T09:00:04.000Z", "text": "Migrate failed: no such column: group_id"}],
        "failures": [{"step": "Migrate", "job": 2, "state": "failed", "error": "no such column: group_id",
                      "time": "2026-01-02T09:00:04.000Z",
                      "resolution": "passed on retry (job 3, 2026-01-02T09:03:00.000Z, by alice)"}],
        "backup": {"id": "20260102T090000Z-1a2b", "sha256": "ef" * 32, "size_bytes": 1234567,
                   "created_at": "2026-01-02T09:00:00Z", "method": "online", "status_now": "verified",
                   "copies": ["/srv/backups/local/goals.db.20260102", "/mnt/offsite/goals.db.20260102"]},
        "schema": {"reference": "development", "before": [
            {"object": "column", "table": "activity_definitions", "name": "group_id", "fix": "additive",
             "explanation": "only in development; ALTER TABLE ... ADD COLUMN can add it."}], "after": []},
        "ledger": [
            {"table": "goals", "before": 1234567, "after": 1234570, "delta": 3, "declared": 3},
            {"table": "practice_sessions", "before": 25000, "after": 23800, "delta": -1200, "declared": None},
            {"table": "audit_log", "before": None, "after": 12, "delta": None, "declared": None},
            {"table": "notes", "before": 5, "after": 5, "delta": 0, "declared": None},
        ],
        "verification": {"passed": True, "checks": [
            {"name": "integrity", "passed": True, "summary": "ok"},
            {"name": "row_count_ledger", "passed": True, "summary": "no table lost rows"}]},
        "smoke": {"passed": False, "checks": [{"name": "smoke", "passed": False, "summary": "insert failed"}]},
        "monitoring": {"id": 4, "environment": "production", "state": "finished",
                       "started_at": "2026-01-02T10:00:00Z", "ends_at": "2026-01-03T10:00:00Z",
                       "interval_seconds": 900, "started_by": "alice", "reason": "", "ticks": 96,
                       "counts": {"passed": 95, "failed": 0, "missed": 1, "running": 0}, "clean": True},
        "criteria": [
            {"name": "Migration completed", "met": True, "evidence": "the migrate step committed"},
            {"name": "Hotfix applied", "met": False, "evidence": "no hotfix configured"},
            {"name": "No data loss", "met": None, "evidence": "no row-count ledger yet (verify step)"},
            {"name": "24 hours stable", "met": True, "evidence": "window 4 (finished)"},
        ],
    }


def hostile_facts(text: str = HOSTILE) -> dict:
    """Every operator-, log- or database-controlled string replaced by `text`."""
    f = facts()
    f["run"].update(environment=text, database=text, created_by=text, status_note=text)
    for item in f["criteria"]:
        item["evidence"] = text
    for s in f["steps"]:
        s.update(title=text, reason=text, operator=text)
    f["steps"][1]["signatures"][0].update(operator=text, note=text, subject=text, valid=False, why_not=text)
    for event in f["timeline"]:
        event["text"] = text
    f["failures"][0].update(step=text, error=text, resolution=text)
    f["backup"].update(id=text, status_now=text, copies=[text])
    f["schema"]["before"][0].update(table=text, name=text, explanation=text)
    f["schema"]["reference"] = text
    f["schema"]["after"] = None
    f["schema"]["after_error"] = text
    for row in f["ledger"]:
        row["table"] = text
    for check in f["verification"]["checks"] + f["smoke"]["checks"]:
        check.update(name=text, summary=text)
    return f


# --------------------------------------------------------------------------- reading Markdown as GFM does


def code_spans(line: str) -> tuple[str, list[str]]:
    """The line's text outside code spans (each replaced by "§") and the spans' contents, found
    the CommonMark way: a run of N backticks opens, the next run of exactly N closes."""
    outside, spans, i = [], [], 0
    while i < len(line):
        if line[i] == "\\" and i + 1 < len(line):
            outside.append(line[i:i + 2])
            i += 2
            continue
        if line[i] != "`":
            outside.append(line[i])
            i += 1
            continue
        fence = re.match(r"`+", line[i:]).group()
        closing = next((m for m in re.finditer(r"`+", line[i + len(fence):]) if m.group() == fence), None)
        if closing is None:
            outside.append(fence)
            i += len(fence)
            continue
        content = line[i + len(fence):i + len(fence) + closing.start()]
        # One space is stripped from each side when both are there (and it is not all spaces).
        padded = content.startswith(" ") and content.endswith(" ") and content.strip(" ")
        spans.append(content[1:-1] if padded else content)
        outside.append("§")
        i += len(fence) + closing.end()
    return "".join(outside), spans


def active(text: str) -> str:
    """`text` with every backslash-escaped character blanked: what is left can be markup."""
    return re.sub(r"\\[!-/:-@\[-`{-~]", "··", text)


def cells(row: str) -> list[str]:
    """A table row's cells: GFM splits on every pipe not preceded by a backslash, code spans
    included, then drops the backslash of each escaped pipe."""
    return [cell.replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", row.strip())[1:-1]]


def prose_lines(markdown: str) -> list[str]:
    """Every line outside fenced code blocks."""
    lines, fenced = [], False
    for line in markdown.split("\n"):
        if re.match(r"^ {0,3}```", line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def assert_no_markup_from(markdown: str, fragments=FAKE_MARKUP) -> None:
    for line in prose_lines(markdown):
        pieces = cells(line) if line.startswith("|") else [line]
        for piece in pieces:
            outside, _ = code_spans(piece)
            for fragment in fragments:
                assert fragment not in active(outside), f"{fragment!r} is markup in: {line}"


def skeleton(markdown: str) -> list[list[str]]:
    """The markup characters still active in each prose line, cell by cell (a pipe in a cell
    is a literal once GFM has split the row: the number of cells is what it decides)."""
    lines = []
    for line in prose_lines(markdown):
        pieces = cells(line) if line.startswith("|") else [line]
        lines.append([re.sub(r"[^<>\[\]*_~`!&]", "", active(code_spans(piece)[0])) for piece in pieces])
    return lines


def section(markdown: str, heading: str) -> str:
    start = markdown.index(heading + "\n")
    end = markdown.find("\n## ", start + len(heading))
    return markdown[start:] if end == -1 else markdown[start:end]


# --------------------------------------------------------------------------- sections


def test_every_section_is_present_in_order():
    markdown = render_markdown(facts())
    positions = [markdown.index(heading + "\n") for heading in SECTIONS]
    assert positions == sorted(positions)
    assert markdown.startswith(SECTIONS[0] + "\n") and markdown.endswith("```\n")


def test_summary_names_the_database_status_and_finish():
    summary = render_markdown(facts()).split("\n## ")[0]
    assert "- Database: `/srv/goals.db`" in summary
    assert "- Created by alice at 2026-01-02T08:59:00.000Z" in summary
    assert "- Status: **finished**" in summary
    assert "- Finished at 2026-01-03T10:00:00.000Z" in summary
    assert "Not complete" not in summary


def test_an_abandoned_run_says_so_with_its_status_note_and_what_was_done():
    f = facts()
    f["run"].update(status="abandoned", status_note="operator gave up", finished_at=None, complete=False,
                    steps_done=1, steps_total=3)
    summary = render_markdown(f).split("\n## ")[0]
    assert "- Status: **abandoned** (operator gave up)" in summary
    assert "- **Abandoned:** 1 of 3 steps were done; the others will not run in this run." in summary
    assert "not passed" not in summary and "yet" not in summary  # nothing more is coming
    assert "Finished at" not in summary


def test_an_open_incomplete_run_counts_what_is_done():
    f = facts()
    f["run"].update(status="open", finished_at=None, complete=False, steps_done=2, steps_total=3)
    summary = render_markdown(f).split("\n## ")[0]
    assert "- **Not complete yet:** 2 of 3 steps are done (see below)." in summary


def test_steps_table_has_one_row_per_step_with_state_duration_and_attempts():
    rows = [line for line in section(render_markdown(facts()), "## Steps").split("\n") if line.startswith("|")]
    assert rows[0] == "| # | Step | Result | Operator | Duration | Attempts |"
    assert rows[2] == "| 1 | Back up (verified, every location) | passed | alice | 4.2 s | 1 |"
    assert rows[3] == "| 2 | Migrate | passed | alice | 4.2 s | 2 |"
    assert rows[4] == "| 3 | Apply the hotfix | skipped: no hotfix plan is configured |  |  | 0 |"
    assert all(len(cells(row)) == 6 for row in rows)


def test_a_signed_off_step_reads_signed_off():
    f = facts()
    f["steps"][1]["state"] = "signed_off"
    assert "| 2 | Migrate | signed off | alice |" in render_markdown(f)


def test_sign_offs_show_who_when_the_log_and_subject_hashes():
    text = section(render_markdown(facts()), "## Sign-offs and approvals")
    assert (f"- Migrate: signed off by bob at 2026-01-02T09:05:00.000Z, note: looked fine; "
            f"log sha256 `{'ab' * 32}`, the result of job 3 sha256 `{'cd' * 32}`") in text
    assert "no longer counts" not in text


def test_a_void_approval_says_it_no_longer_counts():
    f = facts()
    f["steps"][1]["signatures"][0].update(kind="approval", valid=False, why_not="the plan changed", log_sha256="",
                                          subject_sha256="")
    text = section(render_markdown(f), "## Sign-offs and approvals")
    assert "- Migrate: approved by bob" in text
    assert "log sha256 `-`" in text and "sha256 `-` **no longer counts:** the plan changed" in text


def test_no_signatures_reads_none():
    f = facts()
    f["steps"][1]["signatures"] = []
    assert section(render_markdown(f), "## Sign-offs and approvals") == "## Sign-offs and approvals\n\nNone.\n"


def test_timeline_lists_each_event_with_its_time():
    text = section(render_markdown(facts()), "## Timeline (UTC)")
    assert "- 2026-01-02T08:59:00.000Z: Run 7 created by alice\n" in text
    assert "- 2026-01-02T09:00:04.000Z: Migrate failed: no such column: group\\_id" in text


def test_backup_shows_id_size_status_hash_and_every_copy():
    text = section(render_markdown(facts()), "## Backup")
    assert "- Id `20260102T090000Z-1a2b`, 1,234,567 bytes, method online, status now: **verified**" in text
    assert f"- sha256 `{'ef' * 32}`" in text
    assert "- Copy `/srv/backups/local/goals.db.20260102`\n- Copy `/mnt/offsite/goals.db.20260102`" in text


def test_schema_before_and_after_against_the_reference():
    text = section(render_markdown(facts()), "## Schema against the reference")
    assert "- Before (the run's backup): 1 difference(s)" in text
    assert ("  - column `activity_definitions.group_id` (additive): only in development; "
            "ALTER TABLE ... ADD COLUMN can add it.") in text
    assert "- After (the target now): matches development" in text


def test_schema_without_a_reference_or_with_an_unreadable_one():
    f = facts()
    f["schema"] = {"reference": None}
    assert "## Schema\n\nNo reference environment is configured." in render_markdown(f)
    f["schema"] = {"reference": "development", "error": "goals_dev.db is not a database"}
    assert "## Schema\n\nThe reference could not be read: goals\\_dev.db is not a database" in render_markdown(f)


def test_schema_says_why_the_target_could_not_be_read():
    f = facts()
    f["schema"].update(after=None, after_error="goals.db is locked")
    assert "- After (the target now): not available: goals.db is locked" in render_markdown(f)


def test_verification_and_smoke_checks_are_ticked_from_their_results():
    text = section(render_markdown(facts()), "## Verification")
    assert "- ✓ `integrity`: ok" in text
    assert "- ✓ `row_count_ledger`: no table lost rows" in text
    assert "- ✗ `smoke`: insert failed" in text


def test_monitoring_window_counts_and_gap():
    text = section(render_markdown(facts()), "## Monitoring")
    assert ("- Window 4: 2026-01-02T10:00:00Z to 2026-01-03T10:00:00Z, a tick every 900 s; state **finished**"
            in text)
    assert "- Ticks: 95 passed, 0 failed, 1 missed (a gap: nothing ran then)" in text
    assert "- Clean: yes" in text


def test_failures_say_how_each_was_resolved():
    text = section(render_markdown(facts()), "## Failures and how they were resolved")
    assert ("- Migrate failed at 2026-01-02T09:00:04.000Z (job 2): no such column: group\\_id. "
            "Resolution: passed on retry (job 3, 2026-01-02T09:03:00.000Z, by alice)") in text


def test_log_excerpts_keep_each_line_in_a_text_fence():
    text = section(render_markdown(facts()), "## Log excerpts")
    assert text == ("## Log excerpts\n\n### Back up (verified, every location)\n\n```text\n"
                    "Backing up goals.db\n… 4 line(s) …\n✓ Backup verified\n```\n")


# --------------------------------------------------------------------------- a run with little done


def test_a_run_with_nothing_done_says_so_in_every_section():
    f = facts()
    f.update(backup=None, monitoring=None, verification=None, smoke=None, failures=[], ledger=[],
             schema={"reference": "development", "before": None, "after": None})
    for s in f["steps"]:
        s.update(excerpt=[], signatures=[])
    markdown = render_markdown(f)
    assert "## Backup\n\nNo backup was taken in this run." in markdown
    assert "## Monitoring\n\nThe monitoring window has not started." in markdown
    assert "## Verification\n\nNot run yet." in markdown
    assert "## Failures\n\nNone." in markdown
    assert "- Before (the run's backup): not available\n- After (the target now): not available" in markdown
    assert "## Row-count ledger\n\nNo tables were counted." in markdown


def test_monitoring_still_running_says_so_and_judges_nothing_yet():
    f = facts()
    f["monitoring"].update(state="active", clean=False, counts={"passed": 3, "failed": 1, "missed": 0, "running": 0})
    text = section(render_markdown(f), "## Monitoring")
    assert "**still watching**" in text and "- Ticks so far: 3 passed, 1 failed, 0 missed\n" in text
    assert "- Clean: judged when the window ends" in text and "Clean: no" not in text


def test_a_window_that_outlived_an_abandoned_run_is_not_reported_as_its_own():
    f = facts()
    f["monitoring"].update(state="active", clean=False, outlived_run="the run was abandoned at T while window 4 "
                                                                     "was still watching; what it saw later belongs to no run")
    text = section(render_markdown(f), "## Monitoring")
    assert "**not this run's**: the run was abandoned at T while window 4 was still watching" in text
    assert "active" not in text and "Clean" not in text


# --------------------------------------------------------------------------- criteria


def test_criteria_are_ticked_only_when_met_is_true():
    text = section(render_markdown(facts()), "## Success criteria")
    assert "- [x] **Migration completed**: the migrate step committed" in text
    assert "- [ ] **Hotfix applied**: no hotfix configured" in text
    assert "- [ ] **No data loss** (not measured yet): no row-count ledger yet (verify step)" in text
    assert "- [x] **24 hours stable**: window 4 (finished)" in text
    assert text.count("[x]") == 2 and text.count("[ ]") == 2
    assert text.count("(not measured yet)") == 1


def test_an_unmeasured_criterion_says_why_it_was_not_measured():
    f = facts()
    f["criteria"].append({"name": "Performance improved", "met": None, "unmeasured": "not measured",
                          "evidence": "Cutover does not time queries"})
    text = section(render_markdown(f), "## Success criteria")
    assert "- [ ] **Performance improved** (not measured): Cutover does not time queries" in text


def test_an_unmet_criterion_is_not_called_unmeasured():
    f = facts()
    for item in f["criteria"]:
        item["met"] = False
    text = section(render_markdown(f), "## Success criteria")
    assert "[x]" not in text and "not measured" not in text


# --------------------------------------------------------------------------- the ledger


def test_ledger_numbers_have_thousands_separators_and_signed_changes():
    rows = section(render_markdown(facts()), "## Row-count ledger").split("\n")
    assert "| `goals` | 1,234,567 | 1,234,570 | +3 | +3 |" in rows
    assert "| `practice_sessions` | 25,000 | 23,800 | -1,200 |  |" in rows
    assert "| `audit_log` | – | 12 |  |  |" in rows
    assert "| `notes` | 5 | 5 | +0 |  |" in rows
    assert "|---|---:|---:|---:|---:|" in rows


def test_ledger_table_name_with_pipes_stays_in_its_cell():
    f = facts()
    f["ledger"] = [{"table": "a|b | c", "before": 1, "after": 2, "delta": 1, "declared": None}]
    row = section(render_markdown(f), "## Row-count ledger").split("\n")[4]
    assert cells(row)[0] == " `a|b | c` " and len(cells(row)) == 5


# --------------------------------------------------------------------------- hostile text


def test_hostile_text_never_becomes_markup():
    markdown = render_markdown(hostile_facts())
    assert_no_markup_from(markdown)
    # ... and is still shown, as text: nothing was silently dropped.
    assert markdown.count("onerror=alert(1)") >= 45


def test_hostile_text_adds_no_markup_character():
    # The report built from plain words and the one built from hostile text have the same
    # markup, character for character: the hostile text added none.
    assert skeleton(render_markdown(hostile_facts())) == skeleton(render_markdown(hostile_facts("plain words")))


def test_hostile_text_never_starts_a_line():
    for newline in ("\n", "\r", "\r\n"):
        f = hostile_facts()
        markdown = render_markdown(_with_newline(f, newline))
        assert not re.search(r"^\s*# Injected", markdown, re.MULTILINE), newline
        assert "\r" not in markdown


def _with_newline(value, newline: str):
    if isinstance(value, str):
        return value.replace("\n", newline)
    if isinstance(value, list):
        return [_with_newline(item, newline) for item in value]
    if isinstance(value, dict):
        return {key: _with_newline(item, newline) for key, item in value.items()}
    return value


def test_hostile_table_cells_keep_the_table_shape():
    markdown = render_markdown(hostile_facts())
    for heading, columns in (("## Steps", 6), ("## Row-count ledger", 5)):
        rows = [line for line in section(markdown, heading).split("\n") if line.startswith("|")]
        assert rows and all(len(cells(row)) == columns for row in rows), heading


@pytest.mark.parametrize("name", ["a`b", "a``b", "``", "`a", "a`", "x``<img src=x onerror=alert(1)>``y",
                                  "```<img src=x onerror=alert(1)>"])
def test_backticks_in_a_name_cannot_close_its_code_span(name):
    f = facts()
    f["run"]["database"] = name
    f["backup"]["copies"] = [name]
    f["ledger"] = [{"table": name, "before": 1, "after": 1, "delta": 0, "declared": None}]
    markdown = render_markdown(f)
    for line in (next(l for l in markdown.split("\n") if l.startswith("- Database: ")),
                 next(l for l in markdown.split("\n") if l.startswith("- Copy "))):
        outside, spans = code_spans(line)
        assert spans == [name], line
        assert "<img" not in outside
    row = next(l for l in section(markdown, "## Row-count ledger").split("\n") if l.startswith("| `"))
    assert code_spans(cells(row)[0].strip()) == ("§", [name])


@pytest.mark.parametrize("text", ["```", "  ```", "````", "``` \n# Injected", "~~~", "end ```"])
def test_a_log_line_cannot_close_the_excerpt_fence(text):
    f = facts()
    f["steps"][0]["excerpt"] = [{"level": "error", "text": text}, {"level": "info", "text": "<img src=x onerror=alert(1)>"}]
    markdown = render_markdown(f)
    excerpt = section(markdown, "## Log excerpts").split("\n")
    opening = excerpt.index("```text")
    closing = next(i for i in range(opening + 1, len(excerpt)) if re.match(r"^ {0,3}`{3,}\s*$", excerpt[i]))
    assert "<img src=x onerror=alert(1)>" in excerpt[opening + 1:closing]  # still inside the fence
    assert excerpt[closing] == "```" and excerpt[closing + 1:] == [""]

