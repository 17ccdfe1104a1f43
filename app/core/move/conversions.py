"""Converting a SQLite value to what a PostgreSQL column holds, or saying why it cannot be.

SQLite stores whatever it is given (a "boolean" column holds 0, 1, 'yes' or 7; a timestamp is
text in any shape), so every value is judged by the *target's* type, as the server would judge
it, before anything is written: a value the server would refuse is a reject with a reason, never
a failed COPY half-way. `canonical` is how a value of that type reads the same on both sides
after the move, for the content fingerprints.
"""
from __future__ import annotations

import json
import re
import struct
import uuid
from dataclasses import dataclass
from datetime import datetime, time, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Callable

# Why a row cannot be moved; the words are the JSON's `reason`.
FK_ORPHAN = "foreign_key_orphan"
PARENT_REJECTED = "parent_rejected"
NOT_NULL = "null_in_not_null"
NOT_BOOLEAN = "not_boolean"
BAD_TIMESTAMP = "unparsable_timestamp"
BAD_JSON = "invalid_json"
TOO_LONG = "text_too_long"
OUT_OF_RANGE = "integer_overflow"
BAD_VALUE = "value_not_of_type"
DUPLICATE = "duplicate_unique_key"

EXPLANATIONS = {
    FK_ORPHAN: "its foreign key names a parent row that is not in the source",
    PARENT_REJECTED: "its parent row is itself rejected",
    NOT_NULL: "NULL in a column the target declares NOT NULL",
    NOT_BOOLEAN: "not a boolean (the target column is boolean)",
    BAD_TIMESTAMP: "not a date or timestamp the target can read",
    BAD_JSON: "not valid JSON (the target column is json/jsonb)",
    TOO_LONG: "text longer than the target's character varying(n)",
    OUT_OF_RANGE: "a number too large for the target column's type (integer or numeric overflow)",
    BAD_VALUE: "a value the target column's type cannot hold",
    DUPLICATE: "a duplicate under a unique constraint of the target",
}


class Rejected(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


@dataclass(frozen=True)
class Conversion:
    """How one target type takes SQLite values."""

    family: str  # boolean, integer, numeric, float4, float8, text, char, timestamp (without time zone), timestamptz, date,
    #              time, json, bytea, uuid, other
    convert: Callable[[Any], Any]
    canonical: Callable[[Any], str]
    description: str  # what is converted, in words ("integers 0/1 to boolean")
    padded: bool = False  # character(n): the server pads with spaces
    # column -> True when `convert` would return every value of the column unchanged, by checks that
    # run in C over the whole column (a move's common case, judged a batch at a time); None: no such test.
    unchanged: Callable[[Any], bool] | None = None


# Families whose value read back from the server is not the converted value as a Python object.
NEEDS_CANONICAL = frozenset({"json", "float4"})
# Families converted to the text the server prints for them: read back as text (`column::text`).
READ_AS_TEXT = frozenset({"json", "timestamp", "date"})


_INTEGER_RANGES = {"smallint": 2 ** 15, "integer": 2 ** 31, "bigint": 2 ** 63}
_LENGTH = re.compile(r"^(character varying|character|varchar|char|bpchar)\((\d+)\)$")
_NUMERIC = re.compile(r"^numeric(?:\((\d+)(?:,(\d+))?\))?$")
_TRUE = frozenset({"1", "t", "true", "y", "yes", "on"})
_FALSE = frozenset({"0", "f", "false", "n", "no", "off"})


def conversion_for(target_type: str) -> Conversion:
    """The conversion into a column of `target_type` (format_type's spelling)."""
    kind = target_type.lower()
    if kind == "boolean":
        return Conversion("boolean", to_boolean, _canonical_boolean, "integers 0/1 to boolean")
    if kind in _INTEGER_RANGES:
        return Conversion("integer", _integer_of(kind), _canonical_plain, f"numbers to {kind}",
                          unchanged=_integers_within(_INTEGER_RANGES[kind]))
    if match := _NUMERIC.match(kind):
        precision, scale = (int(match.group(1)) if match.group(1) else None,
                            int(match.group(2) or 0) if match.group(1) else None)
        return Conversion("numeric", _numeric_of(precision, scale), _canonical_decimal, f"numbers to {kind}")
    if kind in ("real", "double precision"):
        float4 = kind == "real"
        return Conversion("float4" if float4 else "float", _to_float,
                          _canonical_float4 if float4 else _canonical_float8, f"numbers to {kind}",
                          unchanged=_only_of_type(float))
    if kind == "text" or kind in ("character varying", "varchar"):
        return Conversion("text", _text_of(None), _canonical_plain, "values to text", unchanged=_texts_within(None))
    if match := _LENGTH.match(kind):
        padded, length = match.group(1) in ("character", "char", "bpchar"), int(match.group(2))
        return Conversion("text", _text_of(length), _canonical_padded if padded else _canonical_plain,
                          f"values to {kind}", padded, unchanged=_texts_within(length))
    if kind.startswith("timestamp"):
        aware = "with time zone" in kind
        if aware:
            return Conversion("timestamptz", _aware_timestamp, _canonical_timestamp, f"text timestamps to {kind}")
        return Conversion("timestamp", to_timestamp_text, _canonical_plain, f"text timestamps to {kind}")
    if kind == "date":
        return Conversion("date", to_date, _canonical_plain, "text dates to date (a time of day dropped)")
    if kind.startswith("time"):
        return Conversion("time", to_time, _canonical_iso, f"text times to {kind}")
    if kind in ("json", "jsonb"):
        return Conversion("json", _json_of(kind == "jsonb"), _canonical_json, f"JSON text to {kind}")
    if kind == "bytea":
        return Conversion("bytea", to_bytes, _canonical_bytes, "blobs to bytea")
    if kind == "uuid":
        return Conversion("uuid", to_uuid, _canonical_plain, "text to uuid")
    return Conversion("other", _text_of(None), _canonical_plain, f"values as text to {kind} (the server parses them)")


# --- converting ------------------------------------------------------------------------


def to_boolean(value):
    if value == 0 or value == 1:  # SQLite's own booleans (and True, False)
        if type(value) is int or type(value) is bool:
            return bool(value)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise Rejected(NOT_BOOLEAN, f"{value!r} is not a boolean")


def _integer_of(kind: str):
    limit = _INTEGER_RANGES[kind]

    def convert(value):
        if type(value) is int and -limit <= value < limit:
            return value
        if value is None:
            return None
        number = _as_integer(value)
        if not -limit <= number < limit:
            raise Rejected(OUT_OF_RANGE, f"{value!r} does not fit in {kind}")
        return number

    return convert


def _as_integer(value) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    raise Rejected(BAD_VALUE, f"{value!r} is not an integer")


def _numeric_of(precision: int | None, scale: int | None):
    def convert(value):
        if value is None:
            return None
        try:
            number = Decimal(repr(value) if isinstance(value, float) else str(value).strip())
        except InvalidOperation:
            raise Rejected(BAD_VALUE, f"{value!r} is not a number") from None
        if not number.is_finite():
            raise Rejected(BAD_VALUE, f"{value!r} is not a finite number")
        if scale is not None:
            number = number.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP)  # as the server rounds
            if number.adjusted() >= precision - scale:
                raise Rejected(OUT_OF_RANGE, f"{value!r} does not fit in numeric({precision},{scale})")
        return number

    return convert


def _to_float(value):
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise Rejected(BAD_VALUE, f"{value!r} is not a number") from None


def _text_of(length: int | None):
    def convert(value):
        if type(value) is str and "\x00" not in value and (length is None or len(value) <= length):
            return value
        if value is None:
            return None
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                raise Rejected(BAD_VALUE, "a blob that is not UTF-8 text") from None
        text = value if isinstance(value, str) else repr(value) if isinstance(value, float) else str(value)
        if "\x00" in text:
            raise Rejected(BAD_VALUE, "text containing a NUL character, which PostgreSQL cannot store")
        if length is not None and len(text) > length:
            raise Rejected(TOO_LONG, f"{len(text)} characters, the column holds {length}")
        return text

    return convert


def _parse_datetime(value) -> datetime:
    if type(value) is str:
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.strip())
        except ValueError:
            pass
    raise Rejected(BAD_TIMESTAMP, f"{value!r} is not an ISO 8601 timestamp")


def _aware_timestamp(value):
    if value is None:
        return None
    moment = _parse_datetime(value)  # a naive value is taken as UTC (the session's time zone while loading)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def to_timestamp_text(value):
    """A timestamp without time zone as the text the server prints for it (DateStyle ISO): written
    as text, the server parses it to the same value, and reading the column back as text gives the
    same string, so neither side builds a datetime object for a value already in that form (most
    are: it is how SQLite's own datetime() and most drivers write them). Other ISO 8601 forms are
    parsed, an offset is applied (to UTC), and the result printed that way."""
    if value is None:
        return None
    if type(value) is str and _printed_as_postgresql_does(value):
        _parse_datetime(value)  # still a real moment: no 2026-02-30, no 25:00
        return value
    moment = _parse_datetime(value)
    if moment.tzinfo:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return _printed_timestamp(moment)


def _printed_as_postgresql_does(text: str) -> bool:
    """'YYYY-MM-DD HH:MM:SS', with a fraction of a second that has no trailing zero."""
    size = len(text)
    if size < 19 or text[4] != "-" or text[7] != "-" or text[10] != " " or text[13] != ":" or text[16] != ":":
        return False
    return size == 19 or (size > 20 and size <= 26 and text[19] == "." and text[-1] != "0" and text[20:].isdigit())


def _printed_timestamp(moment: datetime) -> str:
    printed = moment.isoformat(" ")
    return printed.rstrip("0") if moment.microsecond else printed


def to_date(value):
    """A date as the server prints it ('YYYY-MM-DD'); a time of day is dropped, as the server does."""
    if value is None:
        return None
    if type(value) is str and len(value) == 10 and value[4] == "-" and value[7] == "-":
        _parse_datetime(value)
        return value
    return _parse_datetime(value).date().isoformat()


def to_time(value):
    if value is None:
        return None
    try:
        return time.fromisoformat(str(value).strip())
    except ValueError:
        raise Rejected(BAD_TIMESTAMP, f"{value!r} is not a time of day") from None


def _json_of(binary: bool):
    def convert(value):
        if value is None:
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = repr(value) if isinstance(value, float) else str(value)
        if not isinstance(value, str):
            raise Rejected(BAD_JSON, "a blob, not JSON text")
        try:
            json.loads(value, parse_constant=_no_constant)
        except ValueError as exc:
            raise Rejected(BAD_JSON, f"{_shorten(value)}: {exc}") from None
        if binary and "\\u0000" in value:
            raise Rejected(BAD_JSON, "\\u0000 in a string, which jsonb cannot store")
        return value

    return convert


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def to_bytes(value):
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    raise Rejected(BAD_VALUE, f"{value!r} is not a blob")


def to_uuid(value):
    if value is None:
        return None
    try:
        return uuid.UUID(bytes=value) if isinstance(value, bytes) else uuid.UUID(str(value).strip())
    except ValueError:
        raise Rejected(BAD_VALUE, f"{_shorten(value)!r} is not a UUID") from None


def _shorten(value, limit: int = 60) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "..."


# --- whole columns that need no converting (each test in C over the column) -----------------

_NONE = type(None)


def _only_of_type(kind: type):
    allowed = frozenset({kind, _NONE})
    return lambda column: set(map(type, column)) <= allowed


def _integers_within(limit: int):
    def unchanged(column) -> bool:
        kinds = set(map(type, column))
        if not kinds <= {int, _NONE}:
            return False
        if limit == 2 ** 63:  # SQLite's integers are 64-bit: every one fits in bigint
            return True
        numbers = [value for value in column if value is not None] if _NONE in kinds else column
        return not numbers or (-limit <= min(numbers) and max(numbers) < limit)

    return unchanged


def _texts_within(length: int | None):
    def unchanged(column) -> bool:
        if not set(map(type, column)) <= {str, _NONE}:
            return False
        if "\x00" in "".join(filter(None, column)):
            return False
        return length is None or max(map(len, filter(None, column)), default=0) <= length

    return unchanged


# --- the same value on both sides ----------------------------------------------------------


def _canonical_plain(value) -> str:
    return str(value)


def _canonical_boolean(value) -> str:
    return "t" if value else "f"


def _canonical_decimal(value) -> str:
    return str(Decimal(value).normalize())


def _canonical_float8(value) -> str:
    return repr(float(value))


def _canonical_float4(value) -> str:
    return repr(struct.unpack("f", struct.pack("f", float(value)))[0])


def _canonical_padded(value) -> str:
    return str(value).rstrip(" ")


def _canonical_timestamp(value) -> str:
    if value.tzinfo:
        value = value.astimezone(timezone.utc)
    return value.isoformat()


def _canonical_iso(value) -> str:
    return value.isoformat()


def _canonical_bytes(value) -> str:
    return bytes(value).hex()


def _canonical_json(value) -> str:
    parsed = json.loads(value, parse_float=Decimal, parse_int=Decimal) if isinstance(value, str) else value
    return json.dumps(_json_numbers(parsed), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _json_numbers(value):
    if isinstance(value, Decimal):
        return "n:" + str(value.normalize())
    if isinstance(value, dict):
        return {key: _json_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_numbers(item) for item in value]
    if isinstance(value, float):  # read back by a driver that parsed it
        return "n:" + str(Decimal(repr(value)).normalize())
    if isinstance(value, int) and not isinstance(value, bool):
        return "n:" + str(Decimal(value).normalize())
    return value


def canonical(conversion: Conversion, value) -> str | None:
    return None if value is None else conversion.canonical(value)


