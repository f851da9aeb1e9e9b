"""Retention on a real SQLite file and a real PostgreSQL server: what is past it goes, in
batches, with its provider attempts; what is not, and the daily roll-up, stay."""

from __future__ import annotations

import asyncio
import time

import pytest

from relay.ledger import retention
from relay.ledger.records import DAY_S
from relay.ledger.responses import ResponseStore, StoredResponse
from relay.ledger.retention import Purger
from tests.unit.ledger.test_database import attempt_row, opened, request_row


def test_purge_deletes_what_is_past_retention_in_batches(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "BATCH", 3)  # several batches of a few rows

    async def main() -> None:
        db = await opened(database_url)
        await db.migrate()
        now = time.time()
        today = int(now // DAY_S)
        old = [request_row(f"old{i}", day=today - 40) for i in range(7)]
        new = [request_row(f"new{i}", day=today - 10) for i in range(2)]
        await db.write_ledger(
            old + new, [attempt_row(r.id) for r in old + new] + [attempt_row("old0", 2)]
        )
        store = ResponseStore(db, retention_days=1)
        for rid, created in (("resp_old", now - 2 * DAY_S), ("resp_new", now)):
            store.put(StoredResponse(rid, "default", "-", created, "echo", None, b"[]", b"{}"))
        await store.flush()

        purger = Purger(db, ledger_days=30, responses=True)
        assert await purger.purge(now) == (7, 1)
        ids = sorted(r[0] for r in await db.fetch("SELECT id FROM requests"))
        attempts = sorted(r[0] for r in await db.fetch("SELECT request_id FROM provider_attempts"))
        assert ids == attempts == ["new0", "new1"]
        assert [r[0] for r in await db.fetch("SELECT id FROM responses")] == ["resp_new"]
        (requests,) = (await db.fetch("SELECT sum(requests) FROM usage_daily"))[0]
        assert requests == 9  # the roll-up keeps the history
        assert await purger.purge(now) == (0, 0)
        # Kept forever: nothing of the ledger is deleted, however late.
        forever = Purger(db, ledger_days=None, responses=False)
        assert not forever.active and await forever.purge(now + 400 * DAY_S) == (0, 0)
        assert len(await db.fetch("SELECT id FROM requests")) == 2
        await db.close()

    asyncio.run(main())
