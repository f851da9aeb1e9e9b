"""The stored-responses writer on a real SQLite file and a real PostgreSQL server: a response
the database cannot take never holds back the others, and the queue is bounded in bytes."""

from __future__ import annotations

import asyncio
import time

from relay.ledger.responses import ResponseStore, StoredResponse
from tests.unit.ledger.test_database import opened


def stored(rid: str, conversation: bytes = b'[{"role":"user","content":"hi"}]') -> StoredResponse:
    return StoredResponse(
        rid,
        "default",
        "-",
        time.time(),
        "echo",
        None,
        conversation,
        b'{"id":"' + rid.encode() + b'"}',
    )


def test_a_response_the_database_refuses_is_dropped_alone(database_url: str) -> None:
    async def main() -> None:
        db = await opened(database_url)
        await db.migrate()
        store = ResponseStore(db, flush_interval_s=0.05)
        for i in range(5):
            store.put(stored(f"resp_{i}"))
        store.put(stored("resp_not_utf8", b'[{"k\xff":1}]'))  # bytes as the client sent them
        nul = stored("resp_nul", b'[{"content":"a\x00b"}]')  # text PostgreSQL refuses
        store.put(nul)
        for i in range(5, 10):
            store.put(stored(f"resp_{i}"))
        await store.flush()
        ids = {r[0] for r in await db.fetch("SELECT id FROM responses")}
        expected = {f"resp_{i}" for i in range(10)}
        if db.dialect == "sqlite":  # SQLite stores NUL
            expected.add("resp_nul")
        assert ids == expected
        assert store.rejected == 2 - (db.dialect == "sqlite")
        assert store.pending_bytes == 0
        # Nothing is left to retry: the next flush writes nothing and fails on nothing.
        await store.flush()
        assert await store.get("resp_not_utf8", "default", "-", retry=False) is None
        await db.close()

    asyncio.run(main())


def test_the_queue_is_bounded_in_bytes_and_counts_what_it_drops(database_url: str) -> None:
    async def main() -> None:
        db = await opened(database_url)
        await db.migrate()
        big = b"[" + b'"' + b"x" * 4000 + b'"]'
        store = ResponseStore(db, max_pending_bytes=10_000)
        for i in range(4):
            store.put(stored(f"resp_{i}", big))
        assert store.dropped == 2
        assert 8000 < store.pending_bytes <= 10_000 and store.dropped_bytes > 8000
        await store.flush()
        assert store.pending_bytes == 0
        ids = {r[0] for r in await db.fetch("SELECT id FROM responses")}
        assert ids == {"resp_0", "resp_1"}
        store.put(stored("resp_4", big))  # room again once written
        assert store.dropped == 2 and store.pending_bytes > 0
        await db.close()

    asyncio.run(main())
