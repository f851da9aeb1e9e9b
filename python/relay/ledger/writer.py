"""The ledger's background writer: a bounded queue drained in batches, off the request path.

The tap only appends to a deque (no await, no lock). The writer wakes every
``flush_interval_s``, or as soon as a batch is full, and writes batches in one transaction
each. While the database is away it keeps the batch in hand and retries with back-off; rows
that arrive meanwhile wait in the queue up to ``queue_size``, and any beyond that are dropped,
counted and logged. A batch the database refuses for one of its rows (a value it cannot store)
is not retried as it is: that row is isolated, cleaned or dropped (counted and logged), and the
others are written (see :mod:`relay.ledger.isolate`). :meth:`LedgerWriter.stop` flushes what is
left before the worker exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Sequence

from relay.ledger.database import Database, RowsRejected
from relay.ledger.isolate import unwritten, write_isolating
from relay.ledger.records import AttemptRow, ContentRow, RequestRow, scrubbed

log = logging.getLogger("relay.ledger")

# A request's row, its attempts' rows and, when a ``log_content`` policy kept it, its text
# (an entry of two members has none).
Entry = tuple[RequestRow, list[AttemptRow], ContentRow | None]


class LedgerWriter:
    """Queue in front of :meth:`Database.write_ledger`."""

    def __init__(
        self,
        db: Database,
        *,
        queue_size: int = 50_000,
        batch_size: int = 500,
        flush_interval_s: float = 0.5,
    ) -> None:
        self.db = db
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self._queue: deque[Entry] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._deadline: float | None = None
        self.written = 0
        # Transactions that wrote a batch (or the part of one left after isolating a row).
        self.batches = 0
        self.dropped = 0
        # Requests the database refused even cleaned (also counted in ``dropped``).
        self.rejected = 0
        self.failures = 0
        self._last_drop_log = 0.0

    @property
    def pending(self) -> int:
        """Entries queued and not yet written."""
        return len(self._queue)

    def put(self, entry: Entry) -> None:
        """Enqueue one request's rows; never blocks. Drops (counted) when the queue is full."""
        queue = self._queue
        if len(queue) >= self.queue_size:
            self.dropped += 1
            now = time.monotonic()
            if now - self._last_drop_log > 10.0:
                self._last_drop_log = now
                log.error("ledger queue full: %d rows dropped so far", self.dropped)
            return
        queue.append(entry)
        if len(queue) == self.batch_size:
            self._wake.set()

    def start(self) -> None:
        """Run the writer on the current loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while not self._stopping:
            if len(self._queue) < self.batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.flush_interval_s)
            self._wake.clear()
            await self._drain()

    async def _drain(self) -> bool:
        """Write everything queued, retrying failures (until the stop deadline, if stopping)."""
        backoff = 0.2
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(self.batch_size, len(self._queue)))]
            work: list[Sequence[Entry]] = [batch]
            try:
                while True:
                    try:
                        await write_isolating(work, self._write, _scrubbed_entry, self._reject)
                        break
                    except Exception as exc:  # the database away or locked: not the rows' fault
                        self.failures += 1
                        if self.failures == 1 or self.failures % 50 == 0:
                            log.warning(
                                "ledger write failed (%d), retrying: %s", self.failures, exc
                            )
                        if (
                            self._deadline is not None
                            and time.monotonic() + backoff > self._deadline
                        ):
                            return False
                        await asyncio.sleep(backoff)
                        backoff = min(backoff * 2, 2.0)
            finally:
                if work:  # failed for good, or cancelled: keep the rows for later
                    self._queue.extendleft(reversed(unwritten(work)))
            if self.failures:
                log.info("ledger writes work again after %d failures", self.failures)
                self.failures = 0
        return True

    async def _write(self, entries: Sequence[Entry]) -> None:
        requests = [e[0] for e in entries]
        attempts = [a for e in entries for a in e[1]]
        contents = [c for e in entries if len(e) > 2 and (c := e[2]) is not None]
        if contents:
            await self.db.write_ledger(requests, attempts, contents)
        else:
            await self.db.write_ledger(requests, attempts)
        self.written += len(entries)
        self.batches += 1

    def _reject(self, entry: Entry, exc: RowsRejected) -> None:
        self.rejected += 1
        self.dropped += 1
        if self.rejected <= 10 or self.rejected % 1000 == 0:
            log.error(
                "ledger: the database refused the row of request %r even cleaned; dropped "
                "(%d so far): %s",
                entry[0].request_id[:80],
                self.rejected,
                exc,
            )

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the loop and flush what is queued, retrying for at most ``timeout_s``."""
        self._stopping = True
        self._deadline = time.monotonic() + timeout_s
        if self._task is not None:
            self._wake.set()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if not await self._drain():
            lost = len(self._queue)
            self.dropped += lost
            self._queue.clear()
            log.error("ledger: %d rows could not be written before shutdown", lost)
        log.info("ledger writer stopped: %d written, %d dropped", self.written, self.dropped)


def _scrubbed_entry(entry: Entry) -> Entry | None:
    """The entry with every row scrubbed (see :func:`relay.ledger.records.scrubbed`), or None
    when none of its rows needed it."""
    row, attempts = entry[0], entry[1]
    content = entry[2] if len(entry) > 2 else None
    new_row = scrubbed(row)
    new_attempts = [scrubbed(a) for a in attempts]
    new_content = scrubbed(content) if content is not None else None
    if new_row is None and new_content is None and all(a is None for a in new_attempts):
        return None
    return (
        new_row or row,
        [new or old for new, old in zip(new_attempts, attempts, strict=True)],
        new_content or content,
    )
