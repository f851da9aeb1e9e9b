"""The Redis backend: entries shared by every worker and replica, compressed with zstd, each
under ``relay:cache:<tenant tag>:<model tag>:<key>`` with its lifetime as Redis' expiry.

Redis is an optimisation here, never a dependency: a call that fails or takes longer than
``cache.redis_timeout_ms`` is a miss (a lost write), logged once until Redis answers again and
counted in ``failures``. After a failure the cache does not ask Redis for a second (requests
pass straight on), then tries again with the next request.
"""

from __future__ import annotations

import asyncio
import logging
import time

import msgspec
import zstandard
from redis.asyncio import Redis
from redis.exceptions import RedisError

from relay.cache.entry import Entry, decode, encode
from relay.config.model import Config
from relay.storage.redis import connect

log = logging.getLogger("relay.cache")

PREFIX = "relay:cache:"
# After a failure, Redis is left alone this long (no request waits on a Redis that hangs).
RETRY_AFTER_S = 1.0
# Connecting at start-up may take this long.
START_TIMEOUT_S = 2.0
# A purge scans and deletes in steps of this many keys, within this time.
_SCAN_COUNT = 1000
PURGE_TIMEOUT_S = 30.0
# The largest entry read back (a damaged or foreign value must not inflate without bound).
MAX_ENTRY_BYTES = 64 * 1024 * 1024


class RedisBackend:
    """Entries in Redis (see the module docstring)."""

    name = "redis"

    def __init__(self, client: Redis, timeout_s: float) -> None:
        self.client = client
        self.timeout_s = timeout_s
        self.failures = 0
        self.degraded = False
        self._retry_at = 0.0
        self._compress = zstandard.ZstdCompressor(level=3)
        self._decompress = zstandard.ZstdDecompressor()

    @classmethod
    def from_config(cls, config: Config) -> RedisBackend:
        """A backend on its own bounded client for ``redis`` (the cache's own timeout)."""
        timeout_ms = config.cache.redis_timeout_ms
        redis = msgspec.structs.replace(config.redis, timeout_ms=timeout_ms)
        return cls(connect(redis), timeout_ms / 1000)

    async def start(self) -> None:
        """Open a first connection at start-up, with time to spare (connecting costs more
        than a request's ``redis_timeout_ms`` allows); a Redis that is down is only logged."""
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                await self.client.ping()
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed(exc)

    @staticmethod
    def key_of(key: str, tags: tuple[str, str]) -> str:
        """The Redis key of an entry."""
        return f"{PREFIX}{tags[0]}:{tags[1]}:{key}"

    async def get(self, key: str, tags: tuple[str, str]) -> Entry | None:
        """The entry under ``key``, or None (absent, or Redis failed or was too slow)."""
        if self.degraded and time.monotonic() < self._retry_at:
            return None
        try:
            async with asyncio.timeout(self.timeout_s):
                data = await self.client.get(self.key_of(key, tags))
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed(exc)
            return None
        self._recovered()
        if not isinstance(data, bytes):
            return None
        try:
            raw = self._decompress.decompress(data, max_output_size=MAX_ENTRY_BYTES)
        except zstandard.ZstdError:
            return None
        return decode(raw)

    async def put(self, key: str, entry: Entry, ttl_s: float, tags: tuple[str, str]) -> None:
        """Store ``entry`` for ``ttl_s`` seconds (lost if Redis fails)."""
        if self.degraded and time.monotonic() < self._retry_at:
            return
        data = self._compress.compress(encode(entry))
        try:
            async with asyncio.timeout(self.timeout_s):
                await self.client.set(self.key_of(key, tags), data, px=max(int(ttl_s * 1000), 1))
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed(exc)
            return
        self._recovered()

    async def purge(self, tenant: str | None = None, model: str | None = None) -> int:
        """Delete the entries of a tenant tag, a model tag, both, or every entry."""
        pattern = f"{PREFIX}{tenant or '*'}:{model or '*'}:*"
        count = 0
        async with asyncio.timeout(PURGE_TIMEOUT_S):
            cursor = 0
            while True:
                cursor, keys = await self.client.scan(cursor, match=pattern, count=_SCAN_COUNT)
                if keys:
                    count += int(await self.client.unlink(*keys))
                if not cursor:
                    return count

    async def close(self) -> None:
        """Close the client and its pool."""
        await self.client.aclose()

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        self._retry_at = time.monotonic() + RETRY_AFTER_S
        if not self.degraded:
            self.degraded = True
            log.warning(
                "the response cache cannot use Redis (%s): requests pass without it until it "
                "answers again",
                type(exc).__name__ if isinstance(exc, TimeoutError) else exc,
            )

    def _recovered(self) -> None:
        if self.degraded:
            self.degraded = False
            log.info("the response cache uses Redis again")
