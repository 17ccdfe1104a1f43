"""Each SQLite value judged by the PostgreSQL column type it goes to, as the server would judge it."""
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from app.core.move.conversions import Rejected, conversion_for


@pytest.mark.parametrize("target_type, value, expected", [
    ("boolean", 1, True), ("boolean", 0, False), ("boolean", "true", True), ("boolean", "f", False),
    ("boolean", None, None),
    ("integer", 2 ** 31 - 1, 2 ** 31 - 1), ("integer", "42", 42), ("integer", 3.0, 3), ("bigint", -2 ** 63, -2 ** 63),
    ("numeric(8,2)", 12.345, Decimal("12.35")), ("numeric", "1.50", Decimal("1.50")),
    ("character varying(3)", "abc", "abc"), ("text", 7, "7"), ("text", b"hi", "hi"),
    # Timestamps without a time zone and dates become the text the server prints for them.
    ("timestamp without time zone", "2026-01-02 03:04:05", "2026-01-02 03:04:05"),
    ("timestamp without time zone", "2026-01-02 03:04:05.25", "2026-01-02 03:04:05.25"),
    ("timestamp without time zone", "2026-01-02T03:04:05+02:00", "2026-01-02 01:04:05"),
    ("timestamp without time zone", "2026-01-02 03:04:05.250000", "2026-01-02 03:04:05.25"),
    ("timestamp without time zone", "2026-01-02T03:04", "2026-01-02 03:04:00"),
    ("timestamp without time zone", " 2026-01-02 03:04:05 ", "2026-01-02 03:04:05"),
    ("timestamp without time zone", "0987-01-02 03:04:05.000001", "0987-01-02 03:04:05.000001"),
    ("timestamp with time zone", "2026-01-02 03:04", datetime(2026, 1, 2, 3, 4, tzinfo=timezone.utc)),
    ("date", "2026-02-03", "2026-02-03"), ("date", "2026-02-03 10:00:00", "2026-02-03"),
    ("jsonb", '{"a": [1, 2]}', '{"a": [1, 2]}'), ("json", 5, "5"),
])
def test_values_the_target_can_hold(target_type, value, expected):
    assert conversion_for(target_type).convert(value) == expected


@pytest.mark.parametrize("target_type, value, reason", [
    ("boolean", 2, "not_boolean"), ("boolean", "maybe", "not_boolean"),
    ("smallint", 40000, "integer_overflow"), ("integer", 2 ** 31, "integer_overflow"),
    ("bigint", 2 ** 63, "integer_overflow"), ("integer", "12abc", "value_not_of_type"), ("integer", 1.5, "value_not_of_type"),
    ("numeric(4,2)", 100, "integer_overflow"), ("numeric", "NaN", "value_not_of_type"),
    ("character varying(3)", "abcd", "text_too_long"), ("text", "a\x00b", "value_not_of_type"),
    ("timestamp without time zone", "last tuesday", "unparsable_timestamp"),
    ("timestamp with time zone", 1767225600, "unparsable_timestamp"), ("date", "2026-13-01", "unparsable_timestamp"),
    # Shaped as the server prints a timestamp, and still not one.
    ("timestamp without time zone", "2026-02-30 03:04:05", "unparsable_timestamp"),
    ("timestamp without time zone", "2026-01-02 25:04:05", "unparsable_timestamp"),
    ("timestamp without time zone", "2026-01-02 03:04:05.1x", "unparsable_timestamp"),
    ("date", "2026-02-30", "unparsable_timestamp"), ("date", "20x6-02-03", "unparsable_timestamp"),
    ("jsonb", "{oops", "invalid_json"), ("json", "NaN", "invalid_json"), ("jsonb", '"\\u0000"', "invalid_json"),
    ("uuid", "not-a-uuid", "value_not_of_type"),
])
def test_values_the_target_cannot_hold_are_rejected_with_their_reason(target_type, value, reason):
    with pytest.raises(Rejected) as rejected:
        conversion_for(target_type).convert(value)
    assert rejected.value.reason == reason


@pytest.mark.parametrize("target_type, column, unchanged", [
    ("bigint", (1, None, -2 ** 63, 2 ** 63 - 1), True), ("bigint", (1, "2"), False), ("bigint", (1, 2.0), False),
    ("integer", (2 ** 31 - 1, None, -2 ** 31), True), ("integer", (2 ** 31,), False), ("smallint", (None, None), True),
    ("double precision", (1.5, None), True), ("double precision", (1.5, 2), False),
    ("text", ("a", None, ""), True), ("text", ("a\x00b",), False), ("text", (b"a",), False), ("text", (1,), False),
    ("character varying(3)", ("abc", None), True), ("character varying(3)", ("abcd",), False),
])
def test_whole_columns_that_need_no_converting(target_type, column, unchanged):
    conversion = conversion_for(target_type)
    assert conversion.unchanged(column) is unchanged
    if unchanged:  # the promise: converting would have returned every value as it is
        assert [conversion.convert(value) for value in column] == list(column)


def test_conversions_that_change_values_have_no_whole_column_test():
    assert all(conversion_for(kind).unchanged is None for kind in ("boolean", "timestamp without time zone", "date",
                                                                   "jsonb", "numeric(8,2)", "uuid", "bytea"))
