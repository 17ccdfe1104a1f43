"""Content fingerprints: the same rows give the same fingerprint on either side of a move.

Each row is reduced to its values as the target type holds them (conversions.canonical: a
boolean is "t"/"f" whether it was SQLite's 1 or PostgreSQL's true, a timestamp its ISO form in
UTC, JSON its parsed value with sorted keys), hashed, and the hashes are added modulo 2**128:
the sum does not depend on the order rows are read in, and a row changed, lost or doubled
changes it. The source side is summed as rows are written; the target's is read back inside
the move's transaction, before COMMIT.
"""
from __future__ import annotations

import hashlib

from app.core.move.conversions import canonical

_MODULUS = 1 << 128


class Fingerprint:
    def __init__(self, conversions: list):
        self.conversions = conversions
        self.rows = 0
        self._sum = 0

    def add(self, values) -> None:
        text = "\x1f".join("\x00" if value is None else canonical(conversion, value)
                           for conversion, value in zip(self.conversions, values))
        digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        self._sum = (self._sum + int.from_bytes(digest, "big")) % _MODULUS
        self.rows += 1

    @property
    def value(self) -> str:
        return f"{self.rows}:{self._sum:032x}"
