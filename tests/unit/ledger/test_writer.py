"""The ledger writer: batches, retries while the database is away, bounded drops, final flush."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from relay.ledger.database import DatabaseUnavailable
from relay.ledger.records import AttemptRow, RequestRow
from relay.ledger.writer import LedgerWriter
from tests.unit.ledger.test_database import attempt_row, request_row


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
