"""Routing public model names to deployments."""

from __future__ import annotations

import asyncio

import pytest

from relay.config import parse_config
from relay.errors import ModelNotFound
from relay.exchange import Endpoint, Exchange
from relay.routing.router import Router

CONFIG = """
providers: {a: {kind: echo}, b: {kind: openai, base_url: "http://b/v1"}}
models:
  pub: {targets: [{provider: b, model: upstream-name}], pricing: {input: 1}}
  gpt-4: {provider: a}
"""


def route(router: Router, model: str) -> Exchange:
    ex = Exchange("r", Endpoint.CHAT, b"", {}, model=model)
    asyncio.run(router(ex))
    return ex


def test_model_to_first_target_with_prices_and_encoding() -> None:
    router = Router(parse_config(CONFIG, "t", {}))
    deployment = route(router, "pub").deployment
    assert deployment is not None
    assert (deployment.provider, deployment.upstream_model) == ("b", "upstream-name")
    assert deployment.pricing.input == 1
    assert route(router, "gpt-4").deployment.encoding == "cl100k_base"  # type: ignore[union-attr]


def test_unknown_model_is_404_listing_known_models() -> None:
    router = Router(parse_config(CONFIG, "t", {}))
    with pytest.raises(ModelNotFound) as info:
        route(router, "gpt-9")
    assert info.value.status == 404
    assert "gpt-9" in info.value.message and "gpt-4, pub" in info.value.message


def test_default_provider_takes_unlisted_models() -> None:
    router = Router(parse_config(CONFIG + "default_provider: b\n", "t", {}))
    deployment = route(router, "anything").deployment
    assert deployment is not None and deployment.provider == "b"
    assert deployment.upstream_model == "anything" and deployment.pricing.input == 0


def test_a_reloaded_router_keeps_breakers_and_averages_by_deployment_name() -> None:
    """A hot reload builds a new router on the old one's breakers and slots: an open breaker
    stays open, a latency average and calls in flight stay, new settings apply."""
    config = parse_config(CONFIG, "t", {})
    old = Router(config)
    slot = old.slot(route(old, "pub").deployment)  # type: ignore[arg-type]
    for _ in range(10):
        slot.breaker.record(False, 100.0)
    assert slot.breaker.state == "open"
    slot.observe_ttfb(0.25)
    slot.inflight = 2
    edited = (
        CONFIG
        + "  added: {provider: a}\nrouting: {breaker: {cooldown_s: 5}, "
        + ("retry_budget: {ratio: 0.5}}\n")
    )
    new = Router(parse_config(edited, "t", {}), old.breakers, slots=old.slots_by_key)
    kept = new.slot(route(new, "pub").deployment)  # type: ignore[arg-type]
    assert kept is slot and kept.breaker.state == "open"
    assert kept.ttfb_s == 0.25 and kept.inflight == 2
    assert kept.breaker.config.cooldown_s == 5 and kept.budget.ratio == 0.5
    assert route(new, "added").deployment is not None
