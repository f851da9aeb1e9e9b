"""The contract of a rate-limit store: GCRA cells, charged all or nothing, settled after.

One decision is one call: every limit that applies to a request (the key's requests per
minute, its tenant's, the tenant's tokens per minute, a deployment's quota) is charged in the
same call, and either every charge fits or none is made. After the answer, what a reservation
did not use is given back, or what went over it is charged, with :meth:`LimitStore.adjust`.

The math is GCRA (the native ``gcra``): a cell holds its theoretical arrival time (TAT); a
limit of ``rate`` per ``period_s`` seconds has an emission interval ``period_s / rate`` and lets
bursts of up to ``burst`` through. Every backend computes exactly the same decisions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import msgspec

# msgspec Structs rather than frozen dataclasses: the same fields, order, defaults, equality,
# hashing and immutability, built in a fifth of the time (a frozen dataclass sets each field
# through object.__setattr__: some 0.4 us per object, more than a whole shared-memory decision).


class Limit(msgspec.Struct, frozen=True):
    """``rate`` per ``period_s`` seconds, in bursts of at most ``burst``."""

    rate: float
    period_s: float
    burst: float

    @property
    def emission_interval(self) -> float:
        """Seconds one unit of cost occupies."""
        return self.period_s / self.rate


class Charge(msgspec.Struct, frozen=True):
    """``cost`` units against the cell ``key`` under ``limit`` (keys are the store's own
    namespace: ``"k:<key id>:rpm"``, ``"t:<tenant id>:tpm"``, ...)."""

    key: str
    limit: Limit
    cost: float = 1.0


class CellState(msgspec.Struct, frozen=True):
    """One cell after a decision: what is left of its burst and when it is full again."""

    remaining: float
    reset_after_s: float


class Decision(msgspec.Struct, frozen=True):
    """All charges made (``allowed``) or none; ``cells`` in the order of the charges;
    ``retry_after_s``: when the charges that were refused would fit (0 when allowed; infinity
    when a charge can never fit: its cost is above its burst)."""

    allowed: bool
    cells: tuple[CellState, ...]
    retry_after_s: float


class LimitStore(Protocol):
    """Where GCRA cells live: shared memory of one host's workers, or Redis for several."""

    async def take(self, charges: Sequence[Charge]) -> Decision:
        """Charge every one of ``charges`` if all fit, else none (one atomic decision)."""
        ...

    async def adjust(self, charges: Sequence[Charge]) -> None:
        """Settle earlier charges: a negative cost gives back what was not used (a cell never
        goes below empty), a positive one charges what went over (a cell may go past its burst:
        later charges wait until it has drained)."""
        ...
