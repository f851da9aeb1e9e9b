"""GCRA cells in this process only: a dict of TATs decided by the native ``gcra``.

The stand-in for when nothing is shared (one worker, tests, the fallback of
:class:`relay.storage.failover.FailoverStore` until the shared-memory backend takes its place).
Decisions run on the event loop without awaiting anything, so each one is atomic in the worker.
"""

from __future__ import annotations

from collections.abc import Sequence

from relay.native import gcra, monotonic
from relay.storage.limits import CellState, Charge, Decision

# Cells kept at most; past it, the empty ones go first, then the ones closest to empty.
MAX_CELLS = 100_000


class InProcessStore:
    """:class:`relay.storage.limits.LimitStore` in a dict (one process, one event loop)."""

    def __init__(self, *, max_cells: int = MAX_CELLS) -> None:
        self.max_cells = max_cells
        self._tats: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._tats)

    async def take(self, charges: Sequence[Charge], *, now: float | None = None) -> Decision:
        """Charge every one of ``charges`` if all fit, else none (``now``: for tests)."""
        return self.take_now(charges, monotonic() if now is None else now)

    async def adjust(self, charges: Sequence[Charge], *, now: float | None = None) -> None:
        """Give back (negative cost, never below empty) or charge over (positive cost)."""
        self.adjust_now(charges, monotonic() if now is None else now)

    def take_now(self, charges: Sequence[Charge], now: float) -> Decision:
        """:meth:`take` at ``now``, synchronously."""
        tats = self._tats
        new: dict[str, float] = {}
        cells: list[CellState] = []
        allowed, retry_after = True, 0.0
        for charge in charges:
            limit = charge.limit
            tat = new.get(charge.key, tats.get(charge.key, now))
            d = gcra(tat, now, limit.emission_interval, limit.burst, charge.cost)
            if d.allowed:
                if charge.cost > 0:
                    new[charge.key] = d.tat
            else:
                allowed = False
                retry_after = max(retry_after, d.retry_after)
            cells.append(CellState(float(d.remaining), d.reset_after))
        if not allowed:
            # Nothing was charged: each cell reports its state as stored (a peek at cost 0).
            cells = []
            for charge in charges:
                limit = charge.limit
                tat = tats.get(charge.key, now)
                d = gcra(tat, now, limit.emission_interval, limit.burst, 0.0)
                cells.append(CellState(float(d.remaining), d.reset_after))
            return Decision(False, tuple(cells), retry_after)
        if len(tats) + len(new) > self.max_cells:
            self._make_room(now)
        tats.update(new)
        return Decision(True, tuple(cells), 0.0)

    def adjust_now(self, charges: Sequence[Charge], now: float) -> None:
        """:meth:`adjust` at ``now``, synchronously."""
        tats = self._tats
        for charge in charges:
            tat = tats.get(charge.key)
            if tat is None and charge.cost <= 0:
                continue  # an empty cell has nothing to give back
            base = now if tat is None else max(tat, now)
            new_tat = max(base + charge.cost * charge.limit.emission_interval, now)
            if new_tat > now:
                tats[charge.key] = new_tat
            else:
                tats.pop(charge.key, None)

    def _make_room(self, now: float) -> None:
        tats = self._tats
        for key in [k for k, tat in tats.items() if tat <= now]:
            del tats[key]
        excess = len(tats) - (self.max_cells - self.max_cells // 16)
        if excess > 0:
            for key in sorted(tats, key=tats.__getitem__)[:excess]:
                del tats[key]
