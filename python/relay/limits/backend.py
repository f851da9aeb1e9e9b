"""Where the limits' cells live: the one place the store is chosen.

Under ``relay serve`` every worker attaches the shared memory the main process made before
starting them (:func:`relay.storage.memory.served_store`), so a limit holds exactly across
``--workers``. Without it (granian run directly, an app built in a test's process) the cells
are private to this process, in a segment of its own whose name is removed at once (nothing
to clean up; the mapping stays valid), or without ``/dev/shm`` in a dict of this process
(:class:`ProcessStore`).

With ``redis.enabled``, each worker decides in Redis through a :class:`FailoverStore` that
falls back to that same shared memory (``limits.on_redis_failure: local``, each limit divided
by ``limits.replicas``), or lets everything through (``open``), or refuses (``closed``) while
Redis fails, and comes back to Redis by itself when it answers again.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, TypeGuard

from relay.config.model import Config
from relay.native import gcra, monotonic
from relay.storage.limits import CellState, Charge, Decision, LimitStore
from relay.storage.memory import SharedMemoryStore, served_store

if TYPE_CHECKING:
    from relay.storage.failover import FailoverStore

log = logging.getLogger("relay.limits")

# A private table: one process's callers and tenants (65,536 cells in 1.5 MiB).
PRIVATE_SLOTS = 1 << 16
# Cells a ProcessStore keeps before it drops those that have fully reset.
_MAX_CELLS = 100_000

RedisHealth = Literal["ok", "degraded"]


def limit_store(config: Config) -> LimitStore:
    """The store every limit of this worker decides in."""
    local = memory_store()
    if not config.redis.enabled:
        return local
    # Imported only with Redis on: redis-py imports OpenTelemetry's SDK when it is installed
    # (its own instrumentation), which tracing off must not load.
    from relay.storage.failover import FailoverStore
    from relay.storage.redis import RedisStore

    return FailoverStore(
        RedisStore.from_config(config.redis),
        local,
        config.limits.on_redis_failure,
        config.limits.replicas,
    )


def is_failover(store: object) -> TypeGuard[FailoverStore]:
    """``store`` decides in Redis with a fallback (without importing Redis' client when no
    store does)."""
    failover = sys.modules.get("relay.storage.failover")
    return failover is not None and isinstance(store, failover.FailoverStore)


def memory_store() -> LimitStore:
    """This host's cells: the served shared memory, else this process's own."""
    try:
        served = served_store()
    except FileNotFoundError:
        log.error("the limits' shared memory is gone; this worker's limits are its own")
        served = None
    if served is not None:
        return served
    try:
        return private_store()
    except OSError as exc:  # no /dev/shm (some sandboxes)
        log.warning("no shared memory for the limits (%s): they are kept in this worker", exc)
        return ProcessStore()


def private_store() -> SharedMemoryStore:
    """Cells of this process alone (not shared with other workers)."""
    name = f"relay-limits-private-{os.getpid()}-{secrets.token_hex(4)}"
    store = SharedMemoryStore.create(name, PRIVATE_SLOTS)
    store.unlink()
    return store


class ProcessStore:
    """:class:`~relay.storage.limits.LimitStore` in this process's memory: the fallback when
    shared memory cannot be made (no ``/dev/shm``). The same GCRA (the native ``gcra``), all
    or nothing, exact within the process; each worker then limits on its own (logged)."""

    __slots__ = ("_tats",)

    def __init__(self) -> None:
        self._tats: dict[str, float] = {}

    async def take(self, charges: Sequence[Charge]) -> Decision:
        """Charge every one of ``charges`` if all fit, else none (nothing awaits in between)."""
        now = monotonic()
        tats = self._tats
        steps = [
            gcra(tats.get(c.key, now), now, c.limit.emission_interval, c.limit.burst, c.cost)
            for c in charges
        ]
        if all(step.allowed for step in steps):
            for charge, step in zip(charges, steps, strict=True):
                tats[charge.key] = step.tat
            if len(tats) > _MAX_CELLS:
                self._purge(now)
            cells = tuple(CellState(s.remaining, s.reset_after) for s in steps)
            return Decision(True, cells, 0.0)
        before = [
            gcra(tats.get(c.key, now), now, c.limit.emission_interval, c.limit.burst, 0.0)
            for c in charges
        ]
        retry = max(s.retry_after for s in steps if not s.allowed)
        return Decision(False, tuple(CellState(s.remaining, s.reset_after) for s in before), retry)

    async def adjust(self, charges: Sequence[Charge]) -> None:
        """Give back (never below empty) or charge over the burst."""
        now = monotonic()
        tats = self._tats
        for charge in charges:
            tat = max(tats.get(charge.key, now), now)
            tats[charge.key] = max(tat + charge.cost * charge.limit.emission_interval, now)

    def _purge(self, now: float) -> None:
        # An absent cell is a full one: cells that have fully reset lose nothing when dropped.
        for key in [k for k, tat in self._tats.items() if tat <= now]:
            del self._tats[key]


async def probe_redis(store: FailoverStore) -> RedisHealth:
    """Ask Redis now (at most ``redis.timeout_ms``), for readiness: with no traffic nothing
    else would notice that Redis failed or came back."""
    return "ok" if await store.probe() else "degraded"
