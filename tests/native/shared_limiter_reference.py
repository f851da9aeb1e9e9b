"""An obviously correct model of the shared limit table, to test it against: GCRA written out
as rust/src/gcra.rs states it (the same float operations in the same order, so results are
equal bit for bit), cells in a dict, a take decided on a copy and kept only if every charge
fits, adjustments that give back (never below empty) or charge over."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

# (allowed, new tat, retry_after, reset_after, remaining)
Step = tuple[bool, float, float, float, int]
# (key, rate, period, burst, cost)
Charge = tuple[str, float, float, float, float]


def gcra(tat: float, now: float, interval: float, burst: float, cost: float) -> Step:
    """One GCRA step (see the table in rust/src/gcra.rs)."""
    tau = interval * burst
    increment = cost * interval
    eps = 1e-9 + 1e-12 * (abs(now) + abs(tat) + tau)
    ahead = max(tat - now, 0.0)
    new_tat = max(tat, now) + increment

    def remaining(ahead_after: float) -> int:
        units = math.floor((tau - ahead_after + eps) / interval)
        return units if units > 0 else 0

    if increment > tau + eps:
        return False, tat, math.inf, ahead, remaining(ahead)
    wait = ahead + increment - tau
    if wait > eps:
        return False, tat, wait, ahead, remaining(ahead)
    return True, new_tat, 0.0, max(new_tat - now, 0.0), remaining(ahead + increment)


@dataclass
class Cells:
    """Cells by key; each method answers like ``SharedLimitTable``'s."""

    tats: dict[str, float] = field(default_factory=dict)

    def take(
        self, charges: list[Charge], now: float
    ) -> tuple[bool, float, list[tuple[float, float]]]:
        tentative: dict[str, float] = {}
        allowed, retry_after, cells = True, 0.0, []
        for key, rate, period, burst, cost in charges:
            tat = tentative.get(key, self.tats.get(key, now))
            ok, new_tat, retry, reset, remaining = gcra(tat, now, period / rate, burst, cost)
            if not ok:
                allowed, retry_after = False, max(retry_after, retry)
            elif cost > 0:
                tentative[key] = new_tat
            cells.append((float(remaining), reset))
        if not allowed:
            # Nothing charged: every cell as it is (a peek).
            cells = []
            for key, rate, period, burst, _ in charges:
                step = gcra(self.tats.get(key, now), now, period / rate, burst, 0.0)
                cells.append((float(step[4]), step[3]))
            return False, retry_after, cells
        self.tats.update(tentative)
        return True, 0.0, cells

    def adjust(self, charges: list[Charge], now: float) -> None:
        for key, rate, period, _, cost in charges:
            interval = period / rate
            tat = self.tats.get(key)
            if cost > 0:
                self.tats[key] = (now if tat is None else max(tat, now)) + cost * interval
            elif cost < 0 and tat is not None and tat > now:
                self.tats[key] = max(tat - -cost * interval, now)
