"""How PostgreSQL's SQL is written: names. (Plans on PostgreSQL: being written.)"""
from __future__ import annotations

from app.core.engines.base import Dialect
from app.core.errors import PlanError


class PostgresDialect(Dialect):
    def _refused(self):
        return PlanError("Plans for PostgreSQL environments are not available yet: nothing ran.")

    def statement_is_complete(self, text: str) -> bool:
        raise self._refused()

    def read_only_query_problem(self, sql: str):
        raise self._refused()

    def split_statements(self, text: str) -> list[tuple[str, int]]:
        raise self._refused()

    def forbidden_reason(self, sql: str) -> str | None:
        raise self._refused()

    def quote_identifier(self, name: str) -> str:
        return '"' + name.replace('"', '""') + '"'
