"""Responses the gateway stores itself: Responses API calls answered by translation (a provider
without that API), for ``previous_response_id`` and ``GET /v1/responses/{id}``.

Rows are scoped to the caller's organisation and tenant: a response is found only by the tenant
that created it. Writes are queued and written by a background task in one transaction per
batch, off the request path (the tap only queues). Until written, a response is served from the
worker's own queue; an id not found is looked up once more after a flush interval, for a
follow-up that reached another worker first. Rows expire after ``retention_days`` and are
deleted in the background (:mod:`relay.ledger.retention`).

The queue is bounded by count and by bytes (what is dropped is counted and logged). A response
the database cannot store (text it refuses, bytes that are not UTF-8) is dropped alone, counted
and logged: it never holds back the ones after it (see :mod:`relay.ledger.isolate`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from relay.exchange import Exchange, Principal
from relay.ledger.database import Database
from relay.ledger.isolate import write_isolating

log = logging.getLogger("relay.ledger")

_INSERT = (
    "INSERT INTO responses (id, org, tenant, created_at, expires_at, model, previous_id, "
    "conversation, response) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING"
)
_SELECT = (
    "SELECT conversation, response, model FROM responses "
    "WHERE id = ? AND org = ? AND tenant = ? AND expires_at > ?"
)
_DELETE = "DELETE FROM responses WHERE id = ? AND org = ? AND tenant = ?"
_MAX_PENDING = 10_000
# Responses per transaction.
_BATCH = 100
_LOG_EVERY_S = 10.0


def scope(principal: Principal) -> tuple[str, str]:
    """(organisation, tenant) a stored response belongs to."""
    return principal.organization, principal.tenant or "-"


@dataclass(slots=True, frozen=True)
class StoredResponse:
    """One stored response: the conversation up to and including it, and the Response."""

    id: str
    org: str
    tenant: str
    created_at: float
    model: str
    previous_id: str | None
    conversation: bytes
    response: bytes


# A queued response and the values of its row.
_Row = tuple[StoredResponse, list[object]]


class ResponseStore:
    """Queue, writer and reader of the ``responses`` table."""

    def __init__(
        self,
        db: Database,
        retention_days: float = 30.0,
        flush_interval_s: float = 0.25,
        *,
        max_pending_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.db = db
        self.retention_s = retention_days * 86_400.0
        self.flush_interval_s = flush_interval_s
        self.max_pending_bytes = max_pending_bytes
        self._pending: dict[str, StoredResponse] = {}
        self._pending_bytes = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._logged_full = 0.0
        # Responses not queued because the queue was full, and their bytes.
        self.dropped = 0
        self.dropped_bytes = 0
        # Responses the database refused (or that were not UTF-8): dropped alone.
        self.rejected = 0

    @property
    def pending_bytes(self) -> int:
        """Bytes of the responses queued and not yet written."""
        return self._pending_bytes

    def put(self, stored: StoredResponse) -> None:
        """Queue a response for writing; never blocks (dropped, counted and logged, when the
        queue is full by count or by bytes because the database has been away for long)."""
        size = _size(stored)
        if (
            len(self._pending) >= _MAX_PENDING
            or self._pending_bytes + size > self.max_pending_bytes
        ):
            self.dropped += 1
            self.dropped_bytes += size
            now = time.monotonic()
            if now - self._logged_full >= _LOG_EVERY_S:
                self._logged_full = now
                log.error(
                    "response store queue full (%d responses, %d bytes queued): response %s "
                    "(%d bytes) not stored; %d responses (%d bytes) dropped so far",
                    len(self._pending),
                    self._pending_bytes,
                    stored.id,
                    size,
                    self.dropped,
                    self.dropped_bytes,
                )
            return
        self._forget(self._pending.get(stored.id))
        self._pending[stored.id] = stored
        self._pending_bytes += size
        self._wake.set()

    def _forget(self, stored: StoredResponse | None) -> None:
        """Unqueue ``stored`` (if it is still the one queued under its id)."""
        if stored is not None and self._pending.get(stored.id) is stored:
            del self._pending[stored.id]
            self._pending_bytes -= _size(stored)

    async def get(
        self, response_id: str, org: str, tenant: str, *, retry: bool = True
    ) -> StoredResponse | None:
        """The stored response ``response_id`` of this tenant, or None (``retry``: look once
        more after a flush interval, for a response another worker has not written yet)."""
        for attempt in range(2 if retry else 1):
            pending = self._pending.get(response_id)
            if pending is not None:
                return pending if (pending.org, pending.tenant) == (org, tenant) else None
            rows = await self.db.fetch(_SELECT, [response_id, org, tenant, time.time()])
            if rows:
                conversation, response, model = rows[0]
                return StoredResponse(
                    response_id,
                    org,
                    tenant,
                    0.0,
                    model,
                    None,
                    _bytes(conversation),
                    _bytes(response),
                )
            if attempt == 0:  # written by another worker, maybe not yet
                await asyncio.sleep(self.flush_interval_s * 2)
        return None

    async def delete(self, response_id: str, org: str, tenant: str) -> bool:
        """Delete a stored response of this tenant; True if there was one."""
        pending = self._pending.get(response_id)
        if pending is not None and (pending.org, pending.tenant) == (org, tenant):
            self._forget(pending)
            return True
        (count,) = await self.db.transaction([(_DELETE, [response_id, org, tenant])])
        return count > 0

    def start(self) -> None:
        """Run the writer on the current loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(self.flush_interval_s / 5)  # gather a few
            try:
                await self.flush()
            except Exception as exc:  # the database away: keep them, retry later
                log.warning("storing responses failed, retrying: %s", exc)
                await asyncio.sleep(1.0)
                self._wake.set()

    async def flush(self) -> None:
        """Write every queued response, up to ``_BATCH`` per transaction.

        A response the database refuses is dropped (counted, logged) and the others written;
        an outage raises, and what is not written stays queued.
        """
        rows: list[_Row] = []
        for s in list(self._pending.values()):
            try:
                conversation, response = s.conversation.decode(), s.response.decode()
            except UnicodeDecodeError as exc:
                self._reject(s, exc)
                continue
            rows.append(
                (
                    s,
                    [
                        s.id, s.org, s.tenant, s.created_at, s.created_at + self.retention_s,
                        s.model, s.previous_id, conversation, response,
                    ],
                )
            )  # fmt: skip
        for start in range(0, len(rows), _BATCH):
            await write_isolating(
                [rows[start : start + _BATCH]],
                self._write,
                lambda row: None,  # a response is stored as it was sent, or not at all
                lambda row, exc: self._reject(row[0], exc),
            )

    async def _write(self, rows: Sequence[_Row]) -> None:
        await self.db.transaction([(_INSERT, values) for _, values in rows])
        for stored, _ in rows:
            self._forget(stored)

    def _reject(self, stored: StoredResponse, exc: Exception) -> None:
        self._forget(stored)
        self.rejected += 1
        if self.rejected <= 10 or self.rejected % 1000 == 0:
            log.error(
                "response %s (model %r) could not be stored and is dropped (%d so far): %s",
                stored.id,
                stored.model[:80],
                self.rejected,
                exc,
            )

    async def stop(self) -> None:
        """Stop the writer and write what is queued (once)."""
        self._stopping = True
        if self._task is not None:
            self._wake.set()
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        try:
            await self.flush()
        except Exception as exc:
            log.error(
                "%d responses could not be stored before shutdown: %s", len(self._pending), exc
            )


def _size(stored: StoredResponse) -> int:
    return len(stored.conversation) + len(stored.response)


def _bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


class ResponsesTap:
    """Queues each completed translated Response that asked to be stored."""

    def __init__(self, store: ResponseStore) -> None:
        self.store = store

    def on_finish(self, ex: Exchange) -> None:
        """Called once per exchange; only translated, stored, complete answers are kept."""
        draft = ex.translation
        if draft is None or not draft.translated or not draft.store:
            return
        if ex.status != 200 or ex.truncated or ex.client_gone:
            return
        org, tenant = scope(ex.principal)
        self.store.put(
            StoredResponse(
                draft.id,
                org,
                tenant,
                float(draft.created_at),
                ex.model,
                draft.request.previous_response_id,
                draft.encoded_conversation(),
                draft.response(ex, ex.usage),
            )
        )
