"""The database backend a URL names (kept apart from the protocol the backends implement)."""

from __future__ import annotations

from relay.ledger.database import Database


def open_database(url: str) -> Database:
    """The backend for ``url`` (not yet connected)."""
    if url.startswith("sqlite:///"):
        from relay.ledger.sqlite import SqliteDatabase

        return SqliteDatabase(url.removeprefix("sqlite:///"))
    if url.startswith(("postgresql://", "postgres://")):
        from relay.ledger.postgres import PostgresDatabase

        return PostgresDatabase(url)
    raise ValueError(f"unsupported database URL scheme in {url.split('://')[0]!r}")
