"""The limits stage and its settler: one decision before the upstream call, one settlement
after the last byte.

:class:`LimitsStage` (after auth, before routing) asks every rule which charges apply, makes
them in one :meth:`~relay.storage.limits.LimitStore.take` (all or nothing), puts the tightest
limits' ``x-ratelimit-*`` on the reply and keeps the tokens and spend it reserved on
``Exchange.limits``; a refusal is a :class:`~relay.errors.RateLimited` (429, ``retry-after``)
that each dialect renders. :class:`LimitsSettler` settles the reservation once the exchange is
over: tokens to the prompt and completion tokens of the attempt that answered (what a cut or
abandoned stream relayed), spend to the cost at the answering deployment's price; a request
that got no answer gives everything back.

Rules are asked once, with a nominal ask: the prompt is counted only when a tokens or spend
charge applies (so a request limited by requests alone costs no count), and those charges then
cost the real ask's tokens or spend, as :class:`~relay.limits.rule.Meter` defines them.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence

from relay.errors import RateLimited
from relay.exchange import Exchange
from relay.limits.ask import Asks
from relay.limits.headers import ratelimit_headers
from relay.limits.rule import SPEND_UNIT_USD, Ask, LimitRule, Meter, Metered, spend_units
from relay.native import LimitTableFull
from relay.stage import Reply
from relay.storage.limits import Charge, Decision, LimitStore

log = logging.getLogger("relay.limits")

# Asked first: a rule's charges are all there is to know whether the prompt must be counted.
_PROBE = Ask(1, 1e-9)
_REQUESTS = Meter.REQUESTS
# A full table is logged at most once per this many seconds.
_FULL_LOG_S = 60.0


class Reservation:
    """What a request reserved: its tokens and spend charges, settled once."""

    __slots__ = ("alert_headroom", "charges", "settled")

    def __init__(self, charges: tuple[Metered, ...], alert_headroom: float = math.inf) -> None:
        self.charges = charges
        # How far, with this reservation, the nearest cell is below its alert
        # (Metered.alert_at), in the cell's units; 0 or less: at or past it.
        self.alert_headroom = alert_headroom
        self.settled = False


class LimitsStage:
    """Charge every limit that applies, all or nothing (see the module docstring)."""

    __slots__ = ("_full_logged", "asks", "on_refused", "rules", "store")

    def __init__(
        self,
        rules: Sequence[LimitRule],
        store: LimitStore,
        asks: Asks,
        on_refused: Callable[[str, str], None] | None = None,
    ) -> None:
        self.rules = tuple(rules)
        self.store = store
        self.asks = asks
        # Told (meter, scope) of every refusal: the metrics' ``limit_refused``.
        self.on_refused = on_refused
        self._full_logged = 0.0

    async def __call__(self, ex: Exchange) -> Reply | None:
        metered: list[Metered] = []
        metered_only_requests = True
        for rule in self.rules:
            for m in rule.charges(ex, _PROBE):
                metered.append(m)
                if m.meter is not _REQUESTS:
                    metered_only_requests = False
        if not metered:
            return None
        ask = _PROBE
        if not metered_only_requests:
            # Counted only now that a charge needs it; a tokens charge costs the ask's tokens
            # and a spend charge its spend (rule.Meter), so the probe's charges are re-costed
            # rather than asked for again.
            ask = await self.asks.of(ex)
            metered = [_costed(m, ask) for m in metered]
        taken = metered
        if not metered_only_requests:
            # A request that asks for no tokens (a pass-through route, count_tokens) is not
            # refused for tokens; what it turns out to use is still charged when it settles.
            taken = [m for m in metered if m.charge.cost or m.meter is _REQUESTS]
            if not taken:
                ex.limits = Reservation(tuple(metered))
                return None
        try:
            decision = await self.store.take([m.charge for m in taken])
        except LimitTableFull:
            self._table_full()
            return None
        headers = ratelimit_headers(taken, decision.cells)
        if headers:
            ex.reply_headers.extend(headers)
            ex.own_ratelimit = True
        if not decision.allowed:
            refused, err = refusal(taken, decision, ask)
            if self.on_refused is not None:
                self.on_refused(refused.meter.value, refused.scope)
            raise err
        if not metered_only_requests:
            headroom = min(
                (
                    m.alert_at - (m.charge.limit.burst - cell.remaining)
                    for m, cell in zip(taken, decision.cells, strict=True)
                    if m.alert_at
                ),
                default=math.inf,
            )
            reserved = tuple(m for m in metered if m.meter is not _REQUESTS)
            ex.limits = Reservation(reserved, headroom)
        return None

    def _table_full(self) -> None:
        # Nothing was charged: the request passes (a limit that cannot be kept must not stop
        # every caller), loudly. The table is sized so that this does not happen.
        now = time.monotonic()
        if now - self._full_logged >= _FULL_LOG_S:
            self._full_logged = now
            log.error("the limits' table is full: requests pass without their limits")


def _costed(m: Metered, ask: Ask) -> Metered:
    meter = m.meter
    if meter is _REQUESTS:
        return m
    charge = m.charge
    cost = ask.tokens if meter is Meter.TOKENS else spend_units(ask.spend_usd)
    return Metered(Charge(charge.key, charge.limit, cost), meter, m.scope, m.renews_at, m.alert_at)


class LimitsSettler:
    """Settle what :class:`LimitsStage` reserved, once, after the last byte."""

    __slots__ = ("store",)

    def __init__(self, store: LimitStore) -> None:
        self.store = store

    async def settle(self, ex: Exchange) -> None:
        """Tokens to the real prompt + completion, spend to the real cost (0 with no answer)."""
        reservation = ex.limits
        if reservation is None or reservation.settled:
            return
        reservation.settled = True  # once, however often this is called (kept for the watch)
        usage = ex.usage
        tokens = usage.prompt_tokens + usage.completion_tokens if usage is not None else 0
        spend = ex.cost_usd or 0.0
        adjust: list[Charge] = []
        for m in reservation.charges:
            charge = m.charge
            real = tokens if m.meter is Meter.TOKENS else spend_units(spend)
            if real != charge.cost:
                adjust.append(Charge(charge.key, charge.limit, real - charge.cost))
        if adjust:
            await self.store.adjust(adjust)


_UNITS = {Meter.REQUESTS: "requests", Meter.TOKENS: "tokens"}
_SCOPES = {
    "key": "this key",
    "tenant": "this tenant",
    "caller": "this caller",
    "global": "the gateway",
    "model": "this model",
    "deployment": "this model's deployments",
}


def refusal(
    metered: Sequence[Metered], decision: Decision, ask: Ask
) -> tuple[Metered, RateLimited]:
    """The charge that refused (the one reported) and the 429 for a refused decision: which
    limit, and when to retry (never-fitting asks say so, and what to lower)."""
    refused = [
        m
        for m, cell in zip(metered, decision.cells, strict=True)
        if m.charge.cost > cell.remaining + 1e-9 or m.charge.cost > m.charge.limit.burst
    ] or list(metered)
    # A spent budget first (it will not come back within a minute), then tokens, requests.
    refused.sort(key=lambda m: (m.meter is not Meter.SPEND, m.meter is not Meter.TOKENS))
    first = refused[0]
    limit = first.charge.limit
    who = _SCOPES.get(first.scope, f"this {first.scope}")
    never = math.isinf(decision.retry_after_s)
    if first.meter is Meter.SPEND:
        return first, _spent(first, who, decision.retry_after_s, ask)
    wait = limit.period_s if never else decision.retry_after_s
    retry = max(1, math.ceil(wait - 1e-9))
    headers = (("retry-after", str(retry)),)
    unit = _UNITS[first.meter]
    rate = _rate(limit.rate, limit.period_s, limit.burst, unit)
    if never:
        message = (
            f"this request asks for {ask.tokens} tokens (its prompt and max_tokens, or "
            f"limits.default_max_tokens), more than {who}'s limit of {rate} allows at once "
            f"({_whole(limit.burst)} {unit}); lower max_tokens"
        )
    else:
        message = f"rate limit reached: {who} may make {rate}; retry in {retry}s"
    return first, RateLimited(message, kind=unit, code="rate_limit_exceeded", headers=headers)


# A budget that never renews (``budget_period: total``) still answers a retry-after.
_NO_RENEWAL_RETRY_S = 86_400


def _spent(first: Metered, who: str, retry_after_s: float, ask: Ask) -> RateLimited:
    """The 429 ``insufficient_quota`` of a spent budget: it renews with its next period
    (``renews_at``; when 0, as the store says)."""
    budget = first.charge.limit.rate * SPEND_UNIT_USD  # SPEND cells count micro-dollars
    never = math.isinf(retry_after_s)
    renews_in = first.renews_at - time.time() if first.renews_at else retry_after_s
    if never:
        retry = max(1, math.ceil(min(renews_in, _NO_RENEWAL_RETRY_S)))
        message = (
            f"this request's estimated cost (${ask.spend_usd:.6f}) is more than {who}'s "
            f"whole budget (${budget:.6g}); lower max_tokens"
        )
    elif math.isinf(renews_in):
        retry = _NO_RENEWAL_RETRY_S
        message = f"{who}'s budget (${budget:.6g}, budget_period total) is spent"
    else:
        retry = max(1, math.ceil(renews_in - 1e-9))
        message = f"{who}'s budget (${budget:.6g}) is spent; it renews in {retry}s"
    return RateLimited(
        message,
        kind="insufficient_quota",
        code="insufficient_quota",
        headers=(("retry-after", str(retry)),),
    )


def _rate(rate: float, period_s: float, burst: float, unit: str) -> str:
    if period_s == 60.0:
        text = f"{_whole(rate)} {unit} per minute"
    elif period_s == 1.0:
        text = f"{rate:g} {unit} per second"
    else:
        text = f"{rate:g} {unit} per {period_s:g}s"
    return text if burst == rate else f"{text} in bursts of {_whole(burst)}"


def _whole(value: float) -> str:
    return f"{value:g}" if value != int(value) else str(int(value))
