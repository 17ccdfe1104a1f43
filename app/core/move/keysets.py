"""Sets of key values that stay small: one bit per id for the usual integer keys.

Preflight remembers every key a foreign key may point at, and every value a unique key has
taken. Most of those are single integer ids from 1 upwards, which a bitmap holds in an eighth
of a byte each (a few hundred KB for millions of rows) instead of a set's ~60 bytes; any other
key (text, composite, negative or huge) goes to an ordinary set.
"""
from __future__ import annotations

BITMAP_LIMIT = 1 << 34  # ids beyond 2 GB of bitmap go to the set


class KeySet:
    __slots__ = ("_bits", "_others")

    def __init__(self):
        self._bits = bytearray()
        self._others = set()

    def add(self, key) -> None:
        """`key`: one value (a single-column key) or a tuple of them."""
        if type(key) is int and 0 <= key < BITMAP_LIMIT:
            byte = key >> 3
            if byte >= len(self._bits):
                self._grow(byte)
            self._bits[byte] |= 1 << (key & 7)
        else:
            self._others.add(key)

    def update(self, keys) -> None:
        """`add` for each of `keys`, None skipped: `add` inlined, for a batch of a parent's ids."""
        bits = self._bits
        for key in keys:
            if type(key) is int and 0 <= key < BITMAP_LIMIT:
                byte = key >> 3
                if byte >= len(bits):
                    self._grow(byte)
                bits[byte] |= 1 << (key & 7)
            elif key is not None:
                self._others.add(key)

    def contains_all(self, keys) -> bool:
        """Is every one of `keys` in the set? `in` inlined, for a batch of a child's references."""
        bits, limit = self._bits, len(self._bits) * 8
        for key in keys:
            if type(key) is int and 0 <= key < BITMAP_LIMIT:
                if key >= limit or not bits[key >> 3] & (1 << (key & 7)):
                    return False
            elif key not in self._others:
                return False
        return True

    def _grow(self, byte: int) -> None:
        """Room for `byte`, at least doubling (in place: a caller's reference stays good)."""
        self._bits.extend(bytes(max(byte + 1 - len(self._bits), len(self._bits))))

    def __contains__(self, key) -> bool:
        if type(key) is int and 0 <= key < BITMAP_LIMIT:
            byte = key >> 3
            return byte < len(self._bits) and bool(self._bits[byte] & (1 << (key & 7)))
        return key in self._others
