"""One check result for every check Cutover runs: verification, liveness, rehearsal.

Its JSON has two published shapes: a verification or health report's line
(`to_dict`: summary, evidence, duration_ms) and a rehearsal's check (`to_rehearsal_dict`:
detail, blocking). Both are kept as they are; the result behind them is one.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    summary: str
    evidence: tuple[str, ...] = ()
    duration_ms: float | None = None
    blocking: bool = True  # False: reported, does not fail what it checks (a rehearsal)

    @property
    def detail(self) -> str:
        return self.summary

    def line(self) -> str:
        """One line for a log or a terminal: ✓/✗, then the summary, which names the check
        itself ("integrity_check: ok") or is given the name in front."""
        said = self.summary if self.summary.startswith(self.name) else f"{self.name}: {self.summary}"
        return f"{'✓' if self.passed else '✗'} {said}"

    def to_dict(self) -> dict:
        return {"name": self.name, "passed": self.passed, "summary": self.summary,
                "evidence": list(self.evidence), "duration_ms": self.duration_ms}

    def to_rehearsal_dict(self) -> dict:
        return {"name": self.name, "passed": self.passed, "detail": self.summary,
                "blocking": self.blocking}


def report(results: Iterable[CheckResult]) -> dict:
    """{"passed": every check passed, "checks": [...]} for a completion or health report."""
    results = list(results)
    return {"passed": all(r.passed for r in results), "checks": [r.to_dict() for r in results]}
