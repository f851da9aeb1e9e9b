"""Every key and tenant in memory, so authenticating costs a hash and a dict look-up.

Each worker polls the database's change marker about once a second, off the request path,
and reloads only the keys and tenants whose ``seq`` is past the marker it last saw. A key
revoked, expired or edited on any host is therefore seen by every worker within
``auth.key_refresh_s`` plus one small query. When the database is away, the last loaded state
keeps serving and the poller retries.

A key not in memory may be newer than the last poll (created a moment ago through another
worker): :meth:`KeyCache.find` asks the database for it before it is refused, so a key works
on every worker as soon as the admin API returns it. Only strings shaped like a key are asked
about, one query per key at a time, a miss is remembered for a few seconds, and each worker
asks at most ``lookups_per_s`` times a second (beyond that an unknown key is refused from
memory, and works after the next poll): random keys cannot turn into a flood of queries.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import msgspec

from relay.auth.tokens import hash_key, looks_like_key
from relay.exchange import Limits
from relay.ledger.database import Database, DatabaseUnavailable

log = logging.getLogger("relay.auth")

_MARKER = "SELECT value FROM change_marker WHERE id = 1"
_KEY_SELECT = (
    "SELECT k.id, k.hash, k.prefix, o.name, k.tenant_id, t.name, k.user_id, u.role, "
    "k.allowed_models, t.allowed_models, k.rate_limit_rpm, k.tokens_per_minute, k.budget_usd, "
    "k.budget_period, k.budget_alert_ratio, t.rate_limit_rpm, t.tokens_per_minute, "
    "t.budget_usd, t.budget_period, t.budget_alert_ratio, k.expires_at, k.revoked_at, "
    "t.deleted_at FROM api_keys k JOIN organizations o ON o.id = k.org_id "
    "LEFT JOIN tenants t ON t.id = k.tenant_id LEFT JOIN users u ON u.id = k.user_id "
)
_KEYS = _KEY_SELECT + "WHERE k.seq > ? OR t.seq > ?"
_KEY_BY_HASH = _KEY_SELECT + "WHERE k.hash = ?"
# A key the database did not know is not asked about again for this long.
MISS_TTL_S = 5.0
# A look-up that takes longer than this refuses the key (the poller will still load it).
LOOKUP_TIMEOUT_S = 2.0
_TENANTS = (
    "SELECT t.id, t.name, o.name, t.allowed_models, t.rate_limit_rpm, t.tokens_per_minute, "
    "t.budget_usd, t.budget_period, t.budget_alert_ratio, t.deleted_at FROM tenants t JOIN organizations o ON o.id = t.org_id "
    "WHERE t.seq > ?"
)


@dataclass(slots=True, frozen=True)
class CachedKey:
    """What authentication needs to know about one key, built once per change."""

    id: str
    prefix: str
    organization: str
    tenant_id: str | None
    tenant: str | None
    user_id: str | None
    role: str | None
    allowed_models: frozenset[str] | None
    key_limits: Limits
    tenant_limits: Limits | None
    expires_at: float | None
    # Revoked keys (and keys of deleted tenants) stay known, to say why they fail.
    revoked: bool


@dataclass(slots=True, frozen=True)
class CachedTenant:
    """A tenant as ``none`` mode attributes requests to it by name."""

    id: str
    name: str
    organization: str
    allowed_models: frozenset[str] | None
    limits: Limits


def decode_models(text: str | None) -> frozenset[str] | None:
    """``allowed_models`` is stored as a JSON list (NULL: every model)."""
    return None if text is None else frozenset(msgspec.json.decode(text, type=list[str]))


def limits(
    rpm: object, tpm: object, budget: object, period: object = "month", ratio: object = 0.8
) -> Limits:
    """Limits from database columns (NULL: unlimited)."""
    return Limits(
        int(rpm) if isinstance(rpm, int) else None,
        int(tpm) if isinstance(tpm, int) else None,
        float(budget) if isinstance(budget, int | float) else None,
        str(period) if isinstance(period, str) else "month",
        float(ratio) if isinstance(ratio, int | float) else 0.8,
    )


def _allowed(key: frozenset[str] | None, tenant: frozenset[str] | None) -> frozenset[str] | None:
    if key is None or tenant is None:
        return key if tenant is None else tenant
    return key & tenant


class KeyCache:
    """Keys by hash and tenants by name, kept in step with the database by :meth:`run`."""

    def __init__(self, db: Database, refresh_s: float = 1.0, lookups_per_s: float = 50.0) -> None:
        self.db = db
        self.refresh_s = refresh_s
        self._by_hash: dict[str, CachedKey] = {}
        self._tenants: dict[str, CachedTenant] = {}
        self._seen = -1
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        # Keys asked about and not found: hash -> monotonic time the miss expires (in order).
        self._misses: dict[str, float] = {}
        self._asking: dict[str, asyncio.Task[CachedKey | None]] = {}
        # A token bucket of database look-ups (full at start).
        self._rate = lookups_per_s
        self._tokens = lookups_per_s
        self._filled_at = time.monotonic()

    def lookup(self, key: str) -> CachedKey | None:
        """The key's record, or None if no such key exists (as of the last refresh)."""
        return self._by_hash.get(hash_key(key))

    async def find(self, key: str) -> CachedKey | None:
        """The key's record, from memory or else from the database (see the module's notes);
        None when no such key exists, or when the database may not be asked now."""
        digest = hash_key(key)
        record = self._by_hash.get(digest)
        if record is not None or not looks_like_key(key):
            return record
        asking = self._asking.get(digest)
        if asking is None:
            now = time.monotonic()
            if self._misses.get(digest, 0.0) > now or not self._take_token(now):
                return None
            asking = asyncio.get_running_loop().create_task(self._ask(digest))
            self._asking[digest] = asking
            asking.add_done_callback(lambda _: self._asking.pop(digest, None))
        # Shielded: a caller that leaves does not cancel the answer others wait for.
        return await asyncio.shield(asking)

    def _take_token(self, now: float) -> bool:
        self._tokens = min(self._rate, self._tokens + (now - self._filled_at) * self._rate)
        self._filled_at = now
        if self._tokens < 1.0:
            log.debug("unknown key refused without a database look-up (look-up rate reached)")
            return False
        self._tokens -= 1.0
        return True

    async def _ask(self, digest: str) -> CachedKey | None:
        try:
            rows = await asyncio.wait_for(self.db.fetch(_KEY_BY_HASH, [digest]), LOOKUP_TIMEOUT_S)
        except (DatabaseUnavailable, TimeoutError) as exc:
            log.warning("could not look up an unknown key in the database: %s", exc or "timeout")
            return None
        except Exception:  # refused (401) rather than failing every request that waits on it
            log.exception("looking up an unknown key failed")
            return None
        if not rows:
            self._remember_miss(digest)
            return None
        # The poller's copy wins. This row may already be stale (revoked since it was read),
        # and a refresh that saw the revocation would not bring it again; a stale copy of the
        # poller's is corrected by its next refresh.
        if digest not in self._by_hash:
            self._put_key(rows[0])
        return self._by_hash[digest]

    def _remember_miss(self, digest: str) -> None:
        now = time.monotonic()
        misses = self._misses
        while misses:  # entries are in time order: the expired ones come first
            first = next(iter(misses))
            if misses[first] > now:
                break
            del misses[first]
        misses.pop(digest, None)
        misses[digest] = now + MISS_TTL_S

    def tenant(self, name: str) -> CachedTenant | None:
        """A live tenant by ``name`` (default organisation) or ``organization/name``."""
        return self._tenants.get(name if "/" in name else f"default/{name}")

    async def refresh(self) -> bool:
        """Reload what changed since the last refresh; True if anything did."""
        (marker,) = (await self.db.fetch(_MARKER))[0]
        if marker == self._seen:
            return False
        since = self._seen
        for row in await self.db.fetch(_KEYS, [since, since]):
            self._put_key(row)
        for row in await self.db.fetch(_TENANTS, [since]):
            self._put_tenant(row)
        self._seen = marker
        return True

    def _put_key(self, row: tuple[object, ...]) -> None:
        (kid, digest, prefix, org, tenant_id, tenant, user_id, role, k_models, t_models) = row[:10]
        k_rpm, k_tpm, k_budget, k_period, k_ratio = row[10:15]
        t_rpm, t_tpm, t_budget, t_period, t_ratio, expires, revoked, deleted = row[15:]
        self._by_hash[str(digest)] = CachedKey(
            id=str(kid),
            prefix=str(prefix),
            organization=str(org),
            tenant_id=tenant_id if isinstance(tenant_id, str) else None,
            tenant=tenant if isinstance(tenant, str) else None,
            user_id=user_id if isinstance(user_id, str) else None,
            role=role if isinstance(role, str) else None,
            allowed_models=_allowed(
                decode_models(k_models if isinstance(k_models, str) else None),
                decode_models(t_models if isinstance(t_models, str) else None),
            ),
            key_limits=limits(k_rpm, k_tpm, k_budget, k_period, k_ratio),
            tenant_limits=limits(t_rpm, t_tpm, t_budget, t_period, t_ratio) if tenant_id else None,
            expires_at=float(expires) if isinstance(expires, int | float) else None,
            revoked=revoked is not None or deleted is not None,
        )

    def _put_tenant(self, row: tuple[object, ...]) -> None:
        tid, name, org, models, rpm, tpm, budget, period, ratio, deleted = row
        key = f"{org}/{name}"
        if deleted is not None:
            current = self._tenants.get(key)
            if current is not None and current.id == tid:
                del self._tenants[key]
            return
        self._tenants[key] = CachedTenant(
            id=str(tid),
            name=str(name),
            organization=str(org),
            allowed_models=decode_models(models if isinstance(models, str) else None),
            limits=limits(rpm, tpm, budget, period, ratio),
        )

    def start(self) -> None:
        """Poll in the background until :meth:`stop`."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run())

    async def run(self) -> None:
        """The poll loop: a failed refresh is logged once per outage and retried."""
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                await self.refresh()
            except DatabaseUnavailable as exc:
                if not self._failing:
                    log.warning("key refresh failed, serving the last known keys: %s", exc)
                self._failing = True
                continue
            except Exception:
                log.exception("key refresh failed")
                continue
            if self._failing:
                log.info("key refresh works again")
            self._failing = False

    async def stop(self) -> None:
        """Stop polling."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
