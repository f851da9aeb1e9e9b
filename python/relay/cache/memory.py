"""The memory backend: a least-recently-used map per worker, bounded by bytes.

Each worker has its own (entries are not shared between workers or hosts: Redis shares them).
An entry past its lifetime is dropped when it is next looked up or when room is needed.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from relay.cache.entry import Entry

# What an entry costs beyond its body: the key, the Entry, the map's node (measured roughly).
OVERHEAD_BYTES = 400


class _Slot:
    __slots__ = ("entry", "expires", "model", "size", "tenant")

    def __init__(self, entry: Entry, expires: float, tags: tuple[str, str]) -> None:
        self.entry = entry
        self.expires = expires
        self.tenant, self.model = tags
        self.size = len(entry.body) + len(entry.model) + OVERHEAD_BYTES


class MemoryBackend:
    """Entries in this worker's memory, at most ``max_bytes`` of them."""

    name = "memory"

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._slots: OrderedDict[str, _Slot] = OrderedDict()

    def __len__(self) -> int:
        return len(self._slots)

    async def get(self, key: str, tags: tuple[str, str] | None = None) -> Entry | None:
        """The live entry under ``key`` (now the most recently used), or None."""
        slot = self._slots.get(key)
        if slot is None:
            return None
        if slot.expires <= time.monotonic():
            self._drop(key)
            return None
        self._slots.move_to_end(key)
        return slot.entry

    async def put(self, key: str, entry: Entry, ttl_s: float, tags: tuple[str, str]) -> None:
        """Keep ``entry`` for ``ttl_s`` seconds, evicting the least recently used for room."""
        slot = _Slot(entry, time.monotonic() + ttl_s, tags)
        if slot.size > self.max_bytes:
            return
        if key in self._slots:
            self._drop(key)
        self._slots[key] = slot
        self.bytes += slot.size
        slots = self._slots
        while self.bytes > self.max_bytes:
            _, old = slots.popitem(last=False)
            self.bytes -= old.size

    async def purge(self, tenant: str | None = None, model: str | None = None) -> int:
        """Drop the entries of a tenant tag, a model tag, both, or (neither) every entry."""
        return self.purge_now(tenant, model)

    def purge_now(self, tenant: str | None = None, model: str | None = None) -> int:
        """:meth:`purge`, without waiting (the worker's own memory)."""
        if tenant is None and model is None:
            count = len(self._slots)
            self._slots.clear()
            self.bytes = 0
            return count
        gone = [
            k
            for k, s in self._slots.items()
            if (tenant is None or s.tenant == tenant) and (model is None or s.model == model)
        ]
        for key in gone:
            self._drop(key)
        return len(gone)

    async def close(self) -> None:
        """Nothing to release."""

    def _drop(self, key: str) -> None:
        slot = self._slots.pop(key)
        self.bytes -= slot.size
