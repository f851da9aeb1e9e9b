"""A middleware plugin as its own package (the worked example in examples/middleware-plugin):
pip-installed into a fresh virtual environment, its kind is valid in check-config, its errors
are reported by path, and a real server runs it like a built-in."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from tests.fakes.openai_upstream import FakeUpstream
from tests.integration.conftest import upstream_config
from tests.integration.gateway import Gateway
from tests.integration.plugins import install_plugin, relay_env

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "middleware-plugin"


@pytest.fixture(scope="module")
def plugin_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh venv (seeing this interpreter's packages) with the example pip-installed.

    The example's pyproject builds with setuptools; this one builds the same module offline
    with nothing but pip (tests/integration/plugins.py)."""
    root = tmp_path_factory.mktemp("middleware-plugin")
    code = (EXAMPLE / "relay_glossary.py").read_text()
    entry = ("relay.middleware", "glossary", "relay_glossary:build")
    return install_plugin(root, "relay-glossary", code, entry, "0.1.0")


def check(python: str, config: dict[str, Any], tmp: Path) -> subprocess.CompletedProcess[str]:
    path = tmp / "relay.yaml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.run(
        [python, "-m", "relay", "check-config", str(path)],
        capture_output=True, text=True, env={**relay_env(), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip


def config_with(up: FakeUpstream, terms: Any) -> dict[str, Any]:
    config = upstream_config(up)
    config["policies"] = {"names": {"kind": "glossary", "terms": terms}}
    config["middleware"] = ["names"]
    return config


def test_the_kind_is_known_only_where_installed(
    plugin_python: str, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    good = config_with(fake_upstream, {"Project Aurora": "the project"})
    assert check(plugin_python, good, tmp_path).returncode == 0
    bad = check(plugin_python, config_with(fake_upstream, {"Aurora": ""}), tmp_path)
    assert bad.returncode != 0
    assert "policies.names.terms.Aurora: expected a non-empty string" in bad.stdout + bad.stderr
    # This interpreter does not have the plugin: the kind is unknown, and says what is known.
    bare = check(sys.executable, good, tmp_path)
    assert bare.returncode != 0
    assert "policies.names.kind: unknown policy kind 'glossary'" in bare.stdout + bare.stderr


@pytest.fixture(scope="module")
def gateway(
    plugin_python: str, fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("glossary")
    config = config_with(fake_upstream, {"Project Aurora": "the project", "Zeta-9": "the device"})
    served = Gateway(config, tmp, python=plugin_python, env=relay_env())
    yield served
    served.stop()


def test_a_real_server_runs_the_plugin(gateway: Gateway, fake_upstream: FakeUpstream) -> None:
    client = openai.OpenAI(base_url=gateway.base_url, api_key="x", max_retries=0, timeout=20)
    reply = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "status of Project Aurora and Zeta-9?"}],
    )
    # The provider saw the stand-ins; the caller gets its own words back.
    sent = [r["body"] for r in fake_upstream.requests() if "status of" in json.dumps(r["body"])]
    assert sent[-1]["messages"][0]["content"] == "status of the project and the device?"
    assert reply.choices[0].message.content == "Echo: status of Project Aurora and Zeta-9?"
