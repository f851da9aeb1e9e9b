"""Budgets in USD of keys and tenants, per calendar period: :class:`BudgetRule`.

A key's ``budget_usd`` and its tenant's both apply; each is one ``spend`` charge (reserved at
the model's price, settled to the real cost by the limits stage) against the cell of the
current period, calendar-aligned in UTC: ``k:<key id>:usd:2026-12-03`` (``budget_period:
day``), ``t:<tenant id>:usd:2026-12`` (``month``, the default) or ``...:usd:total`` (never
renewed). A new period is a new cell, so it starts empty.

A budget is a GCRA cell that does not drain within its period. Costs count micro-dollars
(:data:`~relay.limits.rule.SPEND_UNIT_USD`: a burst must be at least 1, so a dollar-valued
cell could not hold a budget under $1); the burst is the budget, and the emission interval is
long enough that a full budget would take :data:`HORIZON_S` (some 31,700 years) to drain. What
drains in the meantime, ``elapsed / interval`` units since the period began, is taken off the
burst of every charge (as of the current minute: :data:`STEP_S`), so a cell admits no more
than its budget, however long the period, but for one minute's drain (6e-11 of the budget;
``total`` counts from relay's epoch, 2026-12-01). It may admit a little less: what drains
between the period's start and the cell's first charge (after a restart: the rebuild), at
most ``period / HORIZON_S`` of the budget (2.7e-6 in a month, 3.2e-5 a year of ``total``:
$0.0027 of $1,000 a month). The float ranges, checked against
rust/src/gcra.rs: TATs stay within ``now + HORIZON_S`` (times a budget's overrun), where a
double rounds a charge to about ``1e-16`` of the budget (a $0.000002 cost is kept to 0.01% in
a budget of $1,000,000); GCRA's rounding allowance is about ``2e-12`` of the budget; and the
time a cell holds (Redis' ``PX`` in milliseconds must stay under 1e17) leaves room for
overruns of 100 budgets.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import msgspec

from relay.exchange import Exchange, Limits, Principal
from relay.limits.rule import SPEND_UNIT_USD, Ask, Meter, Metered, spend_units
from relay.storage.limits import Charge, Limit

# Seconds a full budget would take to drain: far beyond any period, and small enough that a
# cell's time stays in the range Redis expires keys in (see the module's docstring).
HORIZON_S = 1e12
# Relay's epoch (2026-12-01T00:00:00Z, as relay.storage.redis): where ``total`` periods begin.
EPOCH_S = 1_796_083_200.0
PERIODS = ("day", "month", "total")

# alert_at's margin (see BudgetRule.charges).
_ALERT_MARGIN = 1 - 1e-5


class Period(msgspec.Struct, frozen=True):
    """One budget period: its label in cell keys and its bounds (Unix seconds, UTC)."""

    label: str
    start: float
    end: float


TOTAL = Period("total", EPOCH_S, float("inf"))


def period_of(kind: str, now: float) -> Period:
    """The ``day``, ``month`` or ``total`` period that holds ``now`` (Unix seconds)."""
    if kind == "total":
        return TOTAL
    moment = datetime.fromtimestamp(now, UTC)
    if kind == "day":
        start = datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
        return Period(
            start.strftime("%Y-%m-%d"), start.timestamp(), (start + timedelta(days=1)).timestamp()
        )
    if kind != "month":
        raise ValueError(f"budget_period: expected one of {', '.join(PERIODS)}, got {kind!r}")
    start = datetime(moment.year, moment.month, 1, tzinfo=UTC)
    after = datetime(moment.year + moment.month // 12, moment.month % 12 + 1, 1, tzinfo=UTC)
    return Period(start.strftime("%Y-%m"), start.timestamp(), after.timestamp())


# A budget's limit is made once per owner and minute, not per request: its drain compensation
# is that of the minute's start (the drain of one minute, 6e-11 of the budget, goes uncounted).
STEP_S = 60.0


def budget_limit(budget_usd: float, period: Period, now: float) -> Limit:
    """The limit of a budget of ``budget_usd`` at ``now`` (Unix seconds) in ``period``.

    The burst loses what the cell has drained since the period began, so the cell never
    admits more than the budget. A cell holds at least $0.000001 (a GCRA burst is at least
    1): a budget of 0 admits that much, a fraction of one token.
    """
    rate = max(spend_units(budget_usd), 1.0)
    drained = max(now - period.start, 0.0) * rate / HORIZON_S
    return Limit(rate, HORIZON_S, max(rate - drained, 1.0))


def budget_charge(key: str, budget_usd: float, period: Period, now: float, usd: float) -> Charge:
    """The charge of ``usd`` against the cell ``key`` of a budget of ``budget_usd``."""
    return Charge(key, budget_limit(budget_usd, period, now), spend_units(usd))


class Budget(msgspec.Struct, frozen=True):
    """One budget of a key or a tenant in its current period, until ``until``: its cell and
    limit, and a charge of 0 to look at the cell (``peek``)."""

    scope: str  # "key" or "tenant"
    owner: str  # the key's or tenant's id
    limits: Limits
    period: Period
    key: str
    limit: Limit
    until: float
    peek: Charge

    @property
    def ratio(self) -> float:
        """The share of the budget whose crossing is alerted (``budget_alert_ratio``)."""
        return self.limits.budget_alert_ratio

    def charge(self, usd: float) -> Charge:
        """A charge of ``usd`` against the budget's cell."""
        return Charge(self.key, self.limit, spend_units(usd))

    def spent_usd(self, reset_after_s: float) -> float:
        """What the cell holds, from its ``reset_after_s`` (seconds until it is empty)."""
        return reset_after_s / self.limit.emission_interval * SPEND_UNIT_USD


def cell_key(scope: str, owner: str, period: Period) -> str:
    """``k:<key id>:usd:<period>`` or ``t:<tenant id>:usd:<period>``."""
    return f"{'k' if scope == 'key' else 't'}:{owner}:usd:{period.label}"


class Periods:
    """The current period of each kind, worked out again only when the clock leaves it."""

    __slots__ = ("_current",)

    def __init__(self) -> None:
        self._current: dict[str, Period] = {}

    def of(self, kind: str, now: float) -> Period:
        """The period of ``kind`` holding ``now``."""
        period = self._current.get(kind)
        if period is None or not period.start <= now < period.end:
            period = self._current[kind] = period_of(kind, now)
        return period


# Budgets a rule keeps made (far more than are in use at once; beyond, it starts again).
_MAX_BUDGETS = 65_536


class BudgetRule:
    """A :class:`~relay.limits.rule.LimitRule`: one ``spend`` charge for the key's budget and
    one for its tenant's, both applying. ``clock`` (Unix seconds) is for tests."""

    __slots__ = ("_budgets", "_clock", "_periods")

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._periods = Periods()
        self._budgets: dict[tuple[str, str], Budget] = {}

    def now(self) -> float:
        """The rule's clock (Unix seconds)."""
        return self._clock()

    def budgets(self, principal: Principal) -> list[Budget]:
        """The budgets that apply to ``principal``: its key's, then its tenant's."""
        found: list[Budget] = []
        key, tenant = principal.key_limits, principal.tenant_limits
        key_id, tenant_id = principal.key_id, principal.tenant_id
        if key is not None and (key.budget_usd is None or key_id is None):
            key = None
        if tenant is not None and (tenant.budget_usd is None or not tenant_id):
            tenant = None
        if key is None and tenant is None:
            return found
        now = self._clock()
        if key is not None and key_id is not None:
            found.append(self._budget("key", key_id, key, now))
        if tenant is not None and tenant_id is not None:
            found.append(self._budget("tenant", tenant_id, tenant, now))
        return found

    def _budget(self, scope: str, owner: str, limits: Limits, now: float) -> Budget:
        made = self._budgets.get((scope, owner))
        if (
            made is not None
            and made.period.start <= now < made.until
            and (made.limits is limits or made.limits == limits)
        ):
            return made
        period = self._periods.of(limits.budget_period, now)
        step = now // STEP_S * STEP_S
        until = min(step + STEP_S, period.end)
        key = cell_key(scope, owner, period)
        limit = budget_limit(limits.budget_usd or 0.0, period, step)
        made = Budget(scope, owner, limits, period, key, limit, until, Charge(key, limit, 0.0))
        if len(self._budgets) >= _MAX_BUDGETS:
            self._budgets.clear()
        self._budgets[scope, owner] = made
        return made

    def charges(self, ex: Exchange, ask: Ask) -> Sequence[Metered]:
        """The key's and the tenant's budget, charged the request's estimated spend."""
        principal = ex.principal
        key, tenant = principal.key_limits, principal.tenant_limits
        if (key is None or key.budget_usd is None) and (
            tenant is None or tenant.budget_usd is None
        ):
            return ()
        cost = spend_units(ask.spend_usd)
        return [
            Metered(
                Charge(b.key, b.limit, cost),
                Meter.SPEND,
                b.scope,
                b.period.end,
                # A hair early: the cell's slow drain makes what it holds a little less
                # than what was spent.
                b.limit.burst * b.ratio * _ALERT_MARGIN,
            )
            for b in self.budgets(principal)
        ]
