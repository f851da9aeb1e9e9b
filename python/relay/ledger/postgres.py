"""PostgreSQL through asyncpg: the ledger and the key store shared by several gateway hosts.

A small pool per worker process. Connection failures surface as
:class:`~relay.ledger.database.DatabaseUnavailable` so the ledger writer and the key poller
retry; the pool reconnects by itself once the server is back.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import asyncpg

from relay.ledger.database import (
    DatabaseUnavailable,
    Dialect,
    IntegrityViolation,
    RowsRejected,
    Statement,
)
from relay.ledger.records import (
    ATTEMPT_COLUMNS,
    COARSE_ROLLUPS,
    CONTENT_COLUMNS,
    REQUEST_COLUMNS,
    ROLLUP_KEY,
    AttemptRow,
    ContentRow,
    RequestRow,
    coarser,
    rollup,
    upsert_rollup,
)
from relay.ledger.schema import CREATE_VERSIONS, MIGRATIONS, render

# Any migration on any host takes this lock first (an arbitrary constant: "relay" in ASCII).
_MIGRATION_LOCK = 0x72656C6179

_PG_TYPES = {
    "id": "text", "request_id": "text", "ts": "float8", "day": "int4", "org": "text",
    "tenant": "text", "key_id": "text", "key_prefix": "text", "use_case": "text",
    "endpoint": "text", "model": "text", "provider": "text", "deployment": "text",
    "status": "int4", "error": "text", "stream": "bool", "latency_ms": "float8",
    "ttft_ms": "float8", "prompt_tokens": "int4", "completion_tokens": "int4",
    "cached_tokens": "int4", "cost_usd": "float8", "cache_hit": "bool", "truncated": "bool",
    "attempts": "int4", "cost_saved_usd": "float8",
}  # fmt: skip
# One statement inserts a whole batch (one array per column) and reports which ids were new.
_INSERT_REQUESTS = (
    f"INSERT INTO requests ({', '.join(REQUEST_COLUMNS)}) SELECT * FROM unnest("
    + ", ".join(f"${i + 1}::{_PG_TYPES[c]}[]" for i, c in enumerate(REQUEST_COLUMNS))
    + ") ON CONFLICT (id) DO NOTHING RETURNING id"
)
_INSERT_ATTEMPT = (
    f"INSERT INTO provider_attempts ({', '.join(ATTEMPT_COLUMNS)}) VALUES ("
    + ", ".join(f"${i + 1}" for i in range(len(ATTEMPT_COLUMNS)))
    + ") ON CONFLICT (request_id, attempt) DO NOTHING"
)
_INSERT_CONTENT = (
    f"INSERT INTO request_content ({', '.join(CONTENT_COLUMNS)}) VALUES ("
    + ", ".join(f"${i + 1}" for i in range(len(CONTENT_COLUMNS)))
    + ") ON CONFLICT (request_id) DO NOTHING"
)
_QMARK = re.compile(r"\?")
# Errors that mean "not now", as opposed to a bad statement.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
)
# Errors that mean "not these values": SQLSTATE class 22 (text holding NUL, a number out of
# range), and asyncpg's own refusal to encode an argument (also a DataError).
_REJECTED: tuple[type[BaseException], ...] = (asyncpg.exceptions.DataError,)


@lru_cache(maxsize=512)
def numbered(sql: str) -> str:
    """``?`` placeholders -> ``$1, $2, ...`` (the SQL text here never has a literal ``?``)."""
    counter = iter(range(1, 10_000))
    return _QMARK.sub(lambda _: f"${next(counter)}", sql)


_UPSERT_ROLLUP = numbered(upsert_rollup("usage_daily", ROLLUP_KEY))
# The coarser roll-ups (migration 6), upserted from the same sums.
_UPSERT_COARSE = [
    (numbered(upsert_rollup(table, key)), key) for table, key in COARSE_ROLLUPS.items()
]


class PostgresDatabase:
    """The :class:`~relay.ledger.database.Database` on a PostgreSQL server."""

    dialect: Dialect = "postgresql"

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 4) -> None:
        self.url = url
        self._min, self._max = min_size, max_size
        self._pool: Any = None

    async def connect(self) -> None:
        """Create the pool; fails if the server cannot be reached now."""
        try:
            self._pool = await asyncpg.create_pool(
                self.url,
                min_size=self._min,
                max_size=self._max,
                timeout=5,
                command_timeout=30,
                # Statement caching breaks behind PgBouncer in transaction mode; these
                # statements are few and cheap to plan.
                statement_cache_size=0,
            )
        except _UNAVAILABLE as exc:
            raise DatabaseUnavailable(f"postgresql: {exc}") from exc

    def _need_pool(self) -> Any:
        if self._pool is None:
            raise DatabaseUnavailable("postgresql: not connected")
        return self._pool

    async def migrate(self) -> list[int]:
        """Apply missing migrations under an advisory lock held for the transaction."""
        try:
            async with self._need_pool().acquire() as conn, conn.transaction():
                await conn.execute(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
                await conn.execute(render(CREATE_VERSIONS, "postgresql"))
                have = {r[0] for r in await conn.fetch("SELECT version FROM schema_migrations")}
                applied: list[int] = []
                for migration in MIGRATIONS:
                    if migration.version in have:
                        continue
                    for statement in migration.statements:
                        await conn.execute(render(statement, "postgresql"))
                    await conn.execute(
                        "INSERT INTO schema_migrations VALUES ($1, $2, $3)",
                        migration.version,
                        migration.description,
                        time.time(),
                    )
                    applied.append(migration.version)
                return applied
        except _UNAVAILABLE as exc:
            raise DatabaseUnavailable(f"postgresql: {exc}") from exc

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of one query, as tuples."""
        try:
            rows = await self._need_pool().fetch(numbered(sql), *args)
        except _UNAVAILABLE as exc:
            raise DatabaseUnavailable(f"postgresql: {exc}") from exc
        return [tuple(row) for row in rows]

    async def transaction(self, statements: Sequence[Statement]) -> list[int]:
        """All statements or none; row counts parsed from each status tag (``UPDATE 3``)."""
        try:
            async with self._need_pool().acquire() as conn, conn.transaction():
                counts = []
                for sql, args in statements:
                    tag = await conn.execute(numbered(sql), *args)
                    counts.append(int(tag.rsplit(" ", 1)[-1]) if tag[-1:].isdigit() else 0)
                return counts
        except asyncpg.exceptions.IntegrityConstraintViolationError as exc:
            raise IntegrityViolation(str(exc)) from exc
        except _REJECTED as exc:
            raise RowsRejected(f"postgresql: {exc}") from exc
        except _UNAVAILABLE as exc:
            raise DatabaseUnavailable(f"postgresql: {exc}") from exc

    async def write_ledger(
        self,
        requests: Sequence[RequestRow],
        attempts: Sequence[AttemptRow],
        contents: Sequence[ContentRow] = (),
    ) -> int:
        """One multi-row insert for the requests, then attempts and roll-up of the new ones."""
        columns = [list(column) for column in zip(*requests, strict=True)] if requests else []
        try:
            async with self._need_pool().acquire() as conn, conn.transaction():
                new_ids = set()
                if requests:
                    new_ids = {r[0] for r in await conn.fetch(_INSERT_REQUESTS, *columns)}
                if attempts:
                    await conn.executemany(_INSERT_ATTEMPT, attempts)
                if contents:
                    await conn.executemany(_INSERT_CONTENT, contents)
                new = [row for row in requests if row.id in new_ids]
                if new:
                    fine = rollup(new)
                    await conn.executemany(_UPSERT_ROLLUP, fine)
                    for sql, key in _UPSERT_COARSE:
                        await conn.executemany(sql, coarser(fine, key))
                return len(new)
        except asyncpg.exceptions.IntegrityConstraintViolationError as exc:
            raise IntegrityViolation(str(exc)) from exc
        except _REJECTED as exc:
            raise RowsRejected(f"postgresql: {exc}") from exc
        except _UNAVAILABLE as exc:
            raise DatabaseUnavailable(f"postgresql: {exc}") from exc

    async def close(self) -> None:
        """Close the pool, waiting briefly for connections in use."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await pool.close()
            except Exception:
                pool.terminate()
