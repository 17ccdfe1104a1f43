"""What a move did, for the operator and for scripts: per table, time, conversions, checks."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class MoveReport:
    source: str
    target: str
    tables: list  # TableMoved
    seconds: float
    conversions: list[str]
    quarantine: str | None
    source_sha256: str
    checks: list = field(default_factory=list)  # (name, passed, evidence)

    @property
    def passed(self) -> bool:
        return all(passed for _, passed, _ in self.checks)

    @property
    def moved(self) -> int:
        return sum(table.moved for table in self.tables)

    @property
    def quarantined(self) -> int:
        return sum(table.quarantined for table in self.tables)

    def to_dict(self) -> dict:
        return {
            "source": self.source, "target": self.target, "passed": self.passed,
            "seconds": round(self.seconds, 3), "moved": self.moved, "quarantined": self.quarantined,
            "quarantine": self.quarantine, "tables": [table.to_dict() for table in self.tables],
            "conversions": self.conversions, "source_sha256": self.source_sha256,
            "checks": [{"name": name, "passed": passed, "evidence": evidence} for name, passed, evidence in self.checks],
        }

    def lines(self) -> list[str]:
        lines = [f"Moved {self.moved:,} rows from {self.source} to {self.target} in {self.seconds:.1f} s"
                 + (f"; {self.quarantined:,} rows quarantined in {self.quarantine}" if self.quarantine else "")]
        for table in self.tables:
            reasons = ", ".join(f"{count} {reason}" for reason, count in table.reasons.items())
            lines.append(f"  {table.name:<28} {table.moved:>10,} moved {table.quarantined:>8,} quarantined"
                         + (f" ({reasons})" if reasons else ""))
        lines += [f"  converted: {conversion}" for conversion in self.conversions]
        lines += [f"  {'✓' if passed else '✗'} {name}: {evidence}" for name, passed, evidence in self.checks]
        return lines
