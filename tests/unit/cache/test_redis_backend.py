"""The Redis backend on a real redis-server: entries compressed under ``relay:cache:`` with
their TTL, purges by tag, and a Redis that is gone is a miss, logged once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest

from relay.cache.entry import Entry
from relay.cache.redis import PREFIX, RedisBackend
from relay.config.load import parse_config
from tests.services.redis import RedisServer


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    redis = RedisServer()
    yield redis
    redis.destroy()


def backend(address: str) -> RedisBackend:
    config = parse_config(
        f"providers: {{p: {{kind: echo}}}}\nredis: {{address: '{address}'}}\n"
        "cache: {mode: all, backend: redis, redis_timeout_ms: 200}\n",
        "test.yaml",
        env={},
    )
    return RedisBackend.from_config(config)


ENTRY = Entry(
    1.0, False, b'{"id":"x","text":"' + b"abc " * 500 + b'"}', "x", 0, "m", "p", (1, 2, 0), 0.5
)


def test_entries_are_compressed_kept_with_their_ttl_and_purged_by_tag(server: RedisServer) -> None:
    async def main() -> None:
        cache = backend(server.address)
        try:
            await cache.purge()
            await cache.put("k1", ENTRY, 60, ("t1", "m1"))
            await cache.put("k2", ENTRY, 60, ("t2", "m1"))
            await cache.put("k3", ENTRY, 60, ("t2", "m2"))
            assert await cache.get("k1", ("t1", "m1")) == ENTRY
            assert await cache.get("k1", ("t2", "m1")) is None  # another tenant's key
            raw = await cache.client.get(f"{PREFIX}t1:m1:k1")
            assert isinstance(raw, bytes) and len(raw) < len(ENTRY.body) / 4
            ttl = await cache.client.pttl(f"{PREFIX}t1:m1:k1")
            assert 55_000 < ttl <= 60_000
            assert await cache.purge(tenant="t2") == 2
            assert await cache.get("k1", ("t1", "m1")) == ENTRY
            assert await cache.purge(model="m1") == 1
            assert await cache.purge() == 0
            await cache.client.set(f"{PREFIX}t1:m1:bad", b"not zstd")
            assert await cache.get("bad", ("t1", "m1")) is None
        finally:
            await cache.close()

    asyncio.run(main())


def test_a_redis_that_is_gone_is_a_miss_logged_once(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        gone = RedisServer()
        address = gone.address
        gone.destroy()
        cache = backend(address)
        try:
            with caplog.at_level(logging.WARNING, logger="relay.cache"):
                assert await cache.get("k", ("t", "m")) is None
                await cache.put("k", ENTRY, 60, ("t", "m"))  # within the second: not tried
                assert await cache.get("k", ("t", "m")) is None
            assert cache.failures == 1 and cache.degraded
            assert sum("cannot use Redis" in r.message for r in caplog.records) == 1
        finally:
            await cache.close()

    asyncio.run(main())
