"""Load balancing: which of a model's targets a request tries first.

Each deployment has a :class:`Slot` (its breaker, its retry budget, calls in flight, and an
EWMA of its time to first byte). A model's possible orders are built at start-up, one per first target (the
others follow in configured order), so choosing costs one pick and no allocation:

* ``weighted``: the first target at random in proportion to the weights;
* ``least_inflight``: the target with the fewest calls in flight (ties rotate);
* ``lowest_latency``: the target with the lowest recent time to first byte; targets not yet
  measured come first, and one request in ``EXPLORE`` is weighted, so that every target
  keeps being measured.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate

from relay.exchange import Deployment
from relay.routing.breaker import Breaker
from relay.routing.budget import RetryBudget

EXPLORE = 0.05
# Weight of the newest sample in the time-to-first-byte average.
EWMA_ALPHA = 0.3


class Slot:
    """The live state of one deployment in this worker."""

    __slots__ = ("breaker", "budget", "inflight", "key", "ttfb_s")

    def __init__(self, key: str, breaker: Breaker, budget: RetryBudget) -> None:
        # provider/upstream model (or the provider alone, for names sent on as they are).
        self.key = key
        self.breaker = breaker
        self.budget = budget
        self.inflight = 0
        # None until the first success is measured.
        self.ttfb_s: float | None = None

    def observe_ttfb(self, seconds: float) -> None:
        """Fold one measured time to first byte into the average."""
        ttfb = self.ttfb_s
        self.ttfb_s = seconds if ttfb is None else ttfb + EWMA_ALPHA * (seconds - ttfb)


class Balancer:
    """Chooses the order of one model's targets for each request."""

    __slots__ = ("_cumulative", "_next", "_total", "orders", "slots", "strategy")

    def __init__(
        self,
        deployments: Sequence[Deployment],
        weights: Sequence[float],
        slots: Sequence[Slot],
        strategy: str,
    ) -> None:
        n = len(deployments)
        # orders[i]: target i first, then the others in configured order.
        self.orders: tuple[tuple[Deployment, ...], ...] = tuple(
            (deployments[i], *deployments[:i], *deployments[i + 1 :]) for i in range(n)
        )
        self.slots = tuple(slots)
        self.strategy = strategy if n > 1 else "single"
        self._cumulative = list(accumulate(max(w, 0.0) for w in weights))
        self._total = self._cumulative[-1] if self._cumulative else 0.0
        self._next = 0

    def order(self, rand: float | None = None) -> tuple[Deployment, ...]:
        """The targets in the order to try them for one request."""
        strategy = self.strategy
        if strategy == "single":
            return self.orders[0]
        if strategy == "least_inflight":
            return self.orders[self._least_inflight()]
        if strategy == "lowest_latency":
            r = random.random() if rand is None else rand
            if r >= EXPLORE:
                return self.orders[self._lowest_latency()]
            rand = r / EXPLORE
        return self.orders[self._weighted(random.random() if rand is None else rand)]

    def _weighted(self, r: float) -> int:
        return min(bisect_right(self._cumulative, r * self._total), len(self.orders) - 1)

    def _least_inflight(self) -> int:
        slots, n = self.slots, len(self.slots)
        start = self._next = (self._next + 1) % n
        best, best_load = start, slots[start].inflight
        for step in range(1, n):
            i = (start + step) % n
            load = slots[i].inflight
            if load < best_load:
                best, best_load = i, load
        return best

    def _lowest_latency(self) -> int:
        best, best_ttfb = 0, float("inf")
        for i, slot in enumerate(self.slots):
            ttfb = slot.ttfb_s
            if ttfb is None:
                return i
            if ttfb < best_ttfb:
                best, best_ttfb = i, ttfb
        return best
