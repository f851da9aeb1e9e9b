"""Cost from prices; local counting when a provider reports no usage."""

from __future__ import annotations

import pytest

from relay.accounting.usage import AccountingTap, cost_usd, count_locally
from relay.config.model import Pricing
from relay.exchange import Deployment, Endpoint, Exchange, Usage
from relay.native import counter_for


def test_cost_splits_cached_prompt_tokens() -> None:
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=500_000, cached_tokens=400_000)
    pricing = Pricing(input=2.5, output=10.0, cached=1.25)
    assert cost_usd(usage, pricing) == pytest.approx(0.6 * 2.5 + 0.4 * 1.25 + 0.5 * 10.0)


def test_cached_price_defaults_to_input() -> None:
    usage = Usage(prompt_tokens=1000, completion_tokens=0, cached_tokens=1000)
    assert cost_usd(usage, Pricing(input=3.0)) == pytest.approx(0.003)


BODY = b'{"model":"m","messages":[{"role":"user","content":"hello world"}]}'


def test_local_count_from_json_body() -> None:
    ex = Exchange("r", Endpoint.CHAT, BODY, {}, model="m")
    ex.completion_parts = ["Hi there,", " friend"]
    usage = count_locally(ex, "o200k_base")
    counter = counter_for("o200k_base")
    assert usage.counted_locally
    assert usage.prompt_tokens == counter.count_chat(BODY)
    assert usage.completion_tokens == counter.count("Hi there, friend")


def test_no_response_means_no_local_count() -> None:
    ex = Exchange("r", Endpoint.CHAT, BODY, {}, model="m")
    ex.deployment = Deployment("p", "m", "m", Pricing(input=1.0))
    AccountingTap().on_finish(ex)
    assert ex.usage is None and ex.cost_usd is None


def test_tap_prefers_reported_usage_and_prices_it() -> None:
    ex = Exchange("r", Endpoint.CHAT, BODY, {}, model="m")
    ex.deployment = Deployment("p", "m", "m", Pricing(input=1.0, output=2.0))
    ex.usage = Usage(prompt_tokens=10, completion_tokens=20)
    ex.completion_parts = ["ignored"]
    AccountingTap().on_finish(ex)
    assert not ex.usage.counted_locally
    assert ex.cost_usd == pytest.approx((10 * 1.0 + 20 * 2.0) / 1e6)


def test_legacy_completion_prompt_list_counts_each() -> None:
    body = b'{"model":"m","prompt":["hello world","hello world"]}'
    ex = Exchange("r", Endpoint.COMPLETIONS, body, {}, model="m")
    ex.completion_parts = ["ok"]
    usage = count_locally(ex, "cl100k_base")
    assert usage.prompt_tokens == 2 * counter_for("cl100k_base").count("hello world")
