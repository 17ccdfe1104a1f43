"""Verifying a committed move again, later (a checklist's verify step): from the two databases
as they are now and the move's report, without trusting anything the move said about itself
beyond what it claims to have written."""
from __future__ import annotations


def verify_moved(source, target, report: dict) -> list[tuple[str, bool, str]]:
    """(check, passed, evidence) for a move's report (MoveReport.to_dict()) against both databases now."""
    tables = {table["name"]: table for table in report["tables"]}
    mover = target.move_target()
    counts = mover.row_counts(list(tables))
    with source.move_source() as reader:
        source_rows = {table.name: table.rows for table in reader.tables() if table.name in tables}
        sha256 = reader.sha256()
    ledger = [f"{name}: {t['moved']} moved + {t['quarantined']} quarantined, the source has {source_rows.get(name)}"
              for name, t in tables.items() if t["moved"] + t["quarantined"] != source_rows.get(name)]
    off = [f"{name}: {counts[name]} in the target, {t['moved']} moved" for name, t in tables.items()
           if counts[name] != t["moved"]]
    unvalidated = mover.unvalidated_constraints(list(tables))
    prints = [name for name, t in tables.items() if not t["fingerprints_match"]]
    return [
        ("moved + quarantined = source rows", not ledger, "; ".join(ledger) or f"{len(tables)} tables reconcile"),
        ("target rows", not off, "; ".join(off) or f"{sum(counts.values()):,} rows, as moved"),
        ("content fingerprints at COMMIT", not prints, ", ".join(prints) or "every table matched its source"),
        ("target constraints valid", not unvalidated, ", ".join(unvalidated) or "none NOT VALID"),
        ("source byte-identical", sha256 == report["source_sha256"],
         f"SHA-256 {sha256[:16]}... now, {report['source_sha256'][:16]}... when moved"),
    ]
