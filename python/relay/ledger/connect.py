"""The database backend a URL names (kept apart from the protocol the backends implement)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from relay.config.tenancy import NO_DATABASE
from relay.ledger.database import Database, DatabaseUnavailable, Dialect, Statement
from relay.ledger.records import AttemptRow, ContentRow, RequestRow


def open_database(url: str) -> Database:
    """The backend for ``url`` (not yet connected)."""
    if url == NO_DATABASE:
        return NoDatabase()
    if url.startswith("sqlite:///"):
        from relay.ledger.sqlite import SqliteDatabase

        return SqliteDatabase(url.removeprefix("sqlite:///"))
    if url.startswith(("postgresql://", "postgres://")):
        from relay.ledger.postgres import PostgresDatabase

        return PostgresDatabase(url)
    raise ValueError(f"unsupported database URL scheme in {url.split('://')[0]!r}")


class NoDatabase:
    """``database.url: none``: nothing is kept. Every call says so; the gateway does not make
    them (no ledger, no key store, no stored responses), the CLI reports it."""

    dialect: Dialect = "sqlite"

    def _none(self) -> DatabaseUnavailable:
        return DatabaseUnavailable("there is no database: database.url is none")

    async def connect(self) -> None:
        """Refused: there is nothing to connect to."""
        raise self._none()

    async def migrate(self) -> list[int]:
        """Refused."""
        raise self._none()

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Refused."""
        raise self._none()

    async def transaction(self, statements: Sequence[Statement]) -> list[int]:
        """Refused."""
        raise self._none()

    async def write_ledger(
        self,
        requests: Sequence[RequestRow],
        attempts: Sequence[AttemptRow],
        contents: Sequence[ContentRow] = (),
    ) -> int:
        """Refused."""
        raise self._none()

    async def close(self) -> None:
        """Nothing to close."""
