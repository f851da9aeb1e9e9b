"""What the spawned processes of test_memory.py run (a module they can import by name)."""

from __future__ import annotations

import asyncio
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier

from relay.storage.limits import Charge, Limit
from relay.storage.memory import SharedMemoryStore, served_store

# Nothing refills during a test: one unit a day.
DAY = 86400.0


def hammer(name: str, gate: Barrier, out: Queue[tuple[int, int]], attempts: int) -> None:
    """Attach by name, wait for the others, then take as fast as possible: on even attempts
    one unit of "wide" (burst 3000), on odd ones "wide" and "narrow" (burst 1000) together.
    Reports how many of each kind passed."""
    store = SharedMemoryStore.attach(name)
    wide = Charge("wide", Limit(1.0, DAY, 3000.0))
    narrow = Charge("narrow", Limit(1.0, DAY, 1000.0))

    async def run() -> tuple[int, int]:
        alone = both = 0
        for i in range(attempts):
            if i % 2 == 0:
                alone += (await store.take([wide])).allowed
            else:
                both += (await store.take([wide, narrow])).allowed
        return alone, both

    gate.wait()
    out.put(asyncio.run(run()))


def take_served(out: Queue[tuple[str, bool, bool]]) -> None:
    """As a worker of ``relay serve`` would: find the store through the environment."""
    store = served_store()
    assert store is not None
    once = Charge("served", Limit(1.0, DAY, 1.0))
    first = asyncio.run(store.take([once])).allowed
    second = asyncio.run(store.take([once])).allowed
    out.put((store.name, first, second))
