"""The one check of a number an operator gives Cutover (cutover.toml, an environment variable,
a command-line option): its type, that it is finite, and that it lies in a sane range.

TOML and float() accept nan and inf, and Python takes true for the whole number 1: unchecked,
`nan` turns a time limit off (every comparison with it is false), `inf` or `1e300` hours
overflow a date and end a command in a traceback, `port = true` means port 1. Every number
is checked here once, where it is read, so the rest of Cutover only ever sees a usable one.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from app.core.errors import ConfigError, UsageError

LARGEST_WHOLE = 2**63 - 1  # SQLite's largest integer: row counts and their changes fit in it


@dataclass(frozen=True)
class Accepted:
    """What a number may be: a whole number or any finite number, between two bounds."""

    lowest: float
    highest: float
    whole: bool = False
    lowest_excluded: bool = False  # "greater than 0" rather than "from 0"
    unit: str = ""  # "hours", "seconds": said in the message
    what: str = ""  # "a TCP port number": said before the range

    def describe(self) -> str:
        noun = self.what or ("a whole number" if self.whole else "a number")
        of_unit = f" of {self.unit}" if self.unit else ""
        if self.lowest_excluded and self.lowest == 0:
            return f"{noun.replace('a ', 'a positive ', 1)}{of_unit}, at most {_plain(self.highest)}"
        low = f"above {_plain(self.lowest)}" if self.lowest_excluded else f"from {_plain(self.lowest)}"
        return f"{noun}{of_unit} {low} to {_plain(self.highest)}"

    def problem(self, value) -> str | None:
        """None when `value` is acceptable, else why not (in a few words)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "not a number"
        if self.whole and not isinstance(value, int):
            return "not a whole number"
        if isinstance(value, float) and not math.isfinite(value):
            return "not a finite number"
        too_low = value <= self.lowest if self.lowest_excluded else value < self.lowest
        if too_low or value > self.highest:
            return "out of range"
        return None


def config_number(path: Path, label: str, value, accepted: Accepted) -> int | float:
    """`value` read from the configuration file at `label`, or ConfigError naming both."""
    if accepted.problem(value) is not None:
        raise ConfigError(f"{path}: '{label}' must be {accepted.describe()}; it is {shown(value)}.")
    return value if accepted.whole else float(value)


def number_from_text(text: str, accepted: Accepted) -> int | float | None:
    """The number written in `text` (an environment variable, an option), None if unusable."""
    try:
        value = int(text.strip()) if accepted.whole else float(text.strip())
    except (ValueError, OverflowError):
        return None
    return value if accepted.problem(value) is None else None


def option_number(option: str, text: str, accepted: Accepted) -> int | float:
    """A command-line option's number, or UsageError (exit code 2) naming the option."""
    value = number_from_text(text, accepted)
    if value is None:
        raise UsageError(f"{option} must be {accepted.describe()}; it is {shown(text)}.")
    return value


def shown(value) -> str:
    """A value as the operator wrote it, on one line and not too long."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    text = json.dumps(value, ensure_ascii=False) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _plain(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else f"{number:g}"
