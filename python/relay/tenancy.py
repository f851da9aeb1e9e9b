"""Tenants, keys and the ledger: the database-backed parts of a worker, started and stopped as
one unit.

Owns the database, the key cache and its poller, the ledger writer, the stored responses, the
retention purge and the admin API. What of it sits on the request path (the auth stage chosen
by ``auth.mode``, its gate, the ledger and responses taps) is listed in ``app.py``. With
``database.url: none`` there is no database: no ledger, no stored responses, and the admin API
answers 404.
"""

from __future__ import annotations

import asyncio
import logging

from relay.admin.api import AdminApi
from relay.admin.front import Response, error_body
from relay.auth.cache import KeyCache
from relay.auth.mode import resolve_auth, with_mode
from relay.config import Config
from relay.config.tenancy import NO_DATABASE
from relay.errors import NotFound
from relay.ledger.connect import open_database
from relay.ledger.database import DatabaseUnavailable
from relay.ledger.responses import ResponseStore
from relay.ledger.retention import Purger
from relay.ledger.writer import LedgerWriter

log = logging.getLogger("relay")


class Tenancy:
    """The database-backed parts of one worker."""

    def __init__(self, config: Config) -> None:
        if config.auth.mode is None:
            # Started without `relay serve` (granian directly), which decides it once for all
            # workers: decide here, the same way.
            choice = resolve_auth(config)
            config = with_mode(config, choice)
            log.info("auth: %s; %s", choice.mode, choice.reason)
            for line in choice.warnings:
                log.warning("%s", line)
        self.config = config
        # False with database.url: none (nothing is kept).
        self.kept = config.database.url != NO_DATABASE
        self.db = open_database(config.database.url)
        self.cache = KeyCache(self.db, config.auth.key_refresh_s)
        ledger = config.database.ledger
        self.writer = LedgerWriter(
            self.db,
            queue_size=ledger.queue_size,
            batch_size=ledger.batch_size,
            flush_interval_s=ledger.flush_interval_s,
        )
        self.admin: AdminApi | NoAdminApi = (
            AdminApi(self.db, self.cache, config.auth.admin_key) if self.kept else NoAdminApi()
        )
        # The ledger's rows are written (a tap feeds self.writer).
        self.ledger = ledger.enabled and self.kept
        stored = config.database.responses
        # Responses answered by translation, stored for previous_response_id (None: refused).
        self.responses = (
            ResponseStore(self.db, stored.retention_days, max_pending_bytes=stored.queue_bytes)
            if stored.enabled and self.kept
            else None
        )
        # Rows past their retention: the ledger's, and expired stored responses.
        self.purger = Purger(self.db, ledger_days=config.database.retention_days, responses=True)

    def adopt(self, config: Config) -> None:
        """A hot reload's configuration (``relay.live``): its admin key from now on. The
        database's settings and ``auth.key_refresh_s`` stay: they need a restart (the main
        process keeps them, see ``relay.config.reload``)."""
        self.config = config
        if isinstance(self.admin, AdminApi):
            self.admin.admin_key = config.auth.admin_key

    async def start(self, attempts: int = 20) -> None:
        """Connect (retrying for ~10 s), upgrade the schema, load the keys, start the pollers."""
        if not self.kept:
            return
        for attempt in range(attempts):
            try:
                await self.db.connect()
                applied = await self.db.migrate()
                break
            except DatabaseUnavailable as exc:
                if attempt == attempts - 1:
                    raise
                log.warning("database not reachable yet, retrying: %s", exc)
                await asyncio.sleep(0.5)
        if applied:
            log.info("database schema upgraded to version %d", applied[-1])
        await self.cache.refresh()
        self.cache.start()
        self.writer.start()
        if self.responses is not None:
            self.responses.start()
        self.purger.start()

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Flush the ledger, stop polling and purging, close the database."""
        if not self.kept:
            return
        await self.purger.stop()
        await self.writer.stop(timeout_s)
        if self.responses is not None:
            await self.responses.stop()
        await self.cache.stop()
        await self.db.close()


class NoAdminApi:
    """``/admin`` of a gateway without a database (``database.url: none``): a 404 saying why."""

    async def handle(
        self, method: str, path: str, query: str, headers: object, body: bytes
    ) -> Response:
        """Every admin request -> 404."""
        err = NotFound(
            "the admin API needs a database, and this gateway has none (database.url: none)"
        )
        return err.status, [("content-type", "application/json")], error_body(err)
