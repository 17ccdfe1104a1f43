"""A PostgreSQL target as the dashboard, the CLI and the API show it: one Snapshot-shaped read.

Engine-neutral code reads a snapshot's `path` (what names the target), `inspected_at`,
`facts`, `schema`, `deep`, `row_counts()` and `to_dict()`; this is that shape for a
PostgreSQL database, whose schema is a Catalog and whose facts are PgFacts.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from app.core.engines.postgresql.catalog import Catalog, PgFacts, inspect_catalog
from app.core.engines.postgresql.location import PostgresLocation


@dataclass(frozen=True)
class PgSnapshot:
    path: str  # the target's label: its URL without a password
    inspected_at: str  # ISO 8601, UTC
    facts: PgFacts
    schema: Catalog
    deep: bool
    engine = "postgresql"

    def row_counts(self) -> dict[str, int | None]:
        return self.schema.row_counts()

    def estimated_tables(self) -> list[str]:
        """Tables whose row count is the planner's estimate, not a count."""
        return [table.name for table in self.schema.tables if not table.row_count_exact]

    def integrity_ok(self) -> bool:
        """No index the server has marked INVALID (what a failed CREATE INDEX CONCURRENTLY leaves)."""
        return not self.schema.invalid_indexes()

    def carrying_checks_from(self, previous) -> PgSnapshot:
        """The whole-database checks are not separate on PostgreSQL yet: nothing to carry."""
        return self

    def to_dict(self) -> dict:
        return {
            "engine": self.engine,
            "path": self.path,
            "inspected_at": self.inspected_at,
            "deep": self.deep,
            "facts": self.facts.to_dict(),
            "schema": self.schema.to_dict(),
        }


def take_snapshot(location: PostgresLocation, *, deep: bool, busy_timeout: float) -> PgSnapshot:
    moment = datetime.now(timezone.utc).isoformat(timespec="seconds")
    catalog = inspect_catalog(location, schemas=location.schemas,
                              lock_timeout_ms=max(1, round(busy_timeout * 1000)))
    return PgSnapshot(location.label, moment, catalog.facts, catalog, deep)
