"""The one interface every database backend offers, and the choice by ``database.url``.

SQL is written once with ``?`` placeholders; the PostgreSQL backend numbers them. Statements
that must be atomic go through :meth:`Database.transaction`; ids are generated in Python, so
no statement of a transaction needs the result of another.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol

from relay.ledger.records import AttemptRow, ContentRow, RequestRow

Dialect = Literal["sqlite", "postgresql"]
Statement = tuple[str, Sequence[Any]]


class DatabaseUnavailable(Exception):
    """The database could not be reached or refused the work; the caller may retry later."""


class RowsRejected(Exception):
    """The database refused a value of the rows themselves (text holding NUL, a number out of
    range, a type it cannot store): writing the same rows again can never succeed."""


class IntegrityViolation(RowsRejected):
    """A statement broke a constraint (a duplicate name, a missing reference)."""


class Database(Protocol):
    """A connection pool (PostgreSQL) or a connection on its own thread (SQLite)."""

    dialect: Dialect

    async def connect(self) -> None:
        """Open the connection(s); raises :class:`DatabaseUnavailable`."""
        ...

    async def migrate(self) -> list[int]:
        """Apply the migrations this database lacks, under a lock; return their versions."""
        ...

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a query and return its rows as tuples."""
        ...

    async def transaction(self, statements: Sequence[Statement]) -> list[int]:
        """Run statements in one transaction; return each one's affected row count."""
        ...

    async def write_ledger(
        self,
        requests: Sequence[RequestRow],
        attempts: Sequence[AttemptRow],
        contents: Sequence[ContentRow] = (),
    ) -> int:
        """Insert ledger rows (ignoring ones already there) and roll them up, atomically;
        ``contents``: the text kept by ``log_content`` policies, in the same transaction.

        Returns how many request rows were new.
        """
        ...

    async def close(self) -> None:
        """Close the connection(s)."""
        ...


def placeholders(count: int) -> str:
    """``?, ?, ?`` for ``count`` values."""
    return ", ".join("?" * count)
