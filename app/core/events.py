"""The log lines that core operations emit, one contract for the CLI, the pages and the stream.

A core function that reports progress takes `emit(level, text)`; the CLI prints the line,
the checklist runner persists it with a sequence number and streams it. Levels let the page
style an expected warning ("already exists, skipping (expected)") apart from a real one.
"""
from __future__ import annotations

from typing import Callable

LEVELS = ("info", "ok", "expected", "warning", "error")
Emit = Callable[[str, str], None]


def discard(level: str, text: str) -> None:
    """The emit of a caller that only wants the result."""


def collecting(lines: list[tuple[str, str]]) -> Emit:
    """An emit that keeps the lines (tests, reports)."""

    def emit(level: str, text: str) -> None:
        if level not in LEVELS:
            raise ValueError(f"unknown log level {level!r}")
        lines.append((level, text))

    return emit
