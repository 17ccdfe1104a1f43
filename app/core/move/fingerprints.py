"""Content fingerprints: the same rows give the same fingerprint on either side of a move.

Each row is reduced to its values as the target type holds them: most values read back from
the server are already equal to the converted source values as Python objects (an int, a str,
a bool, a datetime, a Decimal); the few that are not are normalised first
(conversions.canonical: JSON to its parsed value with sorted keys, real to single precision,
character(n) without its padding). Each row's tuple is hashed, and the hashes are added modulo
2**64: the sum does not depend on the order rows are read in, and a row changed, lost or doubled
changes it. Python's hash is used because it is C code and both sides are summed in the same
process (string hashes are salted per process: a fingerprint is compared, never stored). The
source side is summed as rows are written; the target's is read back inside the move's
transaction, before COMMIT.
"""
from __future__ import annotations

from app.core.move.conversions import NEEDS_CANONICAL, canonical

_MASK = (1 << 64) - 1


class Fingerprint:
    def __init__(self, conversions: list):
        self.normalise = [(place, conversion) for place, conversion in enumerate(conversions)
                          if conversion.family in NEEDS_CANONICAL or conversion.padded]
        self.rows = 0
        self._sum = 0

    def add(self, values) -> None:
        self.add_all([values])

    def add_all(self, rows: list) -> None:
        """`add` for each row (tuples or lists): the sum taken in one C loop when nothing needs normalising."""
        if self.normalise:
            rows = [self._normalised(values) for values in rows]
        self._sum = (self._sum + sum(map(hash, map(tuple, rows)))) & _MASK
        self.rows += len(rows)

    def _normalised(self, values) -> list:
        values = list(values)
        for place, conversion in self.normalise:
            values[place] = canonical(conversion, values[place])
        return values

    @property
    def value(self) -> str:
        return f"{self.rows}:{self._sum:016x}"
