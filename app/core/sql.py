"""The one place that quotes identifiers and normalises SQL text."""


def quote_identifier(name: str) -> str:
    """Quote any table, column, index or trigger name for use in generated SQL.

    Names come from databases we do not control (a table may be called
    `x"; DROP TABLE y; --`), so every generated statement goes through here.
    """
    if "\x00" in name:
        raise ValueError(f"identifier {name!r} contains a NUL character")
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """Quote a string literal (for generated DDL defaults and PRAGMA arguments)."""
    return "'" + value.replace("'", "''") + "'"
