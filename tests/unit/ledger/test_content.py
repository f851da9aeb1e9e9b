"""``request_content`` (migration 5) on a real SQLite file and a real PostgreSQL server: written
with its request's row in one transaction, once however often the batch is written, deleted at
its own expiry or with its request."""

from __future__ import annotations

import asyncio
import time

from relay.ledger.records import DAY_S, ContentRow
from relay.ledger.retention import Purger
from tests.unit.ledger.test_database import opened, request_row


def test_content_written_with_its_row_and_purged(database_url: str) -> None:
    async def main() -> None:
        db = await opened(database_url)
        await db.migrate()
        now = time.time()
        today = int(now // DAY_S)
        rows = [request_row(n, day=today) for n in ("keep", "expire")]
        rows.append(request_row("old", day=today - 40))
        contents = [
            ContentRow("keep", now, now + 7 * DAY_S, "full", "prompt \u00e9", "answer"),
            ContentRow("expire", now, now - 1, "redacted", "p", "c"),
            ContentRow("old", now, now + 7 * DAY_S, "full", "p", "c"),
        ]
        assert await db.write_ledger(rows, [], contents) == 3
        assert await db.write_ledger(rows, [], contents) == 0  # a batch written again
        got = await db.fetch("SELECT request_id, store, prompt FROM request_content")
        assert sorted(got) == [
            ("expire", "redacted", "p"),
            ("keep", "full", "prompt \u00e9"),
            ("old", "full", "p"),
        ]
        purger = Purger(db, ledger_days=30, responses=False)
        await purger.purge(now)
        left = await db.fetch("SELECT request_id FROM request_content")
        assert left == [("keep",)]  # expired at its own date; "old" went with its request
        assert purger.content_deleted == 1
        await db.close()

    asyncio.run(main())
