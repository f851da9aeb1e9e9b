"""Where the cells live: the served shared memory, else a private table, else (no
``/dev/shm``) this process's memory, deciding as the others do."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

import pytest

from relay.config import parse_config
from relay.limits import backend
from relay.limits.backend import ProcessStore, limit_store
from relay.storage.limits import Charge, Limit, LimitStore
from relay.storage.memory import SEGMENT_VAR, SharedMemoryStore

CONFIG = parse_config("providers: {e: {kind: echo}}\n", "t")
HOUR = Limit(2.0, 3600.0, 2.0)  # two an hour: nothing refills during a test


def test_a_private_table_when_not_served(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SEGMENT_VAR, raising=False)
    first, second = limit_store(CONFIG), limit_store(CONFIG)
    assert isinstance(first, SharedMemoryStore) and first is not second


def test_without_shared_memory_the_process_keeps_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SEGMENT_VAR, raising=False)

    def no_shm(name: str, slots: int) -> SharedMemoryStore:
        raise PermissionError("/dev/shm is read-only")

    monkeypatch.setattr(backend.SharedMemoryStore, "create", no_shm)
    assert isinstance(limit_store(CONFIG), ProcessStore)


@pytest.mark.parametrize("make", [ProcessStore, backend.private_store], ids=["process", "shm"])
def test_the_process_store_decides_as_shared_memory_does(make: Callable[[], LimitStore]) -> None:
    store = make()

    async def run() -> None:
        a, b = Charge("a", HOUR), Charge("b", HOUR, 2.0)
        allowed = await store.take([a, b])
        assert allowed.allowed and [c.remaining for c in allowed.cells] == [1, 0]
        refused = await store.take([a, b])  # b is spent: a is not charged either
        assert not refused.allowed and [c.remaining for c in refused.cells] == [1, 0]
        assert refused.retry_after_s == pytest.approx(3600.0, rel=1e-3)
        assert (await store.take([a])).allowed  # a's second: it was not charged above
        never = await store.take([Charge("c", HOUR, 3.0)])
        assert not never.allowed and math.isinf(never.retry_after_s)
        await store.adjust([Charge("b", HOUR, -2.0)])  # given back
        assert (await store.take([Charge("b", HOUR, 2.0)])).allowed
        await store.adjust([Charge("b", HOUR, 3.0)])  # charged over the burst
        over = await store.take([Charge("b", HOUR, 0.0)])
        assert over.cells[0].remaining == 0 and over.cells[0].reset_after_s > 3 * 1800 - 1

    asyncio.run(run())
