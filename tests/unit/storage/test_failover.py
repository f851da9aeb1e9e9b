"""FailoverStore against a real redis-server that is killed, or hangs behind a proxy that stops
forwarding: every call answers within the timeout, as ``on_redis_failure`` says, never with an
exception; the switch is logged once and counted; Redis is used again once it answers."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import pytest

from relay.config.model import RedisConfig
from relay.storage.failover import FailoverStore, Mode
from relay.storage.limits import Charge, Decision, Limit
from relay.storage.memory import SharedMemoryStore
from relay.storage.redis import RedisStore
from tests.services.redis import RedisServer, StallingProxy

T = TypeVar("T")
TIMEOUT_MS = 100
# A bound on each call, generous for a loaded machine: without the timeout a killed Redis
# would still answer fast (refused), but a hanging one would never answer at all.
CALL_BOUND_S = TIMEOUT_MS / 1000 + 0.9
LIMIT = Limit(4, 3600, 4)  # 4 per hour: nothing refills during a test


class CountingStore(RedisStore):
    """A RedisStore that counts what is asked of Redis."""

    takes = 0
    pings = 0

    async def take(self, charges: object, *, now: float | None = None) -> Decision:  # type: ignore[override]
        self.takes += 1
        return await super().take(charges, now=now)  # type: ignore[arg-type]

    async def ping(self) -> None:
        self.pings += 1
        await super().ping()


@pytest.fixture
def server() -> Iterator[RedisServer]:
    """A redis-server of the test's own (it gets killed)."""
    server = RedisServer()
    yield server
    server.destroy()


def fresh_name() -> str:
    return f"relay-test-{os.getpid()}-{secrets.token_hex(4)}"


def run(
    address: str,
    mode: Mode,
    body: Callable[[FailoverStore, CountingStore], Awaitable[T]],
    replicas: int = 1,
) -> T:
    async def main() -> T:
        config = RedisConfig(address=address, timeout_ms=TIMEOUT_MS)
        primary = CountingStore.from_config(config)
        assert isinstance(primary, CountingStore)
        local = SharedMemoryStore.create(fresh_name(), 4096) if mode == "local" else None
        store = FailoverStore(primary, local, mode, replicas)
        try:
            return await body(store, primary)
        finally:
            await store.close()
            if local is not None:
                local.unlink()

    return asyncio.run(main())


async def timed_takes(store: FailoverStore, key: str, count: int) -> list[Decision]:
    """``count`` takes one after the other, each checked to answer within the bound."""
    decisions = []
    for _ in range(count):
        started = time.monotonic()
        decisions.append(await store.take([Charge(key, LIMIT)]))
        assert time.monotonic() - started < CALL_BOUND_S
    return decisions


async def until_redis_again(store: FailoverStore, key: str) -> None:
    deadline = time.monotonic() + 10
    while store.degraded:
        assert time.monotonic() < deadline, "Redis was not used again within 10 s"
        await timed_takes(store, key, 1)
        await asyncio.sleep(0.05)


def switches(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "relay.limits"]


@pytest.mark.parametrize("replicas", [1, 2])
def test_killed_redis_falls_back_to_the_local_store_at_the_limit_per_replica(
    server: RedisServer, replicas: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "relay.limits")

    async def body(store: FailoverStore, primary: CountingStore) -> None:
        assert sum(d.allowed for d in await timed_takes(store, "before", 6)) == 4
        assert not store.degraded
        server.kill()
        decisions = await timed_takes(store, "after", 10)
        # the local store decides at the limit divided by the replicas
        assert sum(d.allowed for d in decisions) == 4 // replicas
        assert store.degraded and store.failovers == 1
        assert not decisions[-1].allowed and decisions[-1].retry_after_s > 0
        # give-backs go to the local store while degraded: one more fits
        await store.adjust([Charge("after", LIMIT, -1)])
        assert (await store.take([Charge("after", LIMIT)])).allowed
        # the Redis cell is not charged again until Redis is back
        server.start()
        await until_redis_again(store, "after")
        assert store.recoveries == 1 and store.failovers == 1
        assert (await store.take([Charge("after", LIMIT)])).allowed  # a fresh Redis: empty
        assert await primary.client.exists("relay:after") == 1

    run(server.address, "local", body, replicas)
    assert len(switches(caplog)) == 2
    assert switches(caplog)[0].startswith("Redis failed (ConnectionError: ")
    assert switches(caplog)[0].endswith(
        f"limits are now decided in this host's memory at each limit / {replicas} until "
        "Redis answers again"
    )
    assert switches(caplog)[1] == "Redis answers again; limits are decided in Redis"


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_killed_redis_opens_or_closes(server: RedisServer, mode: Mode) -> None:
    async def body(store: FailoverStore, primary: CountingStore) -> None:
        await timed_takes(store, "k", 4)
        server.kill()
        decisions = await timed_takes(store, "k", 8)
        assert {d.allowed for d in decisions} == {mode == "open"}
        if mode == "closed":
            assert {d.retry_after_s for d in decisions} == {1.0}
        await store.adjust([Charge("k", LIMIT, -4)])  # nothing to settle, no exception
        assert store.degraded and store.failovers == 1
        server.start()
        await until_redis_again(store, "k")

    run(server.address, mode, body)


def test_redis_killed_with_decisions_in_flight(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    async def body(store: FailoverStore, primary: CountingStore) -> None:
        async def one(i: int) -> Decision:
            if i == 100:
                server.kill()
            return await store.take([Charge(f"k{i % 7}", LIMIT)])

        decisions = await asyncio.gather(*(one(i) for i in range(300)))
        assert all(isinstance(d, Decision) for d in decisions)
        assert store.degraded and store.failovers == 1

    run(server.address, "local", body)
    assert len(switches(caplog)) == 1


def test_hanging_redis_answers_within_the_timeout_then_recovers(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "relay.limits")
    proxy = StallingProxy(server.port)

    async def body(store: FailoverStore, primary: CountingStore) -> None:
        assert all(d.allowed for d in await timed_takes(store, "hang", 2))
        proxy.stall()
        # concurrent decisions in flight when Redis stops answering: each waits the timeout
        started = time.monotonic()
        decisions = await asyncio.gather(*(store.take([Charge("hang", LIMIT)]) for _ in range(20)))
        assert time.monotonic() - started < CALL_BOUND_S
        assert sum(d.allowed for d in decisions) == 4  # the local store's own cell
        assert store.degraded and store.failovers == 1
        # degraded: no decision waits on Redis; a probe runs at most once a second
        asked = primary.takes
        await timed_takes(store, "hang", 50)
        assert primary.takes == asked and primary.pings <= 1
        await asyncio.sleep(1.2)
        await timed_takes(store, "hang", 50)  # starts the next probe, which waits the timeout
        assert store.degraded and primary.pings <= 2
        proxy.flow()
        await until_redis_again(store, "hang")
        assert store.recoveries == 1 and store.failovers == 1

    try:
        run(proxy.address, "local", body)
    finally:
        proxy.close()
    messages = switches(caplog)
    assert len(messages) == 2
    assert messages[0].startswith("Redis failed (TimeoutError: no answer in time)")


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_hanging_redis_open_or_closed(server: RedisServer, mode: Mode) -> None:
    proxy = StallingProxy(server.port)

    async def body(store: FailoverStore, primary: CountingStore) -> None:
        await timed_takes(store, "k", 1)
        proxy.stall()
        decisions = await timed_takes(store, "k", 10)
        assert {d.allowed for d in decisions} == {mode == "open"}
        started = time.monotonic()
        await store.adjust([Charge("k", LIMIT, 1)])
        assert time.monotonic() - started < CALL_BOUND_S

    try:
        run(proxy.address, mode, body)
    finally:
        proxy.close()


def test_a_settlement_that_fails_in_redis_goes_to_the_local_store(server: RedisServer) -> None:
    async def body(store: FailoverStore, primary: CountingStore) -> None:
        server.kill()
        await store.adjust([Charge("over", LIMIT, 3)])  # a charge-over: 3 of 4 used locally
        assert store.degraded
        decisions = await timed_takes(store, "over", 3)
        assert [d.allowed for d in decisions] == [True, False, False]

    run(server.address, "local", body)


def test_readiness_can_probe_without_traffic(server: RedisServer) -> None:
    async def body(store: FailoverStore, primary: CountingStore) -> None:
        server.kill()
        await store.take([Charge("r", LIMIT)])
        assert store.degraded
        assert await store.probe() is False
        server.start()
        assert await store.probe() is True
        assert not store.degraded and store.recoveries == 1

    run(server.address, "closed", body)


def test_readiness_probe_notices_a_failed_redis_without_traffic(server: RedisServer) -> None:
    async def body(store: FailoverStore, primary: CountingStore) -> None:
        assert await store.probe() is True
        assert not store.degraded
        server.kill()
        results = await asyncio.gather(*(store.probe() for _ in range(3)))
        assert results == [False, False, False]
        assert store.degraded and store.failovers == 1
        assert primary.pings == 2  # concurrent probes share one PING
        server.start()
        assert await store.probe() is True
        assert not store.degraded and store.recoveries == 1

    run(server.address, "local", body)


def test_invalid_limits_are_still_an_error(server: RedisServer) -> None:
    async def body(store: FailoverStore, primary: CountingStore) -> None:
        with pytest.raises(ValueError, match="burst must be"):
            await store.take([Charge("bad", Limit(5, 60, 0))])
        assert not store.degraded

    run(server.address, "local", body)


def test_local_mode_needs_a_local_store(server: RedisServer) -> None:
    primary = RedisStore.from_config(RedisConfig(address=server.address))
    with pytest.raises(ValueError, match="needs a local store"):
        FailoverStore(primary, None, "local")
    local = SharedMemoryStore.create(fresh_name(), 64)
    try:
        with pytest.raises(ValueError, match="replicas must be at least 1"):
            FailoverStore(primary, local, "local", 0)
    finally:
        local.unlink()
