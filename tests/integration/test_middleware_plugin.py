"""A middleware plugin as its own package (the worked example in examples/middleware-plugin):
pip-installed into a fresh virtual environment, its kind is valid in check-config, its errors
are reported by path, and a real server runs it like a built-in."""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from tests.fakes.openai_upstream import FakeUpstream
from tests.integration.conftest import upstream_config
from tests.integration.gateway import Gateway
from tests.integration.test_plugin import relay_env

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "middleware-plugin"
# The example's pyproject builds with setuptools; this one builds the same module offline with
# nothing but pip (a PEP 517 backend in the package's own tree).
PYPROJECT = """
[build-system]
requires = []
build-backend = "backend"
backend-path = ["."]

[project]
name = "relay-glossary"
version = "0.1.0"
"""
BACKEND = """
import base64, hashlib, zipfile

NAME, VERSION = "relay_glossary", "0.1.0"
INFO = f"{NAME}-{VERSION}.dist-info"
FILES = {
    f"{NAME}.py": open(f"{NAME}.py", "rb").read(),
    f"{INFO}/METADATA": b"Metadata-Version: 2.1\\nName: relay-glossary\\nVersion: 0.1.0\\n",
    f"{INFO}/WHEEL": b"Wheel-Version: 1.0\\nGenerator: backend\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
    f"{INFO}/entry_points.txt": b"[relay.middleware]\\nglossary = relay_glossary:build\\n",
}


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name = f"{NAME}-{VERSION}-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(f"{wheel_directory}/{name}", "w") as wheel:
        for path, data in FILES.items():
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{path},sha256={digest.decode()},{len(data)}")
            wheel.writestr(path, data)
        wheel.writestr(f"{INFO}/RECORD", "\\n".join([*record, f"{INFO}/RECORD,,"]) + "\\n")
    return name
"""


@pytest.fixture(scope="module")
def plugin_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh venv (seeing this interpreter's packages) with the example pip-installed."""
    root = tmp_path_factory.mktemp("middleware-plugin")
    source = root / "relay-glossary"
    source.mkdir()
    (source / "relay_glossary.py").write_text((EXAMPLE / "relay_glossary.py").read_text())
    (source / "pyproject.toml").write_text(PYPROJECT)
    (source / "backend.py").write_text(BACKEND)
    env_dir = root / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    python = str(env_dir / "bin" / "python")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "install", "--no-index",
         "--no-build-isolation", "--no-deps", "--quiet", str(source)],
        check=True, cwd=source,
    )  # fmt: skip
    return python


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
