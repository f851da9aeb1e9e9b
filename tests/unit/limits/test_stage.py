"""The limits stage and settler on a private store: one decision for every rule, the ask
counted only when tokens or spend are charged, refusals in OpenAI's terms, settlement once."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence

import pytest

from relay.accounting.usage import count_locally
from relay.config import parse_config
from relay.dialects import OPENAI_DIALECTS
from relay.errors import RateLimited
from relay.exchange import Exchange, Limits, Principal, Usage
from relay.limits.ask import Asks
from relay.limits.backend import private_store
from relay.limits.rule import Ask, Meter, Metered, spend_units
from relay.limits.rules import CallerRule, PrincipalRule
from relay.limits.stage import LimitsSettler, LimitsStage, Reservation
from relay.storage.limits import Charge, Limit

CONFIG = parse_config(
    "providers: {e: {kind: echo}}\n"
    "models: {m: {provider: e, pricing: {input: 1000000, output: 2000000}}}\n",
    "t",
)
BODY = b'{"model":"m","messages":[{"role":"user","content":"hello there"}],"max_tokens":10}'


def exchange(body: bytes = BODY, principal: Principal | None = None) -> Exchange:
    chat = OPENAI_DIALECTS[0]
    ex = Exchange("r", chat.endpoint, body, {}, dialect=chat, client="127.0.0.1:1")
    chat.parse(ex)
    if principal is not None:
        ex.principal = principal
    return ex


class Budget:
    """A spend rule like the budgets' (micro-dollars per month: rule.spend_units)."""

    def __init__(self, usd: float) -> None:
        self.limit = Limit(spend_units(usd), 30 * 86400.0, spend_units(usd))
        self.asks: list[Ask] = []

    def charges(self, ex: Exchange, ask: Ask) -> Sequence[Metered]:
        self.asks.append(ask)
        cost = spend_units(ask.spend_usd)
        return (Metered(Charge("b:t", self.limit, cost), Meter.SPEND, "tenant"),)


def tenant(tpm: int) -> Principal:
    return Principal(tenant_id="ten", tenant_limits=Limits(tokens_per_minute=tpm))


def test_the_prompt_is_counted_only_for_tokens_and_spend() -> None:
    asks = Asks(CONFIG)
    counted: list[Exchange] = []
    original = asks.of

    async def of(ex: Exchange) -> Ask:
        counted.append(ex)
        return await original(ex)

    asks.of = of  # type: ignore[method-assign]
    store = private_store()
    stage = LimitsStage([CallerRule(100, 100)], store, asks)
    ex = exchange()
    assert asyncio.run(stage(ex)) is None
    assert counted == [] and ex.limits is None and ex.own_ratelimit
    budget = Budget(100.0)
    stage = LimitsStage([CallerRule(100, 100), budget], store, asks)
    ex = exchange()
    asyncio.run(stage(ex))
    assert counted == [ex]
    assert isinstance(ex.limits, Reservation)
    [reserved] = ex.limits.charges
    assert reserved.meter is Meter.SPEND
    # "hello there" and the chat framing (the accountant's count), plus max_tokens; at $1 and
    # $2 per token.
    prompt = count_locally(ex, "o200k_base", "").prompt_tokens
    assert prompt > 3 and reserved.charge.cost == spend_units(prompt * 1.0 + 10 * 2.0)


def test_a_refusal_names_the_meter_and_when_to_retry() -> None:
    store = private_store()
    stage = LimitsStage([CallerRule(0.5, 1)], store, Asks(CONFIG))
    asyncio.run(stage(exchange()))
    with pytest.raises(RateLimited) as caught:
        asyncio.run(stage(exchange()))
    err = caught.value
    assert (err.status, err.type, err.code) == (429, "requests", "rate_limit_exceeded")
    assert dict(err.headers)["retry-after"] == "2"
    assert "this caller may make 0.5 requests per second in bursts of 1" in err.message


def test_a_reservation_above_the_capacity_says_so() -> None:
    stage = LimitsStage([PrincipalRule()], private_store(), Asks(CONFIG))
    with pytest.raises(RateLimited) as caught:
        asyncio.run(stage(exchange(principal=tenant(15))))
    err = caught.value
    assert (err.type, dict(err.headers)["retry-after"]) == ("tokens", "60")
    assert "more than this tenant's limit of 15 tokens per minute allows" in err.message
    assert "lower max_tokens" in err.message


def test_a_spent_budget_is_insufficient_quota() -> None:
    stage = LimitsStage([Budget(50.0)], private_store(), Asks(CONFIG))
    asyncio.run(stage(exchange()))  # about $30 of the $50
    with pytest.raises(RateLimited) as caught:
        asyncio.run(stage(exchange()))
    assert (caught.value.type, caught.value.code) == ("insufficient_quota", "insufficient_quota")
    # No renewal date from the rule: the store's wait (a month's cell, drained in 30 days).
    assert "this tenant's budget ($50) is spent; it renews in" in caught.value.message
    assert int(dict(caught.value.headers)["retry-after"]) > 3600


def test_settlement_moves_the_reservation_to_the_real_usage_once() -> None:
    store = private_store()
    stage = LimitsStage([PrincipalRule(), Budget(1e6)], store, Asks(CONFIG))
    settler = LimitsSettler(store)
    ex = exchange(principal=tenant(1000))
    asyncio.run(stage(ex))
    reservation = ex.limits
    assert isinstance(reservation, Reservation)
    reserved = {m.meter: m.charge.cost for m in reservation.charges}
    tat = store.table.tat("t:ten:tpm")
    assert tat is not None
    ex.usage = Usage(prompt_tokens=9, completion_tokens=3)
    ex.cost_usd = 15.0
    asyncio.run(settler.settle(ex))
    assert ex.limits is reservation and reservation.settled
    interval = 60.0 / 1000
    settled = store.table.tat("t:ten:tpm")
    assert settled is not None
    assert math.isclose(tat - settled, (reserved[Meter.TOKENS] - 12) * interval, rel_tol=1e-9)
    budget_tat = store.table.tat("b:t")
    assert budget_tat is not None
    asyncio.run(settler.settle(ex))  # a second call settles nothing
    assert store.table.tat("t:ten:tpm") == settled and store.table.tat("b:t") == budget_tat


def test_no_answer_gives_everything_back() -> None:
    store = private_store()
    stage = LimitsStage([PrincipalRule()], store, Asks(CONFIG))
    ex = exchange(principal=tenant(1000))
    asyncio.run(stage(ex))
    asyncio.run(LimitsSettler(store).settle(ex))
    answer = asyncio.run(store.take([Charge("t:ten:tpm", Limit(1000, 60.0, 1000), 0.0)]))
    assert answer.cells[0].remaining == pytest.approx(1000, abs=1e-6)
