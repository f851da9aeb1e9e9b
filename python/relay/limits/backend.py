"""Where the limits' cells live: the one place the store is chosen.

Under ``relay serve`` every worker attaches the shared memory the main process made before
starting them (:func:`relay.storage.memory.served_store`), so a limit holds exactly across
``--workers``. Without it (granian run directly, an app built in a test's process) the cells
are private to this process, in a segment of its own whose name is removed at once (nothing
to clean up; the mapping stays valid).

With ``redis.enabled``, each worker decides in Redis through a :class:`FailoverStore` that
falls back to that same shared memory (``limits.on_redis_failure: local``, each limit divided
by ``limits.replicas``), or lets everything through (``open``), or refuses (``closed``) while
Redis fails, and comes back to Redis by itself when it answers again.
"""

from __future__ import annotations

import logging
import os
import secrets
from typing import Literal

from relay.config.model import Config
from relay.storage.failover import FailoverStore
from relay.storage.limits import LimitStore
from relay.storage.memory import SharedMemoryStore, served_store
from relay.storage.redis import RedisStore

log = logging.getLogger("relay.limits")

# A private table: one process's callers and tenants (65,536 cells in 1.5 MiB).
PRIVATE_SLOTS = 1 << 16

RedisHealth = Literal["ok", "degraded"]


def limit_store(config: Config) -> LimitStore:
    """The store every limit of this worker decides in."""
    local = memory_store()
    if not config.redis.enabled:
        return local
    return FailoverStore(
        RedisStore.from_config(config.redis),
        local,
        config.limits.on_redis_failure,
        config.limits.replicas,
    )


def memory_store() -> SharedMemoryStore:
    """This host's cells: the served shared memory, else this process's own."""
    try:
        served = served_store()
    except FileNotFoundError:
        log.error("the limits' shared memory is gone; this worker's limits are its own")
        served = None
    if served is not None:
        return served
    return private_store()


def private_store() -> SharedMemoryStore:
    """Cells of this process alone (not shared with other workers)."""
    name = f"relay-limits-private-{os.getpid()}-{secrets.token_hex(4)}"
    store = SharedMemoryStore.create(name, PRIVATE_SLOTS)
    store.unlink()
    return store


async def probe_redis(store: FailoverStore) -> RedisHealth:
    """Ask Redis now (at most ``redis.timeout_ms``), for readiness: with no traffic nothing
    else would notice that Redis failed or came back."""
    return "ok" if await store.probe() else "degraded"
