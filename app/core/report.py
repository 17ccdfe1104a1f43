"""The completion report as Markdown, from the facts app.reports gathers (a plain dict).

Text from logs, notes and schemas is operator- or database-controlled: it is put in code
spans or escaped so that it reads as text in any Markdown viewer, never as markup.
"""
from __future__ import annotations

import re

MARKS = {True: "[x]", False: "[ ]", None: "[ ]"}
STATE_WORDS = {"signed_off": "signed off"}


def render_markdown(facts: dict) -> str:
    run = facts["run"]
    parts = [
        f"# Cutover completion report: run {run['id']} on {escape(run['environment'])}",
        _summary(run),
        _criteria(facts["criteria"]),
        _steps(facts["steps"]),
        _timeline(facts["timeline"]),
        _signatures(facts["steps"]),
        _backup(facts["backup"]),
        _revisions(facts.get("revisions")),
        _schema(facts["schema"]),
        _ledger(facts["ledger"], moved="move" in facts),
        _verification(facts["verification"], facts["smoke"]),
        _monitoring(facts["monitoring"]),
        _failures(facts["failures"]),
        _excerpts(facts["steps"]),
    ]
    return "\n\n".join(part for part in parts if part) + "\n"


def escape(text) -> str:
    """Markdown-inert text: backslash what could start markup (links need [ ], emphasis * _,
    HTML < >, tables |), keep it on one line."""
    text = str(text).replace("\r", " ").replace("\n", " ")
    for char in "\\`*_[]<>|~":
        text = text.replace(char, "\\" + char)
    return text


def code(text, *, in_table: bool = False) -> str:
    """A code span that nothing in the text can close: its fence is one backtick longer than
    the longest run of backticks inside (a run of the fence's length would end the span early
    and let the rest be read as markup)."""
    text = str(text).replace("\r", " ").replace("\n", " ")
    if in_table:
        # GFM splits a row on every unescaped pipe, code spans included; it drops this
        # backslash again before reading the span.
        text = text.replace("|", "\\|")
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    pad = " " if "`" in text else ""  # a span cannot begin or end with a backtick of its own
    return f"{fence}{pad}{text}{pad}{fence}"


def _state(state: str) -> str:
    return STATE_WORDS.get(state, state)


def _summary(run: dict) -> str:
    lines = [f"- Database: {code(run['database'])}",
             f"- Created by {escape(run['created_by'])} at {run['created_at']}",
             f"- Status: **{run['status']}**" + (f" ({escape(run['status_note'])})" if run["status_note"] else "")]
    if run["finished_at"]:
        lines.append(f"- Finished at {run['finished_at']}")
    if run["status"] == "abandoned":
        lines.append(f"- **Abandoned:** {_done_steps(run)} were done; the others will not run in this run.")
    elif not run["complete"]:
        lines.append(f"- **Not complete yet:** {_done_steps(run)} are done (see below).")
    return "\n".join(lines)


def _done_steps(run: dict) -> str:
    if run.get("steps_total") is None:  # facts from before the counts were kept
        return "some steps"
    return f"{run['steps_done']} of {run['steps_total']} steps"


def _criteria(criteria: list[dict]) -> str:
    lines = ["## Success criteria", "", "Ticked from measured facts, not from clicks.", ""]
    for item in criteria:
        unknown = f" ({item.get('unmeasured') or 'not measured yet'})" if item["met"] is None else ""
        lines.append(f"- {MARKS[item['met']]} **{item['name']}**{unknown}: {escape(item['evidence'])}")
    return "\n".join(lines)


def _steps(steps: list[dict]) -> str:
    lines = ["## Steps", "", "| # | Step | Result | Operator | Duration | Attempts |", "|---|---|---|---|---|---|"]
    for number, step in enumerate(steps, 1):
        duration = f"{step['duration_seconds']:.1f} s" if step["duration_seconds"] is not None else ""
        result = _state(step["state"]) + (f": {escape(step['reason'])}" if step["reason"] else "")
        lines.append(f"| {number} | {escape(step['title'])} | {result} | {escape(step['operator'] or '')} | "
                     f"{duration} | {step['attempts']} |")
    return "\n".join(lines)


def _timeline(events: list[dict]) -> str:
    return "\n".join(["## Timeline (UTC)", ""] + [f"- {e['time']}: {escape(e['text'])}" for e in events])


def _signatures(steps: list[dict]) -> str:
    lines = ["## Sign-offs and approvals", ""]
    for step in steps:
        for s in step["signatures"]:
            verb = "approved" if s["kind"] == "approval" else "signed off"
            validity = "" if s["valid"] else f" **no longer counts:** {escape(s['why_not'])}"
            note = f", note: {escape(s['note'])}" if s["note"] else ""
            lines.append(f"- {escape(step['title'])}: {verb} by {escape(s['operator'])} at {s['time']}{note}; "
                         f"log sha256 {code(s['log_sha256'] or '-')}, {escape(s['subject'])} "
                         f"sha256 {code(s['subject_sha256'] or '-')}{validity}")
    return "\n".join(lines) if len(lines) > 2 else "## Sign-offs and approvals\n\nNone."


def _backup(backup: dict | None) -> str:
    if backup is None:
        return "## Backup\n\nNo backup was taken in this run."
    lines = ["## Backup", "", f"- Id {code(backup['id'])}, {backup['size_bytes'] or 0:,} bytes, method {backup['method']}, "
             f"status now: **{escape(backup['status_now'])}**", f"- sha256 {code(backup['sha256'])}"]
    lines += [f"- Copy {code(path)}" for path in backup["copies"]]
    return "\n".join(lines)


def _revisions(applied: dict | None) -> str:
    """Each Alembic revision the migrate step applied, in order, and how its statements were obtained."""
    if not applied:
        return ""
    lines = ["## Alembic revisions applied", "",
             f"From {code(', '.join(applied['current']) or 'no revision')} to {code(applied['target'])}:", ""]
    for revision in applied["revisions"]:
        notes = [revision["rendering"], f"{len(revision['statements'])} statements"]
        notes += ["changes data"] if revision["data_changes"] else []
        notes += [] if revision.get("transactional", True) else ["outside the transaction, not atomic"]
        lines.append(f"- {code(revision['id'])} {escape(revision['message'])} ({escape(', '.join(notes))})")
    return "\n".join(lines)


def _schema(schema: dict) -> str:
    if schema.get("move"):
        return f"## Schema\n\n{escape(schema['move'])}"
    if not schema.get("reference"):
        return "## Schema\n\nNo reference environment is configured."
    if schema.get("error"):
        return f"## Schema\n\nThe reference could not be read: {escape(schema['error'])}"
    lines = ["## Schema against the reference", ""]
    for label, key in (("Before (the run's backup)", "before"), ("After (the target now)", "after")):
        differences = schema.get(key)
        if differences is None:
            why = schema.get(f"{key}_error")  # the target could not be read: say why
            lines.append(f"- {label}: not available" + (f": {escape(why)}" if why else ""))
        elif not differences:
            lines.append(f"- {label}: matches {escape(schema['reference'])}")
        else:
            lines.append(f"- {label}: {len(differences)} difference(s)")
            lines += [f"  - {d['object']} {code(_qualified(d))} ({d['fix']}): {escape(d['explanation'])}"
                      for d in differences]
    return "\n".join(lines)


def _qualified(difference: dict) -> str:
    table, name = difference["table"], difference["name"]
    return f"{table}.{name}" if table and difference["object"] != "table" else name


def _ledger(rows: list[dict], *, moved: bool = False) -> str:
    if not rows:
        return "## Row-count ledger\n\nNo tables were counted."
    headings = "| Table | Source | Target | Change | Quarantined |" if moved else "| Table | Before | After | Change | Declared |"
    lines = ["## Row-count ledger", "", headings, "|---|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {code(row['table'], in_table=True)} | {_number(row['before'])} | {_number(row['after'])} | "
                     f"{_signed(row['delta'])} | {_signed(row['declared'])} |")
    return "\n".join(lines)


def _number(value) -> str:
    return f"{value:,}" if isinstance(value, int) else "–"


def _signed(value) -> str:
    return f"{value:+,}" if isinstance(value, int) else ""


def _verification(verification: dict | None, smoke: dict | None) -> str:
    lines = ["## Verification", ""]
    for document in (verification, smoke):
        for check in (document or {}).get("checks", []):
            lines.append(f"- {'✓' if check['passed'] else '✗'} {code(check['name'])}: {escape(check['summary'])}")
    return "\n".join(lines) if len(lines) > 2 else "## Verification\n\nNot run yet."


def _monitoring(window: dict | None) -> str:
    if window is None:
        return "## Monitoring\n\nThe monitoring window has not started."
    counts = window["counts"]
    ticks = (f"{counts['passed']} passed, {counts['failed']} failed, {counts['missed']} missed"
             + (" (a gap: nothing ran then)" if counts["missed"] else ""))
    head = (f"- Window {window['id']}: {window['started_at']} to {window['ends_at']}, a tick every "
            f"{window['interval_seconds']} s")
    if window.get("outlived_run"):
        return "\n".join(["## Monitoring", "", f"{head}; **not this run's**: {escape(window['outlived_run'])}"])
    if window["state"] == "active":
        return "\n".join(["## Monitoring", "", f"{head}; **still watching**", f"- Ticks so far: {ticks}",
                          "- Clean: judged when the window ends"])
    return "\n".join(["## Monitoring", "", f"{head}; state **{window['state']}**", f"- Ticks: {ticks}",
                      f"- Clean: {'yes' if window['clean'] else 'no'}"])


def _failures(failures: list[dict]) -> str:
    if not failures:
        return "## Failures\n\nNone."
    lines = ["## Failures and how they were resolved", ""]
    for f in failures:
        lines.append(f"- {escape(f['step'])} {f['state']} at {f['time']} (job {f['job']}): {escape(f['error'] or '')}. "
                     f"Resolution: {escape(f['resolution'])}")
    return "\n".join(lines)


def _excerpts(steps: list[dict]) -> str:
    lines = ["## Log excerpts"]
    for step in steps:
        if not step["excerpt"]:
            continue
        lines += ["", f"### {escape(step['title'])}", "", "```text"]
        lines += [line["text"].replace("```", "'''") for line in step["excerpt"]]
        lines.append("```")
    return "\n".join(lines)
