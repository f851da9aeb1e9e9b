"""Retention: ledger rows past ``database.retention_days`` and expired stored responses are
deleted in the background, in small batches, never on the request path.

Each batch is one look-up of the oldest ids (an index range on ``ts`` or ``expires_at``) and one
short transaction deleting them, so the ledger writer and the key poller never wait long for a
lock, and a backlog of millions of rows is worked off without one huge delete. Every worker
runs it (about hourly, the first time soon after start); two workers purging at once delete
disjoint or already-deleted rows, which is harmless. The daily usage roll-up is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable

from relay.ledger.database import Database, Statement, placeholders

log = logging.getLogger("relay.ledger")

DAY_S = 86_400.0
# Rows per delete: small transactions, well under SQLite's limit of bound parameters.
BATCH = 500
_OLDEST_REQUESTS = "SELECT id FROM requests WHERE ts < ? ORDER BY ts LIMIT ?"
_EXPIRED_RESPONSES = "SELECT id FROM responses WHERE expires_at < ? LIMIT ?"
_EXPIRED_CONTENT = "SELECT request_id FROM request_content WHERE expires_at < ? LIMIT ?"

_Deleter = Callable[[list[str]], list[Statement]]


class Purger:
    """Deletes what is past its retention, about every ``every_s`` seconds."""

    def __init__(
        self,
        db: Database,
        *,
        ledger_days: float | None,
        responses: bool,
        every_s: float = 3600.0,
        first_after_s: float = 2.0,
        pause_s: float = 0.05,
    ) -> None:
        self.db = db
        self.ledger_days = ledger_days
        self.responses = responses
        self.every_s = every_s
        self.first_after_s = first_after_s
        self.pause_s = pause_s
        self._task: asyncio.Task[None] | None = None
        # Rows deleted since start: ledger requests (with their attempts), stored responses.
        self.requests_deleted = 0
        self.responses_deleted = 0
        self.content_deleted = 0

    @property
    def active(self) -> bool:
        """Whether there is anything to purge at all."""
        return self.ledger_days is not None or self.responses

    def start(self) -> None:
        """Run on the current loop (nothing to do when nothing expires)."""
        if self._task is None and self.active:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        # Spread over the workers (and hosts) that start together.
        delay = self.first_after_s * random.uniform(0.5, 1.5)
        while True:
            await asyncio.sleep(delay)
            try:
                await self.purge()
            except Exception as exc:  # the database away: try again next time
                log.warning("purging expired rows failed, retrying later: %s", exc)
            delay = self.every_s * random.uniform(0.9, 1.1)

    async def purge(self, now: float | None = None) -> tuple[int, int]:
        """Delete everything expired at ``now``; returns (requests, responses) deleted."""
        now = time.time() if now is None else now
        requests = responses = 0
        if self.ledger_days is not None:
            cutoff = now - self.ledger_days * DAY_S
            requests = await self._batches(_OLDEST_REQUESTS, cutoff, _delete_requests)
            self.requests_deleted += requests
        if self.responses:
            responses = await self._batches(_EXPIRED_RESPONSES, now, _delete_responses)
            self.responses_deleted += responses
        # Request text past its policy's content_retention_days (cheap: an index range).
        self.content_deleted += await self._batches(_EXPIRED_CONTENT, now, _delete_content)
        if requests or responses:
            log.info(
                "retention: deleted %d ledger requests past database.retention_days and %d "
                "expired stored responses",
                requests,
                responses,
            )
        return requests, responses

    async def _batches(self, select: str, cutoff: float, delete: _Deleter) -> int:
        deleted = 0
        while True:
            ids = [row[0] for row in await self.db.fetch(select, [cutoff, BATCH])]
            if not ids:
                return deleted
            # Counted as the database reports it: another worker may have deleted some first.
            deleted += (await self.db.transaction(delete(ids)))[-1]
            if len(ids) < BATCH:
                return deleted
            await asyncio.sleep(self.pause_s)  # let the writers in between batches

    async def stop(self) -> None:
        """Stop purging (a batch under way is rolled back, and done next time)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def _delete_requests(ids: list[str]) -> list[Statement]:
    marks = placeholders(len(ids))
    return [
        (f"DELETE FROM request_content WHERE request_id IN ({marks})", ids),
        (f"DELETE FROM provider_attempts WHERE request_id IN ({marks})", ids),
        (f"DELETE FROM requests WHERE id IN ({marks})", ids),
    ]


def _delete_responses(ids: list[str]) -> list[Statement]:
    return [(f"DELETE FROM responses WHERE id IN ({placeholders(len(ids))})", ids)]


def _delete_content(ids: list[str]) -> list[Statement]:
    return [(f"DELETE FROM request_content WHERE request_id IN ({placeholders(len(ids))})", ids)]
