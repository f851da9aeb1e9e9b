"""The keys/none auth stages and the key cache, on a real database."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from relay.admin.access import MASTER
from relay.admin.models import KeyCreate, TenantCreate, TenantUpdate
from relay.admin.store import AdminStore
from relay.auth.cache import KeyCache
from relay.auth.keys import KeyAuth, MetadataAuth
from relay.errors import AuthenticationError, InvalidRequest, PermissionDenied
from relay.exchange import Endpoint, Exchange
from relay.ledger.connect import open_database
from relay.wire.decode import decode_body
from relay.wire.openai import RequestMetadata


class _Request(msgspec.Struct):
    metadata: RequestMetadata | None = None


_DECODER = msgspec.json.Decoder(_Request)


def exchange(model: str, headers: dict[str, str], body: bytes = b"{}") -> Exchange:
    """An exchange as the dialect leaves it: the body decoded once (metadata included)."""
    ex = Exchange("req_1", Endpoint.CHAT, body, headers)
    ex.request = decode_body(_DECODER, body)
    ex.model = model
    return ex


def test_key_auth_follows_the_database(database_url: str) -> None:
    async def main() -> None:
        db = open_database(database_url)
        await db.connect()
        await db.migrate()
        store, cache = AdminStore(db), KeyCache(db)
        await cache.refresh()
        auth = KeyAuth(cache)
        tenant = await store.create_tenant(
            MASTER, TenantCreate(name="svc", allowed_models=["a", "b"], rate_limit_rpm=7)
        )
        narrow = await store.create_key(
            MASTER, KeyCreate(tenant_id=tenant.id, allowed_models=["b", "c"])
        )
        # Made after the last poll: the gate looks the key up in the database (an awaitable,
        # still before the body); from then on it is known and decided from memory.
        ex = exchange("a", {"authorization": f"Bearer {tenant.api_key}"})
        deciding = auth.admit(ex)
        assert deciding is not None
        await deciding
        assert tenant.key is not None and ex.principal.key_id == tenant.key.id
        assert auth.admit(exchange("a", {"authorization": f"Bearer {tenant.api_key}"})) is None
        assert await cache.refresh() and not await cache.refresh()

        body = b'{"metadata": {"use_case": "triage", "tenant": "ignored"}}'
        ex = exchange("a", {"authorization": f"Bearer {tenant.api_key}"}, body)
        assert await auth(ex) is None
        p = ex.principal
        assert (p.tenant, p.tenant_id, p.organization, p.use_case) == (
            "svc",
            tenant.id,
            "default",
            "triage",
        )
        assert p.key_prefix == tenant.api_key[:14] and p.client_authorization is None
        assert p.tenant_limits is not None and p.tenant_limits.rate_limit_rpm == 7
        # x-api-key works too; the key's list is intersected with the tenant's.
        ex = exchange("b", {"x-api-key": narrow.api_key})
        await auth(ex)
        assert ex.principal.allowed_models == frozenset({"b"})
        for model in ("a", "c"):
            with pytest.raises(PermissionDenied):
                await auth(exchange(model, {"x-api-key": narrow.api_key}))
        with pytest.raises(AuthenticationError, match="missing"):
            await auth(exchange("a", {"authorization": "Basic abc"}))

        # Tenant changes reach its keys; expiry needs no refresh; deletion revokes.
        await store.update_tenant(MASTER, tenant.id, TenantUpdate(allowed_models=None))
        await cache.refresh()
        await auth(exchange("zzz", {"authorization": f"Bearer {tenant.api_key}"}))
        soon = await store.create_key(
            MASTER,
            KeyCreate(tenant_id=tenant.id, expires_at=datetime.now(UTC) + timedelta(seconds=0.3)),
        )
        await cache.refresh()
        await auth(exchange("a", {"authorization": f"Bearer {soon.api_key}"}))
        await asyncio.sleep(0.35)
        with pytest.raises(AuthenticationError, match="expired"):
            await auth(exchange("a", {"authorization": f"Bearer {soon.api_key}"}))
        await store.delete_tenant(MASTER, tenant.id)
        await cache.refresh()
        with pytest.raises(AuthenticationError, match="revoked"):
            await auth(exchange("a", {"authorization": f"Bearer {tenant.api_key}"}))
        await db.close()

    asyncio.run(main())


def test_none_mode_attributes_by_metadata(tmp_path: object) -> None:
    async def main() -> None:
        db = open_database(f"sqlite:///{tmp_path}/relay.db")
        await db.connect()
        await db.migrate()
        await AdminStore(db).create_tenant(
            MASTER, TenantCreate(name="team-a", organization="acme", tokens_per_minute=1000)
        )
        cache = KeyCache(db)
        await cache.refresh()
        auth = MetadataAuth(cache)
        ex = exchange("m", {}, b'{"metadata": {"tenant": "acme/team-a", "use_case": "chat"}}')
        await auth(ex)
        p = ex.principal
        assert (p.tenant, p.organization, p.use_case) == ("team-a", "acme", "chat")
        assert p.tenant_limits is not None and p.tenant_limits.tokens_per_minute == 1000
        ex = exchange("m", {}, b'{"metadata": {"tenant": "unknown-team"}}')
        await auth(ex)
        assert (ex.principal.tenant, ex.principal.organization) == ("unknown-team", "default")
        ex = exchange("m", {})
        await auth(ex)
        assert ex.principal.tenant == "default"
        with pytest.raises(InvalidRequest, match=r"metadata\.tenant"):
            await auth(exchange("m", {}, b'{"metadata": {"tenant": 5}}'))
        await db.close()

    asyncio.run(main())
