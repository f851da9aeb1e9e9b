"""The ledger writer: batches, retries while the database is away, bounded drops, final flush."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from relay.ledger.database import DatabaseUnavailable, RowsRejected
from relay.ledger.records import AttemptRow, RequestRow
from relay.ledger.writer import LedgerWriter
from tests.unit.ledger.test_database import attempt_row, opened, request_row


class FlakyDb:
    """Records batches; fails while ``down`` is set."""

    def __init__(self) -> None:
        self.down = False
        self.batches: list[list[str]] = []
        self.attempts: list[AttemptRow] = []

    async def write_ledger(
        self, requests: Sequence[RequestRow], attempts: Sequence[AttemptRow]
    ) -> int:
        await asyncio.sleep(0)
        if self.down:
            raise DatabaseUnavailable("down")
        self.batches.append([r.id for r in requests])
        self.attempts += attempts
        return len(requests)


def test_batches_retries_and_final_flush() -> None:
    async def main() -> None:
        db = FlakyDb()
        writer = LedgerWriter(db, queue_size=1000, batch_size=10, flush_interval_s=0.05)  # type: ignore[arg-type]
        writer.start()
        for i in range(25):
            writer.put((request_row(f"r{i}"), [attempt_row(f"r{i}")]))
        await asyncio.sleep(0.2)
        assert [len(b) for b in db.batches] == [10, 10, 5]
        db.down = True
        for i in range(25, 40):
            writer.put((request_row(f"r{i}"), []))
        await asyncio.sleep(0.5)
        assert writer.failures > 0 and sum(map(len, db.batches)) == 25
        db.down = False
        await asyncio.sleep(1.0)
        assert sum(map(len, db.batches)) == 40 and writer.failures == 0
        writer.put((request_row("last"), []))
        await writer.stop()  # flushes without waiting for the interval
        ids = [rid for batch in db.batches for rid in batch]
        assert ids == [f"r{i}" for i in range(40)] + ["last"]
        assert len(db.attempts) == 25 and writer.dropped == 0

    asyncio.run(main())


def test_full_queue_drops_and_counts_never_blocks() -> None:
    async def main() -> None:
        db = FlakyDb()
        db.down = True
        writer = LedgerWriter(db, queue_size=5, batch_size=100, flush_interval_s=10)  # type: ignore[arg-type]
        for i in range(8):
            writer.put((request_row(f"r{i}"), []))
        assert (writer.pending, writer.dropped) == (5, 3)
        # Shutdown with the database still down: gives up at the deadline and counts the loss.
        writer.start()
        await writer.stop(timeout_s=0.3)
        assert writer.dropped == 8 and writer.pending == 0

    asyncio.run(main())


def test_a_row_the_database_refuses_never_stops_the_writer(database_url: str) -> None:
    """Real SQLite and PostgreSQL: rows they cannot store are cleaned or dropped (counted),
    every other row of their batch and after it is written."""

    async def main() -> None:
        db = await opened(database_url)
        await db.migrate()
        writer = LedgerWriter(db, batch_size=50, flush_interval_s=0.05)
        writer.start()
        for i in range(20):
            writer.put((request_row(f"r{i}"), [attempt_row(f"r{i}")]))
        # Text holding NUL (PostgreSQL refuses it) and a count past 32 bits: cleaned, kept.
        writer.put((request_row("nul")._replace(model="gpt\x00-4o"), [attempt_row("nul")]))
        big = attempt_row("big")._replace(prompt_tokens=2**40)
        writer.put((request_row("big")._replace(completion_tokens=2**63), [big]))
        # A value no cleaning can make storable: dropped, alone.
        writer.put((request_row("bad")._replace(latency_ms={"x": 1}), []))  # type: ignore[arg-type]
        for i in range(20, 30):
            writer.put((request_row(f"r{i}"), []))
        await writer.stop()
        ids = {r[0] for r in await db.fetch("SELECT id FROM requests")}
        assert ids == {f"r{i}" for i in range(30)} | {"nul", "big"}
        assert (writer.rejected, writer.dropped, writer.written) == (1, 1, 32)
        rows = await db.fetch(
            "SELECT model, completion_tokens FROM requests WHERE id IN (?, ?)", ["nul", "big"]
        )
        # SQLite stores NUL; PostgreSQL gets the text without it.
        assert sorted((m.replace("\x00", ""), n) for m, n in rows) == [
            ("gpt-4o", 5),
            ("gpt-4o", 2**31 - 1),
        ]
        (tokens,) = (
            await db.fetch(
                "SELECT prompt_tokens FROM provider_attempts WHERE request_id = ?", ["big"]
            )
        )[0]
        assert tokens == 2**31 - 1
        (requests,) = (await db.fetch("SELECT sum(requests) FROM usage_daily"))[0]
        assert requests == 32
        await db.close()

    asyncio.run(main())


class RefusingDb(FlakyDb):
    """Refuses any batch holding the id ``bad``; goes down after ``down_after`` writes."""

    def __init__(self, down_after: int) -> None:
        super().__init__()
        self.down_after = down_after

    async def write_ledger(
        self, requests: Sequence[RequestRow], attempts: Sequence[AttemptRow]
    ) -> int:
        if len(self.batches) >= self.down_after:
            self.down = True
        if not self.down and any(r.id == "bad" for r in requests):
            raise RowsRejected("refused")
        return await super().write_ledger(requests, attempts)


def test_an_outage_while_isolating_a_row_loses_and_repeats_nothing() -> None:
    async def main() -> None:
        db = RefusingDb(down_after=2)
        writer = LedgerWriter(db, batch_size=16, flush_interval_s=0.05)  # type: ignore[arg-type]
        writer.start()
        names = [f"r{i}" for i in range(7)] + ["bad"] + [f"r{i}" for i in range(7, 15)]
        for name in names:
            writer.put((request_row(name), []))
        await asyncio.sleep(0.3)
        assert writer.failures > 0 and len(db.batches) == 2
        db.down = False
        db.down_after = 10**6
        await asyncio.sleep(1.0)
        await writer.stop()
        written = [rid for batch in db.batches for rid in batch]
        assert written == [n for n in names if n != "bad"]
        assert (writer.rejected, writer.written) == (1, 15)

    asyncio.run(main())
