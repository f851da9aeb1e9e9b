"""The worker's cache: its backend, the purges of other workers, and its counts.

Hit and miss counts per model live here (``hits``, ``misses``) and on each exchange
(``Exchange.cache_hit``: True for a hit, False for a miss, None when the cache was not asked),
for the metrics to export; the Redis backend counts its failures.
"""

from __future__ import annotations

import time
from typing import Protocol

from relay.cache.board import Board
from relay.cache.entry import Entry
from relay.cache.memory import MemoryBackend
from relay.config.model import Config

# Models counted by name; any further one is counted as OTHER.
MAX_MODELS = 1024
OTHER = "other"


class Backend(Protocol):
    """Where entries live: this worker's memory or Redis."""

    name: str

    async def get(self, key: str, tags: tuple[str, str]) -> Entry | None:
        """The live entry under ``key``, or None."""
        ...

    async def put(self, key: str, entry: Entry, ttl_s: float, tags: tuple[str, str]) -> None:
        """Keep ``entry`` for ``ttl_s`` seconds."""
        ...

    async def purge(self, tenant: str | None = None, model: str | None = None) -> int:
        """Drop entries by tags (None: any); how many went."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


def backend_name(config: Config) -> str:
    """``cache.backend``, defaulting to Redis when ``redis.enabled``."""
    return config.cache.backend or ("redis" if config.redis.enabled else "memory")


class Cache:
    """The backend of this worker, with purges and counts (see the module docstring)."""

    def __init__(self, backend: Backend, board: Board | None = None) -> None:
        self.backend = backend
        self.board = board
        self.hits: dict[str, int] = {}
        self.misses: dict[str, int] = {}
        self.bypasses = 0
        self._memory = backend if isinstance(backend, MemoryBackend) else None

    @classmethod
    def from_config(cls, config: Config) -> Cache:
        """The configured backend; purges shared by the workers when served by ``relay
        serve`` with the memory backend."""
        if backend_name(config) == "redis":
            # Only then: redis-py loads OpenTelemetry's SDK when installed (tracing off must not).
            from relay.cache.redis import RedisBackend

            return cls(RedisBackend.from_config(config))
        return cls(MemoryBackend(config.cache.max_bytes), Board.served())

    @property
    def failures(self) -> int:
        """Calls to Redis that failed or timed out (0 for the memory backend)."""
        return getattr(self.backend, "failures", 0)

    async def get(self, key: str, tags: tuple[str, str], max_age_s: float | None) -> Entry | None:
        """The entry under ``key`` if it is no older than ``max_age_s`` (None: any age)."""
        memory, board = self._memory, self.board
        if memory is not None and board is not None and board.count != board.seen:
            board.apply(memory.purge_now)
        entry = await self.backend.get(key, tags)
        if (
            entry is not None
            and max_age_s is not None
            and time.time() - entry.stored_at > max_age_s
        ):
            return None
        return entry

    async def put(self, key: str, entry: Entry, ttl_s: float, tags: tuple[str, str]) -> None:
        """Store ``entry``."""
        await self.backend.put(key, entry, ttl_s, tags)

    async def purge(self, tenant: str | None, model: str | None) -> int:
        """Purge everywhere: Redis, or this worker's memory and (posted) every other's."""
        count = await self.backend.purge(tenant, model)
        board = self.board
        if board is not None:
            posted = board.post(tenant, model)
            if posted == board.seen + 1:  # no other purge in between: this one is done here
                board.seen = posted
        return count

    def counted(self, model: str, hit: bool) -> None:
        """One hit or miss of ``model`` (past :data:`MAX_MODELS` names, under ``other``: a
        ``default_provider`` lets clients choose names, which must not grow the tables)."""
        counts = self.hits if hit else self.misses
        if model not in counts and len(counts) >= MAX_MODELS:
            model = OTHER
        counts[model] = counts.get(model, 0) + 1

    async def start(self) -> None:
        """Connect (Redis) at the worker's start."""
        start = getattr(self.backend, "start", None)
        if start is not None:
            await start()

    async def close(self) -> None:
        """Release the backend's connections."""
        await self.backend.close()
