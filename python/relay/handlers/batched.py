"""Taps that only record (the ledger, the access line, metrics, telemetry), run a few exchanges
at a time instead of one by one.

Run once per exchange, right after it, these taps cost the server about three times what they
cost run back to back: each finds its code and its state (metrics cells, the writer's queue,
the encoder) gone from the CPU's caches since the last request, and leaves the request path's
own cold for the next one. Measured on a worker relaying 20-event streams one at a time
(benches/README.md, "Taps in batches"): the three defaults together cost about 33 us of the
event loop per stream one by one and 12 us in batches, and the worker's whole CPU
per stream fell by about 40 us.

A batch is run when :data:`BATCH` exchanges wait, synchronously, after the last byte of the
one that filled it (where a client one request at a time is still reading its answer), or
:data:`DELAY_S` after the first one waited, whichever comes first. A batch takes about a
tenth of a millisecond, so no request waits on more than that. Before ``/metrics`` answers
and when the worker stops, what waits is run at once (:meth:`BatchedTaps.run`), so a scrape
counts every request this worker finished and no ledger row is lost.

Only taps that read the exchange and record it belong here: a tap whose effect a later request
may need at once (a stored response for ``previous_response_id``) runs per exchange.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Sequence

from relay.exchange import Exchange
from relay.stage import Tap

log = logging.getLogger("relay")

# Exchanges per batch: the run stays near 0.1 ms (about 12 us an exchange for the defaults),
# short enough to sit in the gap before a client's next request.
BATCH = 8
# The longest an exchange waits for its batch when requests are few.
DELAY_S = 0.05


# Every batcher of this worker: an app a hot reload replaced keeps its own until its last
# requests end, and the worker's stop runs them all (run_all).
_BATCHERS: weakref.WeakSet[BatchedTaps] = weakref.WeakSet()


def tap_failed(tap: Tap, ex: Exchange) -> None:
    """Log a tap that raised (inside ``except``): the request it failed for, its traceback."""
    log.exception("tap %s failed for request %s", type(tap).__name__, ex.request_id)


def run_all() -> None:
    """Run every batcher's waiting exchanges now (the worker is stopping)."""
    for batcher in list(_BATCHERS):
        batcher.run()


class BatchedTaps:
    """Queues finished exchanges and runs ``taps`` over them in batches, each tap over the
    whole batch before the next tap (in the order listed, so a tap still sees what an earlier
    one left on the exchange)."""

    __slots__ = ("__weakref__", "_pending", "_timer", "batch", "delay_s", "taps")

    def __init__(
        self, taps: Sequence[Tap], *, batch: int = BATCH, delay_s: float = DELAY_S
    ) -> None:
        self.taps = tuple(taps)
        self.batch = batch
        self.delay_s = delay_s
        self._pending: list[Exchange] = []
        self._timer: asyncio.TimerHandle | None = None
        _BATCHERS.add(self)

    @property
    def pending(self) -> int:
        """Exchanges waiting for their batch."""
        return len(self._pending)

    def add(self, ex: Exchange) -> None:
        """Queue a finished exchange (on the event loop); runs the batch once it is full."""
        pending = self._pending
        pending.append(ex)
        if len(pending) >= self.batch:
            self.run()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.delay_s, self.run)

    def run(self) -> None:
        """Run every tap over every exchange waiting now (a tap that fails is logged and the
        others still run)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch = self._pending
        if not batch:
            return
        self._pending = []
        for tap in self.taps:
            on_finish = tap.on_finish
            for ex in batch:
                try:
                    on_finish(ex)
                except Exception:
                    tap_failed(tap, ex)
