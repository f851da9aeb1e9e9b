"""The database layer on a real SQLite file and a real PostgreSQL server."""

from __future__ import annotations

import asyncio
import time

import pytest

from relay.ledger.connect import open_database
from relay.ledger.database import Database
from relay.ledger.records import AttemptRow, RequestRow
from relay.ledger.schema import MIGRATIONS


def request_row(rid: str, *, day: int = 20000, tenant: str = "t1", cost: float = 0.5) -> RequestRow:
    return RequestRow(
        id=rid, request_id="req_" + rid, ts=day * 86400.0 + 10, day=day, org="default",
        tenant=tenant, key_id="k1", key_prefix="gw-sk-abcd", use_case=None,
        endpoint="/chat/completions", model="gpt-4o", provider="openai", deployment="gpt-4o-x",
        status=200, error=None, stream=True, latency_ms=12.5, ttft_ms=3.0, prompt_tokens=10,
        completion_tokens=5, cached_tokens=2, cost_usd=cost, cache_hit=False, truncated=False,
        attempts=1,
    )  # fmt: skip


def attempt_row(rid: str, n: int = 1) -> AttemptRow:
    return AttemptRow(rid, n, "openai", "gpt-4o-x", 200, None, 12.0, 2.0, 10, 5)


async def opened(url: str) -> Database:
    db = open_database(url)
    await db.connect()
    return db


def test_migrations_apply_once_even_when_workers_race(database_url: str) -> None:
    async def main() -> None:
        dbs = [await opened(database_url) for _ in range(3)]
        results = await asyncio.gather(*(db.migrate() for db in dbs))
        assert sorted(map(tuple, results)) == [(), (), tuple(m.version for m in MIGRATIONS)]
        assert await dbs[0].migrate() == []
        rows = await dbs[0].fetch("SELECT version FROM schema_migrations")
        assert sorted(r[0] for r in rows) == [m.version for m in MIGRATIONS]
        for db in dbs:
            await db.close()

    asyncio.run(main())


def test_ledger_writes_are_idempotent_and_roll_up_once(database_url: str) -> None:
    async def main() -> None:
        db = await opened(database_url)
        await db.migrate()
        batch = [request_row("a"), request_row("b", cost=0.25), request_row("c", tenant="t2")]
        attempts = [attempt_row("a"), attempt_row("b"), attempt_row("b", 2), attempt_row("c")]
        assert await db.write_ledger(batch, attempts) == 3
        # The same batch again (a retry after a lost acknowledgement) plus one new row.
        assert await db.write_ledger([*batch, request_row("d")], attempts) == 1
        (count,) = (await db.fetch("SELECT count(*) FROM requests"))[0]
        (attempt_count,) = (await db.fetch("SELECT count(*) FROM provider_attempts"))[0]
        assert (count, attempt_count) == (4, 4)
        rollup = await db.fetch(
            "SELECT tenant, requests, prompt_tokens, cost_usd FROM usage_daily ORDER BY tenant"
        )
        assert [(t, n, p, round(c, 6)) for t, n, p, c in rollup] == [
            ("t1", 3, 30, 1.25),
            ("t2", 1, 10, 0.5),
        ]
        row = (
            await db.fetch("SELECT stream, cache_hit, ttft_ms FROM requests WHERE id = ?", ["a"])
        )[0]
        assert (bool(row[0]), bool(row[1]), row[2]) == (True, False, 3.0)
        await db.close()

    asyncio.run(main())


def test_large_batches_land_whole_across_insert_chunks(database_url: str) -> None:
    """SQLite writes whole chunks as multi-row INSERTs and the rest row by row: a batch of
    250 (two chunks and a half), written again with 60 more, keeps every row exactly once."""

    async def main() -> None:
        db = await opened(database_url)
        await db.migrate()
        rows = [request_row(f"r{i:03d}", cost=0.001 * i) for i in range(250)]
        attempts = [attempt_row(r.id, n) for r in rows for n in (1, 2)]
        assert await db.write_ledger(rows, attempts) == 250
        more = [request_row(f"r{i:03d}") for i in range(250, 310)]
        assert await db.write_ledger([*rows, *more], [attempt_row(r.id) for r in more]) == 60
        (count, cost), *_ = await db.fetch("SELECT count(*), sum(cost_usd) FROM requests")
        (attempt_count,), *_ = await db.fetch("SELECT count(*) FROM provider_attempts")
        ids = [r for (r,) in await db.fetch("SELECT id FROM requests ORDER BY id")]
        assert (count, attempt_count) == (310, 560)
        assert ids == [f"r{i:03d}" for i in range(310)]
        assert round(cost, 6) == round(sum(0.001 * i for i in range(250)) + 60 * 0.5, 6)
        (summed,), *_ = await db.fetch("SELECT sum(requests) FROM usage_daily")
        assert summed == 310
        # None is stored as NULL and a bool as what the database calls true (SQLite: 1).
        (nulls, streamed, hits), *_ = await db.fetch(
            "SELECT count(*) FILTER (WHERE use_case IS NULL AND error IS NULL), "
            "count(*) FILTER (WHERE stream), count(*) FILTER (WHERE cache_hit) FROM requests"
        )
        assert (nulls, streamed, hits) == (310, 310, 0)
        await db.close()

    asyncio.run(main())


def test_transaction_is_all_or_nothing(database_url: str) -> None:
    async def main() -> None:
        db = await opened(database_url)
        await db.migrate()
        now = time.time()
        insert = "INSERT INTO organizations (id, name, created_at) VALUES (?, ?, ?)"
        assert await db.transaction([(insert, ["o1", "one", now])]) == [1]
        with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
            await db.transaction([(insert, ["o2", "two", now]), (insert, ["o3", "one", now])])
        rows = await db.fetch("SELECT name FROM organizations ORDER BY name")
        assert rows == [("one",)]
        counts = await db.transaction(
            [("UPDATE change_marker SET value = value + 1 WHERE id = ?", [1])]
        )
        assert counts == [1]
        await db.close()

    asyncio.run(main())
