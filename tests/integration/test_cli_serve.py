"""``relay serve`` starting: what it says, which config it finds, and whose port it is.

One gateway for the module, started the way a user coming from another gateway would: no
--config, a ``configs/config.yaml`` in the working directory (and a ``config.yaml`` it must not
prefer), ``SERVER_PORT`` naming a host.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import granian
import openai
import pytest
import yaml

from relay import __version__
from tests.integration.gateway import Gateway

SERVED = {
    "server": {"host": "127.0.0.1"},  # SERVER_PORT's host wins over this
    "providers": {
        "keyed": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "sk-secret-1"},
        "e": {"kind": "echo"},
    },
    "models": {"from-configs-dir": {"provider": "e"}, "other": {"provider": "keyed"}},
    "ratelimit": {"enabled": True},
    "redis": {"enabled": True},
}


@pytest.fixture(scope="module")
def found(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    cwd = tmp_path_factory.mktemp("discover")
    (cwd / "configs").mkdir()
    (cwd / "configs" / "config.yaml").write_text(yaml.safe_dump(SERVED))
    (cwd / "config.yaml").write_text(
        "providers: {e: {kind: echo}}\nmodels: {from-cwd: {provider: e}}\n"
    )
    # --port (from the helper) wins over SERVER_PORT's port; SERVER_PORT's host over the file's.
    gateway = Gateway(None, cwd, env={"SERVER_PORT": "0.0.0.0:1", "RELAY_LOG_LEVEL": "debug"})
    yield gateway
    gateway.stop()


def relay_lines(gateway: Gateway) -> list[dict[str, Any]]:
    return [json.loads(line) for line in gateway.logs().splitlines() if line.startswith("{")]


def test_startup_says_what_is_served(found: Gateway) -> None:
    infos = [r["msg"] for r in relay_lines(found) if r["level"] == "info"]
    assert infos[:6] == [
        f"Relay {__version__} (granian {granian.__version__}, Python {platform.python_version()})",
        "config: configs/config.yaml (found in the working directory)",
        "models: from-configs-dir, other",
        "auth: passthrough (no client authentication: every caller is accepted); auth.mode is "
        "not set, and no admin key or active gateway key",
        f"ledger: SQLite file {found.log_path.parent / 'relay.db'}, rows kept 30 days",
        f"serving http://0.0.0.0:{found.port}/v1 (listening on 0.0.0.0, every IPv4 interface)",
    ]


def test_startup_warns_loudly(found: Gateway) -> None:
    warnings = [r["msg"] for r in relay_lines(found) if r["level"] == "warning"]
    assert warnings == [
        "provider key(s) of keyed are served on 0.0.0.0 with no client authentication: anyone "
        "who can reach this port spends them",
        "redis.enabled is set, but this version does not use Redis yet",
    ]
    assert "sk-secret-1" not in found.logs()


def test_the_drain_hook_says_it_is_installed(found: Gateway) -> None:
    assert f"graceful drain hook installed (granian {granian.__version__})" in [
        r["msg"] for r in relay_lines(found)
    ]


def test_the_discovered_file_is_served_at_the_log_level_asked(found: Gateway) -> None:
    client = openai.OpenAI(base_url=found.base_url, api_key="x", max_retries=0)
    assert [m.id for m in client.models.list()] == ["from-configs-dir", "other"]
    client.chat.completions.create(
        model="from-configs-dir", messages=[{"role": "user", "content": "hi"}]
    )
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # RELAY_LOG_LEVEL=debug: the access line is written
        if any(r["msg"] == "request" for r in relay_lines(found)):
            return
        time.sleep(0.05)
    pytest.fail("no debug access line")


def test_a_second_gateway_on_the_port_is_refused_in_one_line(
    found: Gateway, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("SERVER_PORT", "RELAY_CONFIG")}
    result = subprocess.run(
        [sys.executable, "-m", "relay", "serve", "--host", "0.0.0.0", "--port", str(found.port)],
        capture_output=True,
        text=True,
        timeout=20,
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 1
    assert result.stderr == (
        f"relay: cannot listen on 0.0.0.0:{found.port}: port {found.port} is already in use "
        "(another Relay or another program); stop it, choose another port with --port, or pass "
        "--reuse-port to share it with another Relay\n"
    )


def test_reuse_port_shares_the_port(found: Gateway, tmp_path: Path) -> None:
    (tmp_path / "second.yaml").write_text(
        "providers: {e: {kind: echo, api_key: sk-second}}\nmodels: {second: {provider: e}}\n"
    )
    log = tmp_path / "second.log"
    env = {k: v for k, v in os.environ.items() if k not in ("SERVER_PORT", "RELAY_CONFIG")}
    args = ["serve", "--config", "second.yaml", "--host", "0.0.0.0", "--port", str(found.port)]
    with log.open("wb") as out:
        second = subprocess.Popen(
            [sys.executable, "-m", "relay", *args, "--reuse-port", "--log-level", "warning"],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            env=env,
        )
        try:
            # The kernel spreads new connections over both: the second gateway answers some.
            seen: set[str] = set()
            deadline = time.monotonic() + 20
            while "second" not in seen and time.monotonic() < deadline:
                assert second.poll() is None, log.read_text()
                # a new connection each time (an SDK client would keep one alive)
                with urllib.request.urlopen(found.url + "/v1/models", timeout=5) as response:
                    seen.update(m["id"] for m in json.load(response)["data"])
                time.sleep(0.02)
            assert "second" in seen
            # --log-level warning: the warning is written, our info lines and granian's are not
            lines = [json.loads(x) for x in log.read_text().splitlines() if x.startswith("{")]
            assert [(r["level"], r["msg"]) for r in lines] == [
                (
                    "warning",
                    "provider key(s) of e are served on 0.0.0.0 with no client authentication: "
                    "anyone who can reach this port spends them",
                )
            ]
            assert "Started worker" not in log.read_text()
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(20) == 0


def test_colon_port_listens_on_every_interface(tmp_path: Path) -> None:
    # `port: ":8080"`, as a Go user or a container writes it: every interface, said at start.
    config = {"server": {"port": ":8080"}, "providers": {"e": {"kind": "echo"}}}
    config["models"] = {"m": {"provider": "e"}}
    gateway = Gateway(config, tmp_path)  # its --port replaces the port, not the interfaces
    try:
        infos = [r["msg"] for r in relay_lines(gateway) if r["level"] == "info"]
        assert (
            f"serving http://0.0.0.0:{gateway.port}/v1 (listening on 0.0.0.0, every IPv4 interface)"
            in infos
        )
        # 127.0.0.2 is this machine too, but a socket bound to 127.0.0.1 does not answer it
        with urllib.request.urlopen(f"http://127.0.0.2:{gateway.port}/healthz", timeout=5) as r:
            assert r.status == 200
    finally:
        gateway.stop()


def test_an_explicit_host_wins_over_colon_port(tmp_path: Path) -> None:
    config = {
        "server": {"host": "127.0.0.1", "port": ":8080"},
        "providers": {"e": {"kind": "echo"}},
    }
    config["models"] = {"m": {"provider": "e"}}
    gateway = Gateway(config, tmp_path)
    try:
        infos = [r["msg"] for r in relay_lines(gateway) if r["level"] == "info"]
        line = f"serving http://127.0.0.1:{gateway.port}/v1 (listening on 127.0.0.1, loopback: this machine only)"
        assert line in infos
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.2:{gateway.port}/healthz", timeout=5)
    finally:
        gateway.stop()
