"""Fixtures: the real gateway process, and the fake OpenAI provider as a real HTTP server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.openai_upstream import FakeUpstream, make_fake_upstream_fixture
from tests.integration.gateway import Gateway, free_port

UPSTREAM_KEY = "sk-test-upstream"

fake_upstream = make_fake_upstream_fixture(scope="session", api_key=UPSTREAM_KEY)

# Public model name -> the fake provider's behaviour (its model names select a scenario).
SCENARIOS = [
    "gpt-4o-mini",
    "no-usage",
    "error-400",
    "error-401",
    "error-429",
    "error-500",
    "error-html",
    "not-json",
    "cut-stream",
    "stream-error",
    "stall-mid-stream",
    "long-stream",
    "split-events",
    "big-3000",
    "redirect",
    "slow-3000",
    "bad-utf8",
    "stream-error-429",
]


def upstream_config(up: FakeUpstream, **server: Any) -> dict[str, Any]:
    """A full-form config whose models all go to the fake provider."""
    models: dict[str, Any] = {
        name: {"provider": "fake", "pricing": {"input": 1.0, "output": 2.0}} for name in SCENARIOS
    }
    models["renamed"] = {"provider": "fake", "model": "gpt-4o-mini"}
    models["slow"] = {"provider": "impatient", "model": "slow-1500"}
    models["stalled"] = {"provider": "impatient", "model": "stall-mid-stream"}
    models["wrong-key"] = {"provider": "badkey", "model": "gpt-4o-mini"}
    models["nowhere"] = {"provider": "unreachable", "model": "gpt-4o-mini"}
    models["own-key"] = {"provider": "passthrough", "model": "gpt-4o-mini"}
    models["own-key-429"] = {"provider": "passthrough", "model": "error-429"}
    models["own-key-stream-429"] = {"provider": "passthrough", "model": "stream-error-429"}
    return {
        "server": {"drain_timeout_s": 1.0, **server},
        "providers": {
            "fake": {"kind": "openai", "base_url": up.base_url, "api_key": UPSTREAM_KEY},
            "impatient": {
                "kind": "openai",
                "base_url": up.base_url,
                "api_key": UPSTREAM_KEY,
                "timeouts": {"connect_s": 2, "read_s": 0.5, "total_s": 5},
            },
            "passthrough": {
                "kind": "openai",
                "base_url": up.base_url,
                "forward_client_auth": True,
            },
            "badkey": {"kind": "openai", "base_url": up.base_url, "api_key": "sk-wrong-secret-42"},
            "unreachable": {
                "kind": "openai",
                "base_url": f"http://127.0.0.1:{free_port()}/v1",
                "api_key": "sk-x",
            },
        },
        "models": models,
    }


@pytest.fixture(scope="module")
def echo_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """The gateway on its embedded default config (no --config): the offline echo provider."""
    gateway = Gateway(None, tmp_path_factory.mktemp("echo"))
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def gateway(
    fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """The gateway in front of the fake OpenAI provider."""
    gw = Gateway(upstream_config(fake_upstream), tmp_path_factory.mktemp("gw"))
    yield gw
    gw.stop()


@pytest.fixture
def upstream(fake_upstream: FakeUpstream) -> FakeUpstream:
    """The fake provider with its recordings cleared for this test."""
    fake_upstream.reset()
    return fake_upstream
