"""The key cache asks the database about keys it does not know, and no more than it must."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from relay.admin.access import MASTER
from relay.admin.models import TenantCreate
from relay.admin.store import AdminStore
from relay.auth.cache import KeyCache
from relay.auth.keys import KeyAuth
from relay.auth.tokens import new_key
from relay.errors import AuthenticationError
from relay.exchange import Endpoint, Exchange
from relay.ledger.connect import open_database
from relay.ledger.database import Database


class Counted:
    """The real database, counting the look-ups of one key by its hash."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.lookups = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if "k.hash = ?" in sql:
            self.lookups += 1
        return await self.db.fetch(sql, args)


async def _database(url: str) -> Counted:
    db = open_database(url)
    await db.connect()
    await db.migrate()
    return Counted(db)


def test_a_key_made_after_the_last_poll_is_found_once_then_held(database_url: str) -> None:
    async def main() -> None:
        db = await _database(database_url)
        cache = KeyCache(db)  # type: ignore[arg-type]
        await cache.refresh()
        made = await AdminStore(db.db).create_tenant(MASTER, TenantCreate(name="svc"))
        assert cache.lookup(made.api_key) is None  # not polled yet
        # Ten requests at once with the new key: one query, and every one is admitted.
        found = await asyncio.gather(*(cache.find(made.api_key) for _ in range(10)))
        assert {r.tenant if r else None for r in found} == {"svc"} and db.lookups == 1
        assert cache.lookup(made.api_key) is not None
        await cache.find(made.api_key)
        assert db.lookups == 1
        await db.close()

    asyncio.run(main())


def test_unknown_keys_cost_at_most_one_query_each_and_a_bounded_rate(tmp_path: Any) -> None:
    async def main() -> None:
        db = await _database(f"sqlite:///{tmp_path}/relay.db")
        cache = KeyCache(db, lookups_per_s=5)  # type: ignore[arg-type]
        await cache.refresh()
        # Not shaped like a key: never asked about.
        for junk in ("not-a-key", "gw-sk-short", "gw-sk-" + "-" * 43, "gw-sk-" + "é" * 43):
            assert await cache.find(junk) is None
        assert db.lookups == 0
        # A well-formed unknown key: asked once, then remembered as missing.
        bogus = new_key()
        for _ in range(20):
            assert await cache.find(bogus) is None
        assert db.lookups == 1
        # Random keys: no more look-ups than the bucket holds (5, one spent above).
        for _ in range(50):
            assert await cache.find(new_key()) is None
        assert db.lookups == 5
        await db.close()

    asyncio.run(main())


def test_a_stale_look_up_never_undoes_a_revocation_the_poller_saw(tmp_path: Any) -> None:
    """The look-up read the key live; a revocation lands and the poller loads it before the
    look-up's answer is stored: the revocation stays."""

    async def main() -> None:
        db = await _database(f"sqlite:///{tmp_path}/relay.db")
        cache = KeyCache(db)  # type: ignore[arg-type]
        await cache.refresh()
        store = AdminStore(db.db)
        made = await store.create_tenant(MASTER, TenantCreate(name="svc"))
        assert made.key is not None
        real_fetch = db.fetch

        async def fetch_then_revoke(sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
            rows = await real_fetch(sql, args)
            if "k.hash = ?" in sql:
                await store.revoke_key(MASTER, made.key.id)  # type: ignore[union-attr]
                await cache.refresh()
            return rows

        db.fetch = fetch_then_revoke  # type: ignore[method-assign]
        record = await cache.find(made.api_key)
        assert record is not None and record.revoked
        await db.close()

    asyncio.run(main())


def test_a_refused_key_is_nobodys_request(tmp_path: Any) -> None:
    """A 401 is recorded with no tenant, not as tenant ``default``."""

    async def main() -> None:
        db = await _database(f"sqlite:///{tmp_path}/relay.db")
        cache = KeyCache(db)  # type: ignore[arg-type]
        await cache.refresh()
        auth = KeyAuth(cache)
        for headers in ({}, {"authorization": f"Bearer {new_key()}"}):
            ex = Exchange("req_1", Endpoint.CHAT, b"{}", headers)
            with pytest.raises(AuthenticationError):
                deciding = auth.admit(ex)
                if deciding is not None:
                    await deciding
            assert ex.principal.tenant == ""
        await db.close()

    asyncio.run(main())
