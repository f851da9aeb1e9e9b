"""SharedMemoryStore: one set of GCRA cells for every process of a host, exact under
concurrency, all or nothing across cells, settled both ways, and its life as ``relay serve``
leads it (made by the main process, attached by name, removed at exit)."""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.native import LimitTableFull, NativeError
from relay.storage import memory
from relay.storage.limits import CellState, Charge, Decision, Limit, LimitStore
from relay.storage.memory import (
    SEGMENT_VAR,
    SharedMemoryStore,
    create_served,
    served_store,
    withdraw_served,
)
from tests.unit.storage import shm_workers

SPAWN = multiprocessing.get_context("spawn")


def fresh_name() -> str:
    return f"relay-test-{os.getpid()}-{secrets.token_hex(4)}"


@pytest.fixture
def store() -> Iterator[SharedMemoryStore]:
    s = SharedMemoryStore.create(fresh_name(), 4096)
    yield s
    s.unlink()


def test_is_a_limit_store(store: SharedMemoryStore) -> None:
    as_protocol: LimitStore = store
    assert asyncio.run(as_protocol.take([Charge("k", Limit(1, 1, 1))])).allowed


def test_exactly_n_pass_from_four_processes(store: SharedMemoryStore) -> None:
    """Four spawned processes take at once, 10,000 times in all: "narrow" (1,000) lets
    exactly 1,000 pairs through, "wide" (3,000) exactly 3,000 takes in all, and no refused
    pair leaves a unit of "wide" charged."""
    gate, out = SPAWN.Barrier(4), SPAWN.Queue()
    procs = [
        SPAWN.Process(target=shm_workers.hammer, args=(store.name, gate, out, 2500))
        for _ in range(4)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    alone = sum(a for a, _ in results)
    both = sum(b for _, b in results)
    assert both == 1000
    assert alone + both == 3000
    wide = Charge("wide", Limit(1.0, shm_workers.DAY, 3000.0))
    after = asyncio.run(store.take([wide]))
    assert not after.allowed and after.cells[0].remaining == 0


def test_all_or_nothing_across_cells(store: SharedMemoryStore) -> None:
    rpm, tpm = Limit(3, 60, 3), Limit(1000, 60, 1000)

    async def scenario() -> list[Decision]:
        return [
            await store.take([Charge("k:1:rpm", rpm), Charge("t:1:tpm", tpm, 900)], now=10.0),
            # The tokens refuse: the request is not counted either.
            await store.take([Charge("k:1:rpm", rpm), Charge("t:1:tpm", tpm, 200)], now=10.0),
            await store.take([Charge("k:1:rpm", rpm), Charge("t:1:tpm", tpm, 100)], now=10.0),
        ]

    first, refused, third = asyncio.run(scenario())
    assert first == Decision(True, (CellState(2.0, 20.0), CellState(100.0, 54.0)), 0.0)
    assert not refused.allowed
    assert refused.cells == (CellState(2.0, 20.0), CellState(100.0, 54.0))
    assert refused.retry_after_s == pytest.approx(6.0)  # 100 tokens back at 1000 a minute
    assert third.allowed and third.cells[0] == CellState(1.0, 40.0)
    assert store.table.tat("t:1:tpm") == pytest.approx(70.0)


def test_a_charge_that_can_never_fit(store: SharedMemoryStore) -> None:
    d = asyncio.run(store.take([Charge("t", Limit(10, 60, 10), 11)], now=0.0))
    assert not d.allowed and d.retry_after_s == math.inf
    assert len(store.table) == 0


def test_adjust_gives_back_and_charges_over(store: SharedMemoryStore) -> None:
    tpm = Limit(100, 60, 100)  # a token every 0.6 s

    async def scenario() -> Decision:
        await store.take([Charge("t", tpm, 80)], now=100.0)  # reserved 80
        await store.adjust([Charge("t", tpm, -50)], now=100.0)  # used 30
        return await store.take([Charge("t", tpm, 70)], now=100.0)

    assert asyncio.run(scenario()).allowed  # 30 + 70: the burst, exactly
    asyncio.run(store.adjust([Charge("t", tpm, -500)], now=100.0))
    assert store.table.tat("t") == 100.0  # never below empty: a full burst, no more
    asyncio.run(store.adjust([Charge("t", tpm, 160)], now=100.0))  # used 160: past the burst
    d = asyncio.run(store.take([Charge("t", tpm, 1)], now=100.0))
    assert not d.allowed
    assert d.retry_after_s == pytest.approx(36.6)  # drained to 99 tokens, then one more


def test_a_table_full_of_live_cells_refuses_to_decide() -> None:
    s = SharedMemoryStore.create(fresh_name(), 32)
    try:
        rpm = Limit(1, 60, 5)
        for i in range(32):
            assert asyncio.run(s.take([Charge(f"k:{i}:rpm", rpm)], now=0.0)).allowed
        with pytest.raises(LimitTableFull, match="full"):
            asyncio.run(s.take([Charge("k:new:rpm", rpm)], now=30.0))
        assert s.table.full_refusals == 1
        # Cells that have reset make room, oldest first; live cells are never dropped.
        assert asyncio.run(s.take([Charge("k:new:rpm", rpm)], now=61.0)).allowed
        assert s.table.evictions == 1
    finally:
        s.unlink()


def test_invalid_limits_raise(store: SharedMemoryStore) -> None:
    with pytest.raises(NativeError, match="rate"):
        asyncio.run(store.take([Charge("k", Limit(0, 60, 1))]))
    with pytest.raises(NativeError, match="burst"):
        asyncio.run(store.adjust([Charge("k", Limit(1, 60, 0.5), -1)]))


def test_attach_by_name_from_a_spawned_process(
    store: SharedMemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SEGMENT_VAR, store.name)
    out = SPAWN.Queue()
    proc = SPAWN.Process(target=shm_workers.take_served, args=(out,))
    proc.start()
    assert out.get(timeout=60) == (store.name, True, False)
    proc.join(timeout=60)
    assert proc.exitcode == 0
    # The child's charge is in the parent's cells.
    once = Charge("served", Limit(1.0, shm_workers.DAY, 1.0))
    assert not asyncio.run(store.take([once])).allowed


def test_unlink_removes_the_segment() -> None:
    s = SharedMemoryStore.create(fresh_name(), 64)
    path = Path("/dev/shm") / s.name
    assert path.exists()
    assert s.unlink()
    assert not path.exists()
    assert not s.unlink()
    with pytest.raises(FileNotFoundError):
        SharedMemoryStore.attach(s.name)
    # This process keeps its mapping.
    assert asyncio.run(s.take([Charge("k", Limit(1, 1, 1))])).allowed


def test_served_lifecycle() -> None:
    environ: dict[str, str] = {}
    assert served_store(environ) is None  # not under relay serve
    made = create_served(64, environ)
    try:
        name = environ[SEGMENT_VAR]
        assert name == made.name and name.startswith(f"relay-limits-{os.getpid()}-")
        worker = served_store(environ)
        assert worker is not None and worker.name == name
        assert served_store(environ) is worker  # attached once per process
    finally:
        withdraw_served(environ)
    assert environ == {}
    assert not (Path("/dev/shm") / name).exists()
    # A worker that attached keeps its cells; one that starts after the main process is gone
    # is told so.
    assert served_store({SEGMENT_VAR: name}) is worker
    with pytest.raises(FileNotFoundError, match="relay-limits-gone"):
        served_store({SEGMENT_VAR: "relay-limits-gone"})


def test_segments_of_killed_gateways_are_removed() -> None:
    child = SPAWN.Process(target=int)
    child.start()
    child.join()
    assert child.pid is not None
    dead = SharedMemoryStore.create(f"relay-limits-{child.pid}-0000dead", 32)
    alive = SharedMemoryStore.create(f"relay-limits-{os.getppid()}-0000a11e", 32)
    environ: dict[str, str] = {}
    try:
        create_served(32, environ)
        assert not (Path("/dev/shm") / dead.name).exists()
        assert (Path("/dev/shm") / alive.name).exists()
    finally:
        withdraw_served(environ)
        alive.unlink()
        dead.unlink()
    assert memory.SEGMENT_VAR not in environ
