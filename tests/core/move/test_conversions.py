"""Each SQLite value judged by the PostgreSQL column type it goes to, as the server would judge it."""
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

from app.core.move.conversions import Rejected, conversion_for


@pytest.mark.parametrize("target_type, value, expected", [
    ("boolean", 1, True), ("boolean", 0, False), ("boolean", "true", True), ("boolean", "f", False),
    ("boolean", None, None),
    ("integer", 2 ** 31 - 1, 2 ** 31 - 1), ("integer", "42", 42), ("integer", 3.0, 3), ("bigint", -2 ** 63, -2 ** 63),
    ("numeric(8,2)", 12.345, Decimal("12.35")), ("numeric", "1.50", Decimal("1.50")),
    ("character varying(3)", "abc", "abc"), ("text", 7, "7"), ("text", b"hi", "hi"),
    ("timestamp without time zone", "2026-01-02 03:04:05", datetime(2026, 1, 2, 3, 4, 5)),
    ("timestamp without time zone", "2026-01-02T03:04:05+02:00", datetime(2026, 1, 2, 1, 4, 5)),
    ("timestamp with time zone", "2026-01-02 03:04", datetime(2026, 1, 2, 3, 4, tzinfo=timezone.utc)),
    ("date", "2026-02-03", date(2026, 2, 3)),
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
    ("jsonb", "{oops", "invalid_json"), ("json", "NaN", "invalid_json"), ("jsonb", '"\\u0000"', "invalid_json"),
    ("uuid", "not-a-uuid", "value_not_of_type"),
])
def test_values_the_target_cannot_hold_are_rejected_with_their_reason(target_type, value, reason):
    with pytest.raises(Rejected) as rejected:
        conversion_for(target_type).convert(value)
    assert rejected.value.reason == reason
