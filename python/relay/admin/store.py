"""Tenants, users and keys in the database: every change is one transaction with its audit
entry and a bump of the change marker that workers poll to refresh their key caches."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from relay.admin.access import Actor, AdminForbidden, Conflict, ObjectNotFound
from relay.admin.models import (
    Key,
    KeyCreate,
    KeyCreated,
    Tenant,
    TenantCreate,
    TenantCreated,
    TenantUpdate,
    User,
    UserCreate,
    UserCreated,
)
from relay.auth.cache import decode_models
from relay.auth.tokens import hash_key, new_id, new_key, visible_prefix
from relay.ledger.database import Database, IntegrityViolation, Statement

_BUMP: Statement = ("UPDATE change_marker SET value = value + 1 WHERE id = 1", ())
_SEQ = "(SELECT value FROM change_marker WHERE id = 1)"
_ORG = "(SELECT id FROM organizations WHERE name = ?)"
_TENANT_COLS = (
    "SELECT t.id, t.name, o.name, t.allowed_models, t.rate_limit_rpm, t.tokens_per_minute, "
    "t.budget_usd, t.budget_period, t.budget_alert_ratio, t.created_at, t.updated_at "
    "FROM tenants t "
    "JOIN organizations o ON o.id = t.org_id WHERE t.deleted_at IS NULL"
)
_KEY_COLS = (
    "SELECT k.id, k.prefix, k.name, o.name, k.tenant_id, k.user_id, k.allowed_models, "
    "k.rate_limit_rpm, k.tokens_per_minute, k.budget_usd, k.budget_period, "
    "k.budget_alert_ratio, k.expires_at, k.revoked_at, k.created_at FROM api_keys k JOIN organizations o ON o.id = k.org_id WHERE 1 = 1"
)
_USER_COLS = (
    "SELECT u.id, u.name, o.name, u.role, u.created_at FROM users u "
    "JOIN organizations o ON o.id = u.org_id WHERE 1 = 1"
)


def when(ts: float | None) -> datetime | None:
    """Epoch seconds from the database as an aware UTC datetime."""
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def _models(models: list[str] | None) -> str | None:
    return None if models is None else msgspec.json.encode(sorted(set(models))).decode()


def _tenant(row: Sequence[Any]) -> Tenant:
    models = decode_models(row[3])
    return Tenant(
        row[0], row[1], row[2], sorted(models) if models is not None else None,
        row[4], row[5], row[6], row[7], row[8],
        when(row[9]) or datetime.now(UTC), when(row[10]) or datetime.now(UTC),
    )  # fmt: skip


def _key(row: Sequence[Any]) -> Key:
    models = decode_models(row[6])
    return Key(
        row[0], row[1], row[2], row[3], row[4], row[5],
        sorted(models) if models is not None else None, row[7], row[8], row[9], row[10],
        row[11], when(row[12]), when(row[13]), when(row[14]) or datetime.now(UTC),
    )  # fmt: skip


def _audit(
    actor: Actor, org: str | None, action: str, kind: str, oid: str, detail: Any
) -> Statement:
    return (
        "INSERT INTO audit_log (ts, actor, organization, action, object_type, object_id, detail) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [time.time(), actor.name, org, action, kind, oid, msgspec.json.encode(detail).decode()],
    )


def _ensure_org(name: str, now: float) -> Statement:
    return (
        "INSERT INTO organizations (id, name, created_at) VALUES (?, ?, ?) "
        "ON CONFLICT (name) DO NOTHING",
        [new_id("org"), name, now],
    )


class AdminStore:
    """Create, read, change and revoke; reads of another organisation's objects find nothing."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def _run(self, statements: Sequence[Statement], what: str) -> list[int]:
        try:
            return await self.db.transaction(statements)
        except IntegrityViolation:
            raise Conflict(f"{what} already exists") from None

    # -- tenants --------------------------------------------------------------------------
    async def create_tenant(self, actor: Actor, body: TenantCreate) -> TenantCreated:
        """A tenant and its first key, in one transaction."""
        org = actor.target_org(body.organization)
        if await self.db.fetch(_TENANT_COLS + " AND o.name = ? AND t.name = ?", [org, body.name]):
            raise Conflict(f"name: tenant '{body.name}' already exists in '{org}'", param="name")
        now, tid = time.time(), new_id("ten")
        key, key_statement = self._key_insert(org, tid, None, KeyCreate(name="default"), now)
        await self._run(
            [
                _ensure_org(org, now),
                _BUMP,
                (
                    "INSERT INTO tenants (id, org_id, name, allowed_models, rate_limit_rpm, "
                    "tokens_per_minute, budget_usd, budget_period, budget_alert_ratio, "
                    f"created_at, updated_at, seq) VALUES "
                    f"(?, {_ORG}, ?, ?, ?, ?, ?, ?, ?, ?, ?, {_SEQ})",
                    [
                        tid,
                        org,
                        body.name,
                        _models(body.allowed_models),
                        body.rate_limit_rpm,
                        body.tokens_per_minute,
                        body.budget_usd,
                        body.budget_period,
                        body.budget_alert_ratio,
                        now,
                        now,
                    ],
                ),
                key_statement,
                _audit(actor, org, "tenant.create", "tenant", tid, msgspec.to_builtins(body)),
                _audit(actor, org, "key.create", "key", key[1], {"tenant_id": tid}),
            ],
            f"tenant '{body.name}'",
        )
        tenant = await self.get_tenant(actor, tid)
        assert tenant is not None
        created = await self.get_key(actor, key[1])
        return TenantCreated(**msgspec.structs.asdict(tenant), api_key=key[0], key=created)

    async def list_tenants(self, actor: Actor) -> list[Tenant]:
        """Live tenants the actor may see, by organisation and name."""
        sql, args = _TENANT_COLS, list[object]()
        if (org := actor.org_filter()) is not None:
            sql, args = sql + " AND o.name = ?", [org]
        return [_tenant(r) for r in await self.db.fetch(sql + " ORDER BY o.name, t.name", args)]

    async def get_tenant(self, actor: Actor, tenant_id: str) -> Tenant | None:
        """One live tenant, if the actor may see it."""
        sql, args = _TENANT_COLS + " AND t.id = ?", [tenant_id]
        if (org := actor.org_filter()) is not None:
            sql, args = sql + " AND o.name = ?", [*args, org]
        rows = await self.db.fetch(sql, args)
        return _tenant(rows[0]) if rows else None

    async def update_tenant(self, actor: Actor, tenant_id: str, body: TenantUpdate) -> Tenant:
        """Change limits or the allow-list; keys see it at their next cache refresh."""
        tenant = await self._visible_tenant(actor, tenant_id)
        changes = {
            name: value
            for name in (
                "rate_limit_rpm",
                "tokens_per_minute",
                "budget_usd",
                "budget_period",
                "budget_alert_ratio",
                "allowed_models",
            )
            if (value := getattr(body, name)) is not msgspec.UNSET
        }
        if changes:
            values = [_models(v) if k == "allowed_models" else v for k, v in changes.items()]
            sets = ", ".join(f"{k} = ?" for k in changes)
            await self._run(
                [
                    _BUMP,
                    (
                        f"UPDATE tenants SET {sets}, updated_at = ?, seq = {_SEQ} WHERE id = ?",
                        [*values, time.time(), tenant_id],
                    ),
                    _audit(
                        actor, tenant.organization, "tenant.update", "tenant", tenant_id, changes
                    ),
                ],
                "tenant",
            )
        updated = await self.get_tenant(actor, tenant_id)
        assert updated is not None
        return updated

    async def delete_tenant(self, actor: Actor, tenant_id: str) -> Tenant:
        """Delete a tenant (kept for the ledger's sake) and revoke every key it has."""
        tenant = await self._visible_tenant(actor, tenant_id)
        now = time.time()
        await self._run(
            [
                _BUMP,
                (f"UPDATE tenants SET deleted_at = ?, seq = {_SEQ} WHERE id = ?", [now, tenant_id]),
                (
                    f"UPDATE api_keys SET revoked_at = ?, updated_at = ?, seq = {_SEQ} "
                    "WHERE tenant_id = ? AND revoked_at IS NULL",
                    [now, now, tenant_id],
                ),
                _audit(actor, tenant.organization, "tenant.delete", "tenant", tenant_id, None),
            ],
            "tenant",
        )
        return tenant

    async def _visible_tenant(self, actor: Actor, tenant_id: str) -> Tenant:
        tenant = await self.get_tenant(actor, tenant_id)
        if tenant is None:
            raise ObjectNotFound(f"no tenant with id '{tenant_id}'")
        return tenant

    # -- keys -----------------------------------------------------------------------------
    def _key_insert(
        self, org: str, tenant_id: str | None, user_id: str | None, body: KeyCreate, now: float
    ) -> tuple[tuple[str, str], Statement]:
        key, kid = new_key(), new_id("key")
        expires = body.expires_at.timestamp() if body.expires_at is not None else None
        statement: Statement = (
            "INSERT INTO api_keys (id, hash, prefix, name, org_id, tenant_id, user_id, "
            "allowed_models, rate_limit_rpm, tokens_per_minute, budget_usd, budget_period, "
            "budget_alert_ratio, expires_at, created_at, updated_at, seq) VALUES "
            f"(?, ?, ?, ?, {_ORG}, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, {_SEQ})",
            [kid, hash_key(key), visible_prefix(key), body.name, org, tenant_id, user_id,
             _models(body.allowed_models), body.rate_limit_rpm, body.tokens_per_minute,
             body.budget_usd, body.budget_period, body.budget_alert_ratio, expires, now, now],
        )  # fmt: skip
        return (key, kid), statement

    async def create_key(self, actor: Actor, body: KeyCreate) -> KeyCreated:
        """A key for a tenant the actor can see, or for a user (admins, or users for themselves)."""
        if (body.tenant_id is None) == (body.user_id is None):
            raise_field("tenant_id", "give exactly one of tenant_id and user_id")
        if body.tenant_id is not None:
            org = (await self._visible_tenant(actor, body.tenant_id)).organization
        else:
            assert body.user_id is not None
            user = await self.get_user(actor, body.user_id)
            if user is None:
                raise ObjectNotFound(f"no user with id '{body.user_id}'")
            if not actor.is_admin and user.id != actor.user_id:
                raise AdminForbidden("only admins can create keys for other users")
            org = user.organization
        now = time.time()
        (key, kid), statement = self._key_insert(org, body.tenant_id, body.user_id, body, now)
        detail = msgspec.to_builtins(body)
        await self._run(
            [
                _ensure_org(org, now),
                _BUMP,
                statement,
                _audit(actor, org, "key.create", "key", kid, detail),
            ],
            "key",
        )
        created = await self.get_key(actor, kid)
        assert created is not None
        return KeyCreated(**msgspec.structs.asdict(created), api_key=key)

    async def get_key(self, actor: Actor, key_id: str) -> Key | None:
        """One key (never its secret), if the actor may see it."""
        rows = await self.list_keys(actor, key_id=key_id)
        return rows[0] if rows else None

    async def list_keys(
        self, actor: Actor, *, tenant_id: str | None = None, key_id: str | None = None
    ) -> list[Key]:
        """Keys the actor may see, newest first, optionally of one tenant."""
        sql, args = _KEY_COLS, list[object]()
        for column, value in (
            ("o.name", actor.org_filter()),
            ("k.tenant_id", tenant_id),
            ("k.id", key_id),
        ):
            if value is not None:
                sql, args = f"{sql} AND {column} = ?", [*args, value]
        return [_key(r) for r in await self.db.fetch(sql + " ORDER BY k.created_at DESC", args)]

    async def revoke_key(self, actor: Actor, key_id: str) -> Key:
        """Revoke a key; every worker refuses it within the refresh interval. A user may revoke
        its organisation's tenant keys and its own keys, as it may create them; another user's
        key (an admin's above all) only an admin may revoke."""
        key = await self.get_key(actor, key_id)
        if key is None:
            raise ObjectNotFound(f"no key with id '{key_id}'")
        if key.user_id is not None and not actor.is_admin and key.user_id != actor.user_id:
            raise AdminForbidden("only admins can revoke other users' keys")
        if key.revoked_at is None:
            now = time.time()
            await self._run(
                [
                    _BUMP,
                    (
                        f"UPDATE api_keys SET revoked_at = ?, updated_at = ?, seq = {_SEQ} "
                        "WHERE id = ?",
                        [now, now, key_id],
                    ),
                    _audit(actor, key.organization, "key.revoke", "key", key_id, None),
                ],
                "key",
            )
        revoked = await self.get_key(actor, key_id)
        assert revoked is not None
        return revoked

    # -- users ----------------------------------------------------------------------------
    async def create_user(self, actor: Actor, body: UserCreate) -> UserCreated:
        """A user and its first key (admins only)."""
        if not actor.is_admin:
            raise AdminForbidden("only admins can create users")
        org = actor.target_org(body.organization)
        now, uid = time.time(), new_id("usr")
        (key, kid), statement = self._key_insert(org, None, uid, KeyCreate(name=body.name), now)
        await self._run(
            [
                _ensure_org(org, now),
                (
                    f"INSERT INTO users (id, org_id, name, role, created_at) "
                    f"VALUES (?, {_ORG}, ?, ?, ?)",
                    [uid, org, body.name, body.role, now],
                ),
                _BUMP,
                statement,
                _audit(actor, org, "user.create", "user", uid, msgspec.to_builtins(body)),
            ],
            f"name: user '{body.name}' in '{org}'",
        )
        user = await self.get_user(actor, uid)
        created = await self.get_key(actor, kid)
        assert user is not None
        return UserCreated(**msgspec.structs.asdict(user), api_key=key, key=created)

    async def get_user(self, actor: Actor, user_id: str) -> User | None:
        """One user, if the actor may see it."""
        users = await self.list_users(actor, user_id=user_id)
        return users[0] if users else None

    async def list_users(self, actor: Actor, *, user_id: str | None = None) -> list[User]:
        """Users the actor may see."""
        sql, args = _USER_COLS, list[object]()
        for column, value in (("o.name", actor.org_filter()), ("u.id", user_id)):
            if value is not None:
                sql, args = f"{sql} AND {column} = ?", [*args, value]
        rows = await self.db.fetch(sql + " ORDER BY o.name, u.name", args)
        return [User(r[0], r[1], r[2], r[3], when(r[4]) or datetime.now(UTC)) for r in rows]


def raise_field(field: str, message: str) -> None:
    """A 400 naming the field."""
    from relay.errors import InvalidRequest

    raise InvalidRequest(f"{field}: {message}", param=field)
