"""Responses the gateway stores itself: Responses API calls answered by translation (a provider
without that API), for ``previous_response_id`` and ``GET /v1/responses/{id}``.

Rows are scoped to the caller's organisation and tenant: a response is found only by the tenant
that created it. Writes are queued and written by a background task in one transaction per
batch, off the request path (the tap only queues). Until written, a response is served from the
worker's own queue; an id not found is looked up once more after a flush interval, for a
follow-up that reached another worker first. Rows expire after ``retention_days`` and are
deleted about hourly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from relay.exchange import Exchange, Principal
from relay.ledger.database import Database

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
_PURGE = "DELETE FROM responses WHERE expires_at < ?"
_PURGE_EVERY_S = 3600.0
_MAX_PENDING = 10_000


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


class ResponseStore:
    """Queue, writer and reader of the ``responses`` table."""

    def __init__(
        self, db: Database, retention_days: float = 30.0, flush_interval_s: float = 0.25
    ) -> None:
        self.db = db
        self.retention_s = retention_days * 86_400.0
        self.flush_interval_s = flush_interval_s
        self._pending: dict[str, StoredResponse] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._purged = 0.0
        self.dropped = 0

    def put(self, stored: StoredResponse) -> None:
        """Queue a response for writing; never blocks (dropped, and logged, when the queue is
        full because the database has been away for long)."""
        if len(self._pending) >= _MAX_PENDING:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.error("response store queue full: %d responses dropped", self.dropped)
            return
        self._pending[stored.id] = stored
        self._wake.set()

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
            del self._pending[response_id]
            return True
        (count,) = await self.db.transaction([(_DELETE, [response_id, org, tenant])])
        return count > 0

    def start(self) -> None:
        """Run the writer on the current loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), _PURGE_EVERY_S)
            self._wake.clear()
            await asyncio.sleep(self.flush_interval_s / 5)  # gather a few
            try:
                await self.flush()
                if time.time() - self._purged > _PURGE_EVERY_S:
                    await self.db.transaction([(_PURGE, [time.time()])])
                    self._purged = time.time()
            except Exception as exc:  # the database away: keep them, retry later
                log.warning("storing responses failed, retrying: %s", exc)
                await asyncio.sleep(1.0)
                self._wake.set()

    async def flush(self) -> None:
        """Write every queued response in one transaction."""
        batch = list(self._pending.values())
        if not batch:
            return
        await self.db.transaction(
            [
                (
                    _INSERT,
                    [
                        s.id, s.org, s.tenant, s.created_at, s.created_at + self.retention_s,
                        s.model, s.previous_id, s.conversation.decode(), s.response.decode(),
                    ],
                )
                for s in batch
            ]
        )  # fmt: skip
        for stored in batch:
            if self._pending.get(stored.id) is stored:
                del self._pending[stored.id]

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
