"""After each exchange with a budget: alert once a period when the spend crosses the budget's
``budget_alert_ratio``, and empty the cells of periods that are over.

:class:`BudgetWatch` is a :class:`~relay.stage.Settler` listed after the limits stage's own
settler, so it sees the cell as settled: the real cost of this request and the reservations of
those still running (a reservation that crosses the ratio is seen by the request that made it
or any other that ends meanwhile). It peeks at the cells (a charge of 0, one store call for
both budgets, off the client's critical path).

**Once per period and budget.** The first process to see the crossing takes a marker cell
(``<budget cell>:alert``, burst 1, full until the period ends) in the same store: only the
one whose take passes logs the warning and counts it, so an alert is logged once per host in
shared memory and once for every replica sharing a Redis. A worker also remembers the alerts
it saw, to peek no further at the marker.

**Cells of past periods.** A budget cell is full for thousands of years (it must not drain in
its period), so one left behind would hold its slot of the shared-memory table, or its Redis
key, forever. When a period ends, each worker gives back in full the cells of the previous
period it charged (one ``adjust``): the cell is then empty, free to be reused or deleted. A
reservation of the old period settled after that charges its cell again, which only delays the
slot's reuse.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from relay.exchange import Exchange
from relay.limits.budget import Budget, BudgetRule
from relay.limits.rule import Meter, spend_units
from relay.limits.stage import Reservation
from relay.storage.limits import Charge, Limit, LimitStore

log = logging.getLogger("relay.limits")
inf = float("inf")

# A worker remembers at most this many alerts and live cells (far more than budgets in use).
_MAX_REMEMBERED = 65_536


class BudgetWatch:
    """Budget alerts and the clean-up of past periods' cells (see the module's docstring),
    in the limits stage's ``store``."""

    __slots__ = ("_alerted", "_counted", "_live", "_next_end", "_rule", "_store", "alerts")

    def __init__(
        self,
        rule: BudgetRule,
        store: LimitStore,
        counted: Callable[[str], None] | None = None,
    ) -> None:
        self._rule = rule
        self._store = store
        # Told the scope of each alert logged here (the metrics' relay_budget_alerts).
        self._counted = counted
        # Marker keys this worker has seen taken (alerts logged here or elsewhere).
        self._alerted: set[str] = set()
        # Cells this worker charged, by key, with their period's end (Unix seconds).
        self._live: dict[str, tuple[Charge, float]] = {}
        # The earliest end among them: nothing to look for before it.
        self._next_end = float("inf")
        # Alerts this process logged.
        self.alerts = 0

    async def settle(self, ex: Exchange) -> None:
        """Peek at the exchange's budget cells; alert and clean up as the module says."""
        if ex.principal.key_limits is None and ex.principal.tenant_limits is None:
            return
        budgets = self._rule.budgets(ex.principal)
        if not budgets:
            return
        store = self._store
        if self._next_end <= self._rule.now():
            await self._retire(store)
        for budget in budgets:
            if budget.period.end != inf and budget.key not in self._live:
                if len(self._live) >= _MAX_REMEMBERED:
                    self._live.clear()
                self._live[budget.key] = (budget.peek, budget.period.end)
                self._next_end = min(self._next_end, budget.period.end)
        if _far_from_alert(ex):
            return
        decision = await store.take([b.peek for b in budgets])
        for budget, cell in zip(budgets, decision.cells, strict=True):
            spent = budget.spent_usd(cell.reset_after_s)
            if spent > 0.0 and spent >= (budget.limits.budget_usd or 0.0) * budget.ratio:
                await self._alert(store, ex, budget, spent)

    async def _alert(self, store: LimitStore, ex: Exchange, budget: Budget, spent: float) -> None:
        marker = budget.key + ":alert"
        if marker in self._alerted:
            return
        if len(self._alerted) >= _MAX_REMEMBERED:
            self._alerted.clear()
        self._alerted.add(marker)
        if not (await store.take([alert_marker(marker, budget, self._rule.now())])).allowed:
            return  # another worker or replica logged it
        self.alerts += 1
        if self._counted is not None:
            self._counted(budget.scope)
        principal = ex.principal
        who = (
            f"key {principal.key_prefix or budget.owner} ({budget.owner})"
            if budget.scope == "key"
            else f"tenant {principal.organization}/{principal.tenant} ({budget.owner})"
        )
        amount = budget.limits.budget_usd or 0.0
        log.warning(
            "budget alert: %s has spent $%.6f of its budget of $%.6f for %s (%.0f%%; "
            "budget_alert_ratio %g)",
            who,
            spent,
            amount,
            "all time" if budget.period.label == "total" else budget.period.label,
            100 * spent / amount if amount else 100.0,
            budget.ratio,
            extra={
                "relay": {
                    "budget": {
                        "scope": budget.scope,
                        "id": budget.owner,
                        "period": budget.period.label,
                        "spent_usd": round(spent, 9),
                        "budget_usd": amount,
                        "alert_ratio": budget.ratio,
                    }
                }
            },
        )

    async def _retire(self, store: LimitStore) -> None:
        """Give back in full the cells this worker charged whose period has ended."""
        now = self._rule.now()
        over = [key for key, (_, end) in self._live.items() if end <= now]
        self._next_end = min((end for _, end in self._live.values() if end > now), default=inf)
        charges = []
        for key in over:
            charge, _ = self._live.pop(key)
            # More than any cell can hold (a budget and a hundred overruns of it).
            charges.append(Charge(key, charge.limit, -1000.0 * charge.limit.rate))
            self._alerted.discard(key + ":alert")
        await store.adjust(charges)


def alert_marker(key: str, budget: Budget, now: float) -> Charge:
    """The marker cell of ``budget``'s alert: one take passes, and it is empty again when the
    period ends (``total``: never)."""
    left = budget.period.end - now
    hold = min(max(left, 1.0), 1e12)
    return Charge(key, Limit(1.0, hold, 1.0), 1.0)


def _far_from_alert(ex: Exchange) -> bool:
    """Nothing to look at: with its reservation the request left every budget below its
    alert by more than the settlement added (its real cost over what it reserved). A request
    that reserved nothing is looked at. Requests settling at once may each stay under while
    together they cross: the next request's reservation then sees the crossing, so an alert
    comes at most one request late, never not at all."""
    reservation = ex.limits
    if not isinstance(reservation, Reservation):
        return False
    reserved = [m.charge.cost for m in reservation.charges if m.meter is Meter.SPEND]
    if not reserved:
        return False
    over = spend_units(ex.cost_usd or 0.0) - max(reserved)
    return over < reservation.alert_headroom
