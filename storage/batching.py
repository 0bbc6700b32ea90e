"""Many values in one WHERE clause, e.g. the schools, people and outbox keys a sweep looks up (thousands of them
at national size).

``column IN (:p1, :p2, ...)`` with thousands of placeholders costs more to render, send and parse than the
lookup itself (a steady national sweep spent ~60 ms of its ~340 ms there). On PostgreSQL the values go as one
array parameter (``column = ANY(:values)``), in one statement; SQLite keeps ``IN`` in chunks of 500 (its limit
on bound variables)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import ColumnElement, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY

SQLITE_CHUNK = 500


def _is_postgres(session: Any) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def chunks(session: Any, values: Iterable, size: int = SQLITE_CHUNK) -> Iterator[list]:
    """The values in as few pieces as the database takes: one on PostgreSQL, ``size`` at a time on SQLite."""
    items = list(values)
    if not items:
        return
    if _is_postgres(session):
        yield items
        return
    for i in range(0, len(items), size):
        yield items[i : i + size]


def any_of(session: Any, column: Any, values: Sequence) -> ColumnElement[bool]:
    """``column IN values``: one array parameter on PostgreSQL, ``IN (...)`` elsewhere (pass a chunk)."""
    if _is_postgres(session):
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    return column.in_(list(values))
