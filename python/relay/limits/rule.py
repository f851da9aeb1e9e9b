"""The contract between the limits stage and the rules it enforces.

A rule looks at one exchange (who calls, which model, how much it asks for) and names the
charges that apply: a key's requests per minute, its tenant's tokens per minute, a budget in
USD for the current period. The stage gathers the charges of every rule into one
:meth:`~relay.storage.limits.LimitStore.take` (all or nothing), keeps what it reserved on the
exchange, and after the last byte settles each ``tokens`` and ``spend`` charge against what the
request really used. Rules never touch the store: adding a scope is one more rule listed in
``app.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import Protocol

import msgspec

from relay.exchange import Exchange
from relay.storage.limits import Charge


class Meter(Enum):
    """What a charge counts; it decides how the charge is settled and how a refusal reads."""

    # One per request; never settled.
    REQUESTS = "requests"
    # Reserved: prompt tokens + max_tokens; settled to the real prompt + completion tokens.
    TOKENS = "tokens"
    # Reserved: the reserved tokens at the model's price; settled to the real cost at the
    # price of the deployment that answered. A refusal is ``insufficient_quota``. Its costs
    # count SPEND_UNIT_USD (micro-dollars, see spend_units), not dollars.
    SPEND = "spend"


# What one unit of a SPEND charge is worth. GCRA takes bursts of at least 1, and budgets under
# a dollar are common: a cell that counts micro-dollars holds any budget from $0.000001 up.
SPEND_UNIT_USD = 1e-6


def spend_units(usd: float) -> float:
    """``usd`` as the cost of a SPEND charge (reserving, and settling: real minus reserved)."""
    return usd / SPEND_UNIT_USD


class Ask(msgspec.Struct, frozen=True):
    """What one request asks for, estimated before the upstream call."""

    tokens: int
    spend_usd: float


class Metered(msgspec.Struct, frozen=True):
    """One charge a rule asks for, with what it counts and whom it limits (for the refusal's
    message and the ``x-ratelimit-*`` headers: ``"key"``, ``"tenant"``, ``"caller"``,
    ``"global"``, ``"model"``, ``"deployment"``)."""

    charge: Charge
    meter: Meter
    scope: str
    # Unix seconds when a refused charge can pass again, when that is not the cell's own
    # drain (a budget renews with its next period; infinity: never); 0: as the store says.
    renews_at: float = 0.0
    # What the cell may hold, this charge included, before an alert may be due (a budget's
    # ``budget_alert_ratio``): below it, nothing needs looking at after the settlement.
    # 0: no alert.
    alert_at: float = 0.0


class LimitRule(Protocol):
    """One family of limits (callers, keys and tenants, budgets, models)."""

    def charges(self, ex: Exchange, ask: Ask) -> Sequence[Metered]:
        """The charges that apply to ``ex`` (empty: none of this rule's limits apply)."""
        ...
