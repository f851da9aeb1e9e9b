"""``models.X.limits`` and ``targets[].limits``: read, checked, and one quota per deployment."""

from __future__ import annotations

import pytest

from relay.config import ConfigError, parse_config
from relay.config.model import RateQuota
from relay.routing.router import Router

TEXT = """
providers: {a: {kind: echo}, b: {kind: echo}}
models:
  m:
    limits: {rpm: 100, tpm: 50000}
    targets:
      - {provider: a, model: x, limits: {rpm: 10}}
      - {provider: b, model: x}
  n:
    targets: [{provider: a, model: x, limits: {rpm: 10}}]
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "t.yaml", {})
    return info.value.problems


def test_model_and_target_limits_are_read() -> None:
    config = parse_config(TEXT, "t", {})
    assert config.models["m"].limits == RateQuota(rpm=100, tpm=50000)
    assert config.models["m"].targets[0].limits == RateQuota(rpm=10)
    assert config.models["m"].targets[1].limits is None


def test_every_deployment_of_a_provider_and_model_carries_its_quota() -> None:
    router = Router(parse_config(TEXT, "t", {}))
    quotas = {
        (d.public_model, d.provider): d.limits
        for route in router.routes.values()
        for d in route.balancer.orders[0]
    }
    assert quotas == {
        ("m", "a"): RateQuota(rpm=10),
        ("m", "b"): None,
        ("n", "a"): RateQuota(rpm=10),
    }


def test_limits_below_one_and_disagreeing_quotas_are_refused() -> None:
    text = """
providers: {a: {kind: echo}}
models:
  m:
    limits: {rpm: 0}
    targets: [{provider: a, model: x, limits: {tpm: -5}}]
  n:
    targets: [{provider: a, model: x, limits: {tpm: 7}}]
"""
    assert problems(text) == [
        "models.m.limits.rpm: expected at least 1 (or no key), got 0",
        "models.m.targets[0].limits.tpm: expected at least 1 (or no key), got -5",
        "models.n.targets[0].limits: a/x is limited differently at models.m.targets[0].limits: "
        "a deployment has one quota, give it the same limits everywhere",
    ]
