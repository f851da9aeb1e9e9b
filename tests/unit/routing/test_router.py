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
