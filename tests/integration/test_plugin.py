"""A provider plugin as its own package: pip-installed into a fresh virtual environment, its
kind is valid in a config and a real server routes requests to it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.fakes.vendor_upstream import FakeVendors, start_fake_vendors
from tests.integration.gateway import Gateway
from tests.integration.plugins import install_plugin, relay_env

pytestmark = pytest.mark.integration

# The plugin a company would write: an in-house OpenAI-shaped service with its own header.
PLUGIN = '''
"""Relay provider plugin for the in-house model service."""

from relay.config.model import ProviderConfig
from relay.providers.openai_compat import OpenAICompatible


class InHouse(OpenAICompatible):
    kind = "inhouse"

    def auth_headers(self, config: ProviderConfig) -> dict[str, str]:
        return {"x-inhouse-team": config.settings.get("team", "unknown")}
'''


@pytest.fixture(scope="module")
def plugin_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh venv (seeing this interpreter's packages) with the plugin pip-installed."""
    root = tmp_path_factory.mktemp("plugin")
    entry = ("relay.providers", "inhouse", "relay_inhouse:InHouse")
    return install_plugin(root, "relay-inhouse", PLUGIN, entry)


@pytest.fixture(scope="module")
def vendors() -> Iterator[FakeVendors]:
    with start_fake_vendors() as fake:
        yield fake


def config(url: str) -> dict[str, Any]:
    return {
        "providers": {
            "corp": {
                "kind": "inhouse",
                "base_url": f"{url}/ollama/v1",
                "settings": {"team": "search"},
            }
        },
        "models": {"house-llama": {"provider": "corp", "model": "llama3:8b"}},
    }


def test_check_config_knows_the_plugin_kind_only_where_installed(
    plugin_python: str, vendors: FakeVendors, tmp_path: Path
) -> None:
    import yaml

    path = tmp_path / "relay.yaml"
    path.write_text(yaml.safe_dump(config(vendors.url)))
    env = {**os.environ, **relay_env()}
    with_plugin = subprocess.run(
        [plugin_python, "-m", "relay", "check-config", str(path)],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert with_plugin.returncode == 0, with_plugin.stderr + with_plugin.stdout
    without = subprocess.run(
        [sys.executable, "-m", "relay", "check-config", str(path)],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert without.returncode == 1
    assert "providers.corp.kind: unknown kind 'inhouse' (known: anthropic, azure, bedrock" in (
        without.stdout + without.stderr
    )


def test_a_request_is_routed_to_the_plugin_through_a_real_server(
    plugin_python: str, vendors: FakeVendors, tmp_path: Path
) -> None:
    gateway = Gateway(config(vendors.url), tmp_path, env=relay_env(), python=plugin_python)
    try:
        vendors.recorder.reset()
        client = openai.OpenAI(base_url=gateway.base_url, api_key="x", max_retries=0, timeout=20)
        reply = client.chat.completions.create(
            model="house-llama", messages=[{"role": "user", "content": "hi"}]
        )
        assert reply.choices[0].message.content == "Echo: hi"
        entry = vendors.recorder.last()
        assert entry["headers"]["x-inhouse-team"] == "search"
        assert entry["json"]["model"] == "llama3:8b"
    finally:
        gateway.stop()
