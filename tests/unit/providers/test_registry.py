"""The registry and config validation know the same provider kinds."""

from __future__ import annotations

from relay.config import parse_config
from relay.config.model import KNOWN_PROVIDER_KINDS
from relay.providers import build_providers
from relay.providers.registry import _KINDS
from relay.upstream import UpstreamPool


def test_config_and_registry_agree_on_kinds() -> None:
    assert set(_KINDS) == set(KNOWN_PROVIDER_KINDS)


def test_one_adapter_per_configured_provider() -> None:
    config = parse_config(
        "providers: {e: {kind: echo}, o: {kind: openai, base_url: 'http://h/v1'}}", "t", {}
    )
    providers = build_providers(config, UpstreamPool())
    assert {name: p.kind for name, p in providers.items()} == {"e": "echo", "o": "openai"}
