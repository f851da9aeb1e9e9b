"""Which store a worker's limits live in: shared memory, or Redis with a fallback.

Without Redis, every worker of the host decides in the shared memory ``relay serve`` made
before starting them (:func:`relay.storage.memory.served_store`); a gateway not started by
``relay serve`` (granian run directly, tests in process) gets a segment of its own. With
``redis.enabled``, each worker decides in Redis through a :class:`FailoverStore` that falls
back to that same shared memory (``limits.on_redis_failure: local``), opens or closes, while
Redis fails, and comes back to Redis by itself.
"""

from __future__ import annotations

import logging
import os
import secrets
from typing import Literal

from relay.config.model import Config
from relay.native import NativeError
from relay.storage.failover import FailoverStore
from relay.storage.limits import LimitStore
from relay.storage.memory import SharedMemoryStore, served_store
from relay.storage.redis import RedisStore

log = logging.getLogger("relay.limits")

# Cells of a segment made for one process alone (no ``relay serve``): a test or an embedding.
PRIVATE_SLOTS = 1 << 14

RedisHealth = Literal["ok", "degraded"]


def memory_store() -> SharedMemoryStore | None:
    """This host's shared cells: the served segment, else one of this process alone (its name
    removed at once: nobody else needs to find it). None when shared memory is unavailable."""
    try:
        served = served_store()
        if served is not None:
            return served
        store = SharedMemoryStore.create(
            f"relay-limits-{os.getpid()}-{secrets.token_hex(4)}", PRIVATE_SLOTS
        )
        store.unlink()
        return store
    except (OSError, NativeError) as exc:
        log.warning("shared memory for limits unavailable (%s)", exc)
        return None


def limit_store(config: Config) -> LimitStore | None:
    """The store of this worker's limits: a :class:`FailoverStore` on Redis when
    ``redis.enabled``, else the host's shared memory (None when there is none: limits that
    need a store cannot be enforced, and the caller says so)."""
    local = memory_store()
    if not config.redis.enabled:
        return local
    mode = config.limits.on_redis_failure
    if mode == "local" and local is None:
        log.warning(
            "limits.on_redis_failure is local but this host has no shared memory for limits: "
            "while Redis fails, requests a limit applies to are refused"
        )
        mode = "closed"
    return FailoverStore(RedisStore.from_config(config.redis), local, mode, config.limits.replicas)


def redis_health(store: LimitStore | None) -> RedisHealth | None:
    """What readiness says of Redis: None when limits are not in Redis."""
    if not isinstance(store, FailoverStore):
        return None
    return "degraded" if store.degraded else "ok"


async def probe_redis(store: FailoverStore) -> RedisHealth:
    """Ask Redis now (at most ``redis.timeout_ms``), for readiness: with no traffic nothing
    else would notice that Redis failed or came back."""
    return "ok" if await store.probe() else "degraded"
