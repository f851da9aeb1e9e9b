"""Spend survives restarts: the budget cells of the current periods rebuilt from the ledger.

``relay serve`` calls :func:`rebuild_at_start` in the main process, after it has made the
shared memory of the limits and before granian starts the workers, so the first request
already finds each budget as spent as the ledger says. It sums ``cost_usd`` of the daily
usage roll-up (``usage_daily``, kept when ledger rows are purged: a ``total`` budget counts
every day) per tenant (organisation and name) and per key (organisation and the key's
visible prefix) since each period began, and charges every budget cell with ``adjust``.

The ledger writes its rows in batches, flushed when a gateway stops: after a clean stop
nothing is missing; after a crash, the last half second or so of spend is. A tenant deleted
and created again under the same name in one period inherits the spend recorded under that
name (the roll-up keys tenants by name).

With Redis (``redis.enabled``) the cells live in Redis and outlive the gateway: the rebuild is
then skipped for every cell that exists in Redis (each cell is peeked at first, one call a
cell, as a Redis Cluster wants), and only cells Redis lost (a flush, a new Redis) are charged
from the ledger; the host's shared memory, where the workers decide while Redis fails, is
rebuilt too. Replicas starting at once on an empty Redis charge each cell once: only the one
that takes the cell's marker (``<cell>:rebuilt``, kept an hour) charges it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from redis.exceptions import RedisError

from relay.config.model import Config, RedisConfig
from relay.config.tenancy import NO_DATABASE
from relay.ledger.connect import open_database
from relay.ledger.database import Database
from relay.ledger.records import DAY_S
from relay.limits.budget import PERIODS, Period, budget_charge, cell_key, period_of
from relay.storage.limits import Charge, Limit, LimitStore
from relay.storage.redis import RedisStore

log = logging.getLogger("relay.limits")

_TENANTS = (
    "SELECT t.id, o.name, t.name, t.budget_usd, t.budget_period FROM tenants t "
    "JOIN organizations o ON o.id = t.org_id "
    "WHERE t.budget_usd IS NOT NULL AND t.deleted_at IS NULL"
)
_KEYS = (
    "SELECT k.id, o.name, k.prefix, k.budget_usd, k.budget_period FROM api_keys k "
    "JOIN organizations o ON o.id = k.org_id "
    "WHERE k.budget_usd IS NOT NULL AND k.revoked_at IS NULL"
)
_TENANT_SPEND = (
    "SELECT org, tenant, SUM(cost_usd) FROM usage_daily WHERE day >= ? GROUP BY org, tenant"
)
_KEY_SPEND = (
    "SELECT org, key_prefix, SUM(cost_usd) FROM usage_daily "
    "WHERE day >= ? AND key_prefix <> '' GROUP BY org, key_prefix"
)
# Cells per store call.
_CHUNK = 256
# One rebuild of a cell an hour among the gateways sharing a Redis.
_MARKER = Limit(1.0, 3600.0, 1.0)


def _first_day(period: Period) -> int:
    # Periods are whole UTC days; ``total`` counts every day in the ledger.
    return 0 if period.label == "total" else int(period.start // DAY_S)


async def _spend(db: Database, sql: str, day: int) -> dict[tuple[str, str], float]:
    return {(str(a), str(b)): float(c or 0.0) for a, b, c in await db.fetch(sql, [day])}


async def budget_charges(db: Database, now: float) -> list[Charge]:
    """The charges that bring each budget cell of the current periods to the ledger's spend
    (budgets with no spend yet have none)."""
    periods = {kind: period_of(kind, now) for kind in PERIODS}
    tenants = await db.fetch(_TENANTS)
    keys = await db.fetch(_KEYS)
    spend: dict[tuple[str, str], dict[tuple[str, str], float]] = {}
    for kind in {str(row[4]) for row in tenants} & set(PERIODS):
        spend["tenant", kind] = await _spend(db, _TENANT_SPEND, _first_day(periods[kind]))
    for kind in {str(row[4]) for row in keys} & set(PERIODS):
        spend["key", kind] = await _spend(db, _KEY_SPEND, _first_day(periods[kind]))
    charges = []
    for scope, rows in (("tenant", tenants), ("key", keys)):
        for owner, org, name, budget, kind in rows:
            if kind not in periods:
                continue
            spent = spend[scope, kind].get((str(org), str(name)), 0.0)
            if spent > 0.0:
                period = periods[kind]
                key = cell_key(scope, str(owner), period)
                charges.append(budget_charge(key, float(budget), period, now, spent))
    return charges


async def rebuild_budgets(
    db: Database, store: LimitStore, *, now: float | None = None, chunk: int = _CHUNK
) -> int:
    """Charge each empty budget cell of the current periods with the ledger's spend; cells
    that already hold spend (kept in Redis) are left alone. Returns the cells charged.
    ``chunk``: cells per store call (1 for Redis, whose calls must keep to one cluster slot)."""
    charges = await budget_charges(db, time.time() if now is None else now)
    return await charge_empty(store, charges, chunk)


async def charge_empty(
    store: LimitStore, charges: Sequence[Charge], chunk: int = _CHUNK, *, once: bool = False
) -> int:
    """Make each of ``charges`` whose cell is empty (one peek, then one adjust, a chunk at a
    time); the cells charged. ``once``: a store several gateways share (Redis), where only the
    one that first takes a marker cell (``<cell>:rebuilt``, for an hour) charges a cell."""
    charged = 0
    for i in range(0, len(charges), chunk):
        part = charges[i : i + chunk]
        seen = await store.take([Charge(c.key, c.limit, 0.0) for c in part])
        empty = [c for c, cell in zip(part, seen.cells, strict=True) if cell.reset_after_s <= 0]
        if once:
            empty = [c for c in empty if (await store.take([_marker(c.key)])).allowed]
        if empty:
            await store.adjust(empty)
            charged += len(empty)
    return charged


def _marker(key: str) -> Charge:
    return Charge(key + ":rebuilt", _MARKER, 1.0)


async def _rebuild(url: str, store: LimitStore, redis: RedisConfig | None) -> int:
    db = open_database(url)
    try:
        await db.connect()
        await db.migrate()  # the workers would; the budget columns must exist first
        charges = await budget_charges(db, time.time())
    finally:
        await db.close()
    charged = await charge_empty(store, charges)
    if redis is not None and charges:
        shared = RedisStore.from_config(redis)
        try:
            charged += await charge_empty(shared, charges, 1, once=True)
        except (RedisError, OSError, TimeoutError) as exc:
            # The workers find Redis or not by themselves; the host's cells are rebuilt.
            log.warning("budgets: Redis could not be asked for the budgets' cells (%s)", exc)
        finally:
            await shared.close()
    return charged


def rebuild_at_start(config: Config, store: LimitStore) -> None:
    """In the main process of ``relay serve``, before the workers start: rebuild the budget
    cells of this host's shared memory, and with ``redis.enabled`` those Redis lost, from the
    ledger (blocking, on a thread of its own). A database that cannot be read is logged, and
    the gateway serves with empty budget cells."""
    url = config.database.url
    if url == NO_DATABASE:
        return
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return  # no ledger yet
    started = time.monotonic()
    redis = config.redis if config.redis.enabled else None
    with ThreadPoolExecutor(1, thread_name_prefix="relay-budgets") as pool:
        try:
            charged = pool.submit(asyncio.run, _rebuild(url, store, redis)).result()
        except Exception as exc:  # the gateway still serves; it says what budgets miss
            log.warning(
                "budgets: could not rebuild this period's spend from the ledger (%s): "
                "budgets count from zero until the next restart",
                exc,
            )
            return
    if charged:
        log.info(
            "budgets: spend rebuilt from the ledger for %d budget cell(s) in %.0f ms",
            charged,
            1000 * (time.monotonic() - started),
        )
