"""RedisStore against a real redis-server: the Lua math equals the native gcra bit for bit,
decisions are all or nothing and exact across processes, every key expires, Redis' clock."""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay.config.model import RedisConfig
from relay.native import gcra
from relay.storage.limits import CellState, Charge, Decision, Limit, LimitStore
from relay.storage.memory import SharedMemoryStore
from relay.storage.redis import EPOCH_S, RedisStore
from tests.services.redis import RedisServer, resp
from tests.unit.storage.gcra_cases import CASES

T = TypeVar("T")
_prefixes = itertools.count()


def run(server: RedisServer, body: Callable[[RedisStore], Awaitable[T]]) -> T:
    """Run ``body`` with a store on ``server`` whose keys no other test uses."""

    async def main() -> T:
        # A generous timeout: these tests check decisions, not the 50 ms default (a busy
        # machine can take longer than that to schedule redis-server).
        store = RedisStore.from_config(RedisConfig(address=server.address, timeout_ms=5000))
        store.prefix = f"relay:test{next(_prefixes)}:"
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(main())


@pytest.mark.parametrize("case", CASES, ids=[str(i) for i in range(len(CASES))])
def test_the_script_decides_like_the_native_gcra(redis_server: RedisServer, case: tuple) -> None:  # type: ignore[type-arg]
    tat, now, interval, burst, cost = case
    expected = gcra(now if tat is None else tat, now, interval, burst, cost)
    # rate and period chosen so that period / rate is exactly the case's interval
    limit = Limit(1.0, interval, burst)

    async def body(store: RedisStore) -> tuple[Decision, bytes | None]:
        if tat is not None:
            await store.client.set(store.prefix + "cell", repr(tat))
        decision = await store.take([Charge("cell", limit, cost)], now=now)
        return decision, await store.client.get(store.prefix + "cell")

    decision, stored = run(redis_server, body)
    assert decision.allowed == expected.allowed
    assert decision.retry_after_s == expected.retry_after
    assert decision.cells == (CellState(float(expected.remaining), expected.reset_after),)
    if expected.allowed and cost > 0:
        assert stored is not None and float(stored) == expected.tat
    else:
        assert stored == (None if tat is None else repr(tat).encode())


KEYS = ("a", "b", "c")
LIMITS = (Limit(3, 60, 3), Limit(0.2, 1, 1), Limit(100_000, 60, 100_000), Limit(10, 1, 4))
charge = st.builds(
    Charge,
    st.sampled_from(KEYS),
    st.sampled_from(LIMITS),
    st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 4000.0]),
)
adjustment = st.builds(
    Charge,
    st.sampled_from(KEYS),
    st.sampled_from(LIMITS),
    st.sampled_from([-4000.0, -2.0, -1.0, -0.5, 0.5, 1.0, 3.0, 90_000.0]),
)
operation = st.tuples(
    st.sampled_from([0.0, 0.0, 0.001, 0.1, 1.0, 5.0, 61.0]),  # time passing before it
    st.booleans(),  # take or adjust
    st.lists(charge, min_size=1, max_size=4),
    st.lists(adjustment, min_size=1, max_size=3),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(operation, min_size=1, max_size=12), st.sampled_from([0.0, 86_400.0, 3.3e7]))
def test_redis_and_shared_memory_decide_alike(
    redis_server: RedisServer,
    operations: list[tuple[float, bool, list[Charge], list[Charge]]],
    start: float,
) -> None:
    shared = SharedMemoryStore.create(f"relay-test-{os.getpid()}-{secrets.token_hex(4)}", 4096)
    others: list[LimitStore] = [shared]

    async def body(store: RedisStore) -> None:
        now = start
        for elapsed, is_take, takes, adjusts in operations:
            now += elapsed
            if is_take:
                decision = await store.take(takes, now=now)
                for other in others:
                    assert await other.take(takes, now=now) == decision  # type: ignore[call-arg]
            else:
                await store.adjust(adjusts, now=now)
                for other in others:
                    await other.adjust(adjusts, now=now)  # type: ignore[call-arg]
        # the cells hold the same TATs (a peek at cost 0 reports them)
        peek = [Charge(key, LIMITS[0], 0.0) for key in KEYS]
        decision = await store.take(peek, now=now)
        for other in others:
            assert await other.take(peek, now=now) == decision  # type: ignore[call-arg]

    try:
        run(redis_server, body)
    finally:
        shared.unlink()


def test_a_decision_is_all_or_nothing(redis_server: RedisServer) -> None:
    rpm, tpm = Limit(10, 60, 10), Limit(1000, 60, 1000)

    async def body(store: RedisStore) -> None:
        # the request fits its rpm but not its tpm: neither cell is charged
        refused = await store.take([Charge("k:rpm", rpm), Charge("k:tpm", tpm, 1001)])
        assert not refused.allowed and math.isinf(refused.retry_after_s)
        assert refused.cells == (CellState(10.0, 0.0), CellState(1000.0, 0.0))
        assert await store.client.exists(store.prefix + "k:rpm", store.prefix + "k:tpm") == 0
        first = await store.take([Charge("k:rpm", rpm), Charge("k:tpm", tpm, 600)])
        assert first.allowed and first.retry_after_s == 0
        assert [c.remaining for c in first.cells] == [9.0, 400.0]
        refused = await store.take([Charge("k:rpm", rpm), Charge("k:tpm", tpm, 600)])
        assert not refused.allowed
        assert 0 < refused.retry_after_s <= 12.0  # 200 tokens at 1000 per minute
        assert [c.remaining for c in refused.cells] == [9.0, 400.0]

    run(redis_server, body)


def test_adjust_gives_back_and_charges_over(redis_server: RedisServer) -> None:
    tpm = Limit(1000, 60, 1000)
    now = 500.0

    async def body(store: RedisStore) -> None:
        key = store.prefix + "t:tpm"
        assert (await store.take([Charge("t:tpm", tpm, 800)], now=now)).allowed
        await store.adjust([Charge("t:tpm", tpm, -300)], now=now)  # 500 were used
        assert float(await store.client.get(key)) == now + 30.0
        # the answer went 700 over its reservation: the cell is past its burst
        await store.adjust([Charge("t:tpm", tpm, 700)], now=now)
        assert float(await store.client.get(key)) == now + 72.0
        late = await store.take([Charge("t:tpm", tpm, 1)], now=now)
        assert not late.allowed and late.retry_after_s == pytest.approx(12.06)
        assert late.cells == (CellState(0.0, 72.0),)
        # giving back more than was charged empties the cell, never below: the key goes
        await store.adjust([Charge("t:tpm", tpm, -5000)], now=now)
        assert await store.client.exists(key) == 0
        full = await store.take([Charge("t:tpm", tpm, 1000)], now=now)
        assert full.allowed
        # a give-back on an empty cell creates nothing
        await store.adjust([Charge("t:other", tpm, -10)], now=now)
        assert await store.client.exists(store.prefix + "t:other") == 0

    run(redis_server, body)


def test_every_key_is_under_relay_and_expires_when_its_cell_is_empty(
    redis_server: RedisServer,
) -> None:
    rpm, tpm = Limit(6, 60, 6), Limit(1000, 60, 1000)

    async def body(store: RedisStore) -> None:
        await store.take([Charge("k:rpm", rpm), Charge("k:tpm", tpm, 250)])
        await store.take([Charge("k:rpm", rpm)])
        await store.adjust([Charge("k:tpm", tpm, 50), Charge("j:tpm", tpm, 10)])
        keys = sorted(await store.client.keys(store.prefix + "*"))
        assert keys == [(store.prefix + k).encode() for k in ("j:tpm", "k:rpm", "k:tpm")]
        ttls = {k: await store.client.pttl(k) for k in keys}
        # rpm: two requests at 10 s each; tpm: 300 tokens at 60 ms; j: 10 tokens
        assert 19_000 < ttls[keys[1]] <= 20_001
        assert 17_000 < ttls[keys[2]] <= 18_001
        assert 0 < ttls[keys[0]] <= 601  # rounded up to the next millisecond

    run(redis_server, body)
    for key in redis_server.command("KEYS", "*").split(b"\r\n")[2::2]:
        assert key.startswith(b"relay:")


def test_the_clock_is_redis_time_since_relays_epoch(redis_server: RedisServer) -> None:
    limit = Limit(1, 3600, 5)

    async def body(store: RedisStore) -> tuple[float, float, float]:
        before = await store.client.time()
        await store.take([Charge("clock", limit)])
        after = await store.client.time()
        charged_at = float(await store.client.get(store.prefix + "clock")) - 3600
        return before[0] + before[1] / 1e6, charged_at, after[0] + after[1] / 1e6

    before, charged_at, after = run(redis_server, body)
    assert before - EPOCH_S <= charged_at <= after - EPOCH_S


def test_a_forgotten_script_is_loaded_again(redis_server: RedisServer) -> None:
    async def body(store: RedisStore) -> None:
        assert (await store.take([Charge("s", Limit(5, 60, 5))])).allowed
        await store.client.script_flush()
        assert (await store.take([Charge("s", Limit(5, 60, 5))])).cells[0].remaining == 3.0

    run(redis_server, body)


def test_connections_are_kept_and_a_restart_does_not_fail_a_decision() -> None:
    server = RedisServer()  # of this test alone: it is restarted

    async def body(store: RedisStore) -> None:
        pool = store.client.connection_pool
        await asyncio.gather(*(store.take([Charge("k", Limit(1e6, 60, 1e6))]) for _ in range(8)))
        kept = len(store._idle)
        assert 1 <= kept <= 8
        for _ in range(50):  # one at a time: always the same kept connection
            await store.take([Charge("k", Limit(1e6, 60, 1e6))])
        assert len(store._idle) == kept
        server.kill()
        server.start()
        await asyncio.sleep(0.2)  # the loop sees every kept connection closed
        decision = await store.take([Charge("k", Limit(1e6, 60, 1e6))])
        assert decision.allowed  # on a new connection, with the script loaded again
        assert len(store._idle) == 1
        await store.close()
        assert not store._idle and len(pool._in_use_connections) == 0

    async def main() -> None:
        # A generous timeout: connecting again after the restart is not what is tested.
        await body(RedisStore.from_config(RedisConfig(address=server.address, timeout_ms=5000)))

    try:
        asyncio.run(main())
    finally:
        server.destroy()


def test_invalid_limits_are_refused_before_redis(redis_server: RedisServer) -> None:
    async def body(store: RedisStore) -> list[str]:
        messages = []
        for bad in (
            Charge("k", Limit(0, 60, 5)),
            Charge("k", Limit(5, 60, 0.5)),
            Charge("k", Limit(5, 60, 5), -1),
            Charge("k", Limit(5, 60, 5), math.nan),
        ):
            with pytest.raises(ValueError) as info:
                await store.take([bad])
            messages.append(str(info.value))
        assert await store.client.keys(store.prefix + "*") == []
        return messages

    messages = run(redis_server, body)
    assert messages[0] == "k: rate and period_s must be finite numbers > 0, got 0 per 60 s"
    assert messages[1].startswith("k: burst must be a finite number >= 1")
    assert messages[2].startswith("k: cost must be a finite number >= 0")


def test_password_database_and_url_forms() -> None:
    server = RedisServer(password="s3cret")
    try:

        async def use(config: RedisConfig) -> None:
            store = RedisStore.from_config(config)
            try:
                assert (await store.take([Charge("auth", Limit(5, 60, 5))])).allowed
            finally:
                await store.close()

        asyncio.run(use(RedisConfig(address=server.address, password="s3cret", db=2)))
        url = f"redis://:s3cret@127.0.0.1:{server.port}/3"
        asyncio.run(use(RedisConfig(address=url, password="wrong", db=1)))  # the URL's win
        assert _keys_in_db(server, "2") == [b"relay:auth"]
        assert _keys_in_db(server, "3") == [b"relay:auth"]
    finally:
        server.destroy()


def _keys_in_db(server: RedisServer, db: str) -> list[bytes]:
    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as conn:
        conn.sendall(resp("AUTH", "s3cret") + resp("SELECT", db) + resp("KEYS", "*"))
        data = b""
        while data.count(b"\r\n") < 4:
            data += conn.recv(65536)
    return [line for line in data.split(b"\r\n") if line.startswith(b"relay:")]


TAKER = """
import asyncio, sys
from relay.config.model import RedisConfig
from relay.storage.limits import Charge, Limit
from relay.storage.redis import RedisStore

async def main() -> None:
    address, prefix, n, attempts = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    store = RedisStore.from_config(RedisConfig(address=address, timeout_ms=10_000))
    store.prefix = prefix
    await store.ping()
    print("ready", flush=True)
    sys.stdin.readline()
    charges = [Charge("rpm", Limit(n, 36_000, n)), Charge("wide", Limit(1000, 36_000, 1000))]
    decisions = await asyncio.gather(*(store.take(charges) for _ in range(attempts)))
    print(sum(d.allowed for d in decisions), flush=True)
    await store.close()

asyncio.run(main())
"""


def test_exactly_n_pass_from_two_processes_on_one_redis(redis_server: RedisServer) -> None:
    n, attempts, prefix = 40, 150, f"relay:procs{next(_prefixes)}:"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", TAKER, redis_server.address, prefix, str(n), str(attempts)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=os.environ,
        )
        for _ in range(2)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        for proc in procs:  # both start at once
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        passed = [int(proc.communicate(timeout=60)[0]) for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
    assert sum(passed) == n
    # the other cell of each decision was charged exactly as often: all or nothing held

    async def peek(store: RedisStore) -> Decision:
        store.prefix = prefix
        return await store.take([Charge("wide", Limit(1000, 36_000, 1000), 0)])

    assert run(redis_server, peek).cells[0].remaining == 1000 - n


def test_a_cell_whose_key_expired_is_full_again(redis_server: RedisServer) -> None:
    limit = Limit(1, 0.2, 1)  # one per 200 ms

    async def body(store: RedisStore) -> None:
        assert (await store.take([Charge("short", limit)])).allowed
        refused = await store.take([Charge("short", limit)])
        assert not refused.allowed and 0 < refused.retry_after_s <= 0.2
        for _ in range(500):  # Redis expires it (by its own clock) within ~200 ms
            if not await store.client.exists(store.prefix + "short"):
                break
            await asyncio.sleep(0.02)
        assert (await store.take([Charge("short", limit)])).allowed

    run(redis_server, body)
