"""SQLite: the embedded default. One connection on one thread per process, WAL mode.

WAL lets the other workers (and the CLI) read while one writes; ``busy_timeout`` makes a writer
wait for another process's write instead of failing. Every call runs on this backend's own
thread, so the event loop never blocks on the file.
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from relay.background import lower_priority
from relay.ledger.database import (
    DatabaseUnavailable,
    Dialect,
    IntegrityViolation,
    RowsRejected,
    Statement,
    placeholders,
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

T = TypeVar("T")

# sqlite3 binds int, float, str and bytes as they are; any other value (None, a bool) is first
# looked up among the registered adapters and, finding none, in a protocol whose failed
# attribute look-up formats an AttributeError: some 3,300 instructions a value, 9 a ledger
# row (counted with callgrind). An adapter for each makes that a dictionary hit: a bool is
# stored as the integer SQLite would store anyway, None as NULL (``{}.get`` returns None for
# any key, without a Python frame).
sqlite3.register_adapter(bool, int)
sqlite3.register_adapter(type(None), {}.get)  # type: ignore[arg-type]

_INSERT_REQUEST = (
    f"INSERT OR IGNORE INTO requests ({', '.join(REQUEST_COLUMNS)}) "
    f"VALUES ({placeholders(len(REQUEST_COLUMNS))})"
)
# Ids per look-up: well under SQLite's limit of bound parameters.
_ID_CHUNK = 500
_INSERT_ATTEMPT = (
    f"INSERT OR IGNORE INTO provider_attempts ({', '.join(ATTEMPT_COLUMNS)}) "
    f"VALUES ({placeholders(len(ATTEMPT_COLUMNS))})"
)
_INSERT_CONTENT = (
    f"INSERT OR IGNORE INTO request_content ({', '.join(CONTENT_COLUMNS)}) "
    f"VALUES ({placeholders(len(CONTENT_COLUMNS))})"
)
# Rows per multi-row INSERT. ``executemany`` steps the statement once per row, and each step
# lets go of the GIL and takes it back: with the event loop busy that is a thread hand-off per
# row. One statement of 100 rows binds them all at once and steps once: half the CPU per row
# (10 -> 5 us for a request row, measured) and a hundredth of the hand-offs. 100 rows of the
# widest table bind 2,500 parameters, well under SQLite's limit (32,766 since 3.32).
_ROWS_PER_INSERT = 100
_UPSERT_ROLLUP = upsert_rollup("usage_daily", ROLLUP_KEY)

_UPSERT_COARSE = [(upsert_rollup(table, key), key) for table, key in COARSE_ROLLUPS.items()]


BUSY_TIMEOUT_S = 5.0


def _enable_wal(conn: sqlite3.Connection) -> None:
    """Switch the file to WAL, waiting out a peer that holds it. Workers open a new file
    together: SQLite answers the journal-mode change with "database is locked" at once,
    without its busy handler, while another connection is converting or migrating it, so
    the wait is ours (seen as a worker that died at start and was respawned)."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    delay = 0.005
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)  # on the database's own thread, never the event loop
        delay = min(delay * 2, 0.1)


class SqliteDatabase:
    """The :class:`~relay.ledger.database.Database` on an SQLite file."""

    dialect: Dialect = "sqlite"

    def __init__(self, path: str) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(
            1, thread_name_prefix="relay-sqlite", initializer=lower_priority
        )
        self._conn: sqlite3.Connection | None = None

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, fn)

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:
            self._conn = self._open()
        try:
            return fn(self._conn)
        except sqlite3.IntegrityError as exc:
            raise IntegrityViolation(str(exc)) from exc
        except (sqlite3.DataError, UnicodeEncodeError, OverflowError) as exc:
            # A value SQLite cannot store (a lone surrogate, an integer past 64 bits).
            raise RowsRejected(f"sqlite: {exc}") from exc
        except sqlite3.ProgrammingError as exc:
            if not str(exc).startswith("Error binding parameter"):
                raise
            raise RowsRejected(f"sqlite: {exc}") from exc
        except sqlite3.OperationalError as exc:
            # Locked past busy_timeout, disk full, file gone: worth retrying later.
            if self._conn.in_transaction:
                self._conn.rollback()
            raise DatabaseUnavailable(f"sqlite: {exc}") from exc

    def _open(self) -> sqlite3.Connection:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode: transactions are opened explicitly with BEGIN.
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        _enable_wal(conn)
        conn.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; WAL keeps it safe
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    async def connect(self) -> None:
        """Open the file (created if missing)."""
        await self._run(lambda conn: None)

    async def migrate(self) -> list[int]:
        """Apply missing migrations; ``BEGIN IMMEDIATE`` serialises concurrent upgraders."""

        def upgrade(conn: sqlite3.Connection) -> list[int]:
            applied: list[int] = []
            conn.execute(render(CREATE_VERSIONS, "sqlite"))
            conn.execute("BEGIN IMMEDIATE")
            try:
                have = {v for (v,) in conn.execute("SELECT version FROM schema_migrations")}
                for migration in MIGRATIONS:
                    if migration.version in have:
                        continue
                    for statement in migration.statements:
                        conn.execute(render(statement, "sqlite"))
                    conn.execute(
                        "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                        (migration.version, migration.description, time.time()),
                    )
                    applied.append(migration.version)
                conn.execute("COMMIT")
            except BaseException:
                conn.rollback()
                raise
            return applied

        return await self._run(upgrade)

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of one query."""
        return await self._run(lambda conn: conn.execute(sql, tuple(args)).fetchall())

    async def transaction(self, statements: Sequence[Statement]) -> list[int]:
        """All statements or none."""

        def run(conn: sqlite3.Connection) -> list[int]:
            conn.execute("BEGIN IMMEDIATE")
            try:
                counts = [conn.execute(sql, tuple(args)).rowcount for sql, args in statements]
                conn.execute("COMMIT")
            except BaseException:
                conn.rollback()
                raise
            return counts

        return await self._run(run)

    async def write_ledger(
        self,
        requests: Sequence[RequestRow],
        attempts: Sequence[AttemptRow],
        contents: Sequence[ContentRow] = (),
    ) -> int:
        """Insert new rows, roll up only the ones that were new, in one transaction."""

        def run(conn: sqlite3.Connection) -> int:
            if _write_all_new(conn, requests, attempts, contents):
                return len(requests)
            return _write_unheld(conn, requests, attempts, contents)

        return await self._run(run)

    async def close(self) -> None:
        """Close the connection and its thread."""

        def shut(conn: sqlite3.Connection) -> None:
            conn.close()

        if self._conn is not None:
            await self._run(shut)
            self._conn = None
        self._executor.shutdown(wait=False)


def _write_all_new(
    conn: sqlite3.Connection,
    requests: Sequence[RequestRow],
    attempts: Sequence[AttemptRow],
    contents: Sequence[ContentRow],
) -> bool:
    """Write a batch none of whose requests the database holds yet, in one transaction; False
    (and nothing written) if it held some.

    A batch is nearly always new, so its requests are inserted at once and SQLite's count of
    inserted rows tells: all of them, and all are rolled up; fewer (``INSERT OR IGNORE``
    skipped ids already there: the batch was written before, its commit unseen), and the
    transaction is rolled back for :func:`_write_unheld`. A look-up of the ids before every
    batch cost about 4,000 instructions a row (callgrind, batches of 500).
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        before = conn.total_changes
        _insert(conn, _INSERT_REQUEST, requests)
        if conn.total_changes - before != len(requests):
            conn.rollback()
            return False
        _write_rest(conn, requests, attempts, contents)
    except BaseException:
        conn.rollback()
        raise
    return True


def _write_unheld(
    conn: sqlite3.Connection,
    requests: Sequence[RequestRow],
    attempts: Sequence[AttemptRow],
    contents: Sequence[ContentRow],
) -> int:
    """Write the requests the database does not hold yet (looked up first) and roll up only
    those, so a batch written twice never counts twice; returns how many were new."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        held: set[str] = set()
        for start in range(0, len(requests), _ID_CHUNK):
            ids = [row.id for row in requests[start : start + _ID_CHUNK]]
            query = f"SELECT id FROM requests WHERE id IN ({placeholders(len(ids))})"
            held.update(found for (found,) in conn.execute(query, ids))
        new = [row for row in requests if row.id not in held]
        _insert(conn, _INSERT_REQUEST, new)
        _write_rest(conn, new, attempts, contents)
    except BaseException:
        conn.rollback()
        raise
    return len(new)


def _write_rest(
    conn: sqlite3.Connection,
    new: Sequence[RequestRow],
    attempts: Sequence[AttemptRow],
    contents: Sequence[ContentRow],
) -> None:
    """The rest of a batch's transaction once its new requests are in: attempts, content,
    the roll-ups of ``new``, and the commit."""
    _insert(conn, _INSERT_ATTEMPT, attempts)
    if contents:
        conn.executemany(_INSERT_CONTENT, contents)
    fine = rollup(new)
    conn.executemany(_UPSERT_ROLLUP, fine)
    for sql, key in _UPSERT_COARSE:
        conn.executemany(sql, coarser(fine, key))
    conn.execute("COMMIT")


def _insert(conn: sqlite3.Connection, insert: str, rows: Sequence[Sequence[Any]]) -> None:
    """``insert`` (one row's ``INSERT ... VALUES (?, ...)``) for every row: whole chunks as
    multi-row statements (see :data:`_ROWS_PER_INSERT`), the rest row by row."""
    whole = len(rows) - len(rows) % _ROWS_PER_INSERT
    if whole:
        head, _, values = insert.partition(" VALUES ")
        chunk = f"{head} VALUES {', '.join([values] * _ROWS_PER_INSERT)}"
        for start in range(0, whole, _ROWS_PER_INSERT):
            flat = itertools.chain.from_iterable(rows[start : start + _ROWS_PER_INSERT])
            conn.execute(chunk, tuple(flat))
    if whole < len(rows):
        conn.executemany(insert, rows[whole:])
