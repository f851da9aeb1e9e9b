"""The memory backend: an LRU bounded by bytes (``relay.cache.memory``)."""

from __future__ import annotations

import asyncio

from relay.cache.memory import OVERHEAD_BYTES, MemoryBackend
from tests.unit.cache.cases import (
    entry,
)


def test_the_memory_backend_evicts_the_least_recently_used_by_bytes() -> None:
    async def main() -> None:
        size = 1000 + 1 + OVERHEAD_BYTES
        memory = MemoryBackend(size * 2)
        tags = ("t", "m")
        for key in "abc":
            await memory.put(key, entry(b"x" * 1000), 60, tags)
            if key == "b":
                assert await memory.get("a") is not None  # a is now the most recent
        assert await memory.get("b") is None
        assert await memory.get("a") is not None and await memory.get("c") is not None
        assert memory.bytes == size * 2
        assert await memory.purge() == 2 and memory.bytes == 0
        await memory.put("old", entry(), -1, tags)
        assert await memory.get("old") is None
        for key in ("t1", "t2"):
            await memory.put(key, entry(), 60, tags)
        await memory.put("other", entry(), 60, ("u", "m"))
        assert await memory.purge(tenant="t") == 2
        assert len(memory) == 1 and await memory.purge(model="m") == 1

    asyncio.run(main())
