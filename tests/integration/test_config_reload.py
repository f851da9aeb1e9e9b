"""A broken file never stops a running gateway: workers start from the configuration the main
process validated, whether they are respawned after a crash or restarted on SIGHUP."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import openai
import pytest

from tests.integration.gateway import Gateway

GOOD = "providers: {e: {kind: echo}}\nmodels: {before: {provider: e}}\n"
BROKEN = "server: {log_level: loud\n"


def start(tmp_path: Path) -> tuple[Gateway, Path]:
    """A gateway serving a file the test may break; the file's path."""
    gateway = Gateway(
        {"providers": {"e": {"kind": "echo"}}, "models": {"before": {"provider": "e"}}}, tmp_path
    )
    return gateway, tmp_path / f"relay-{gateway.port}.yaml"


def models(gateway: Gateway) -> list[str]:
    client = openai.OpenAI(base_url=gateway.base_url, api_key="x", max_retries=0)
    return [m.id for m in client.models.list()]


def wait_for(gateway: Gateway, text: str, count: int = 1, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while gateway.logs().count(text) < count:
        assert gateway.process.poll() is None, gateway.logs()
        if time.monotonic() > deadline:
            pytest.fail(f"no {text!r} x{count} in:\n{gateway.logs()}")
        time.sleep(0.05)


def test_a_crashed_worker_restarts_from_the_validated_config(tmp_path: Path) -> None:
    gateway, path = start(tmp_path)
    try:
        path.write_text(BROKEN)
        pid = int(re.findall(r"Spawning worker-1 with PID: (\d+)", gateway.logs())[-1])
        os.kill(pid, signal.SIGKILL)
        wait_for(gateway, "Started worker-1 runtime", count=2)
        assert models(gateway) == ["before"]
        assert "crash loop" not in gateway.logs()
    finally:
        gateway.stop()


def test_sighup_with_a_broken_file_keeps_serving(tmp_path: Path) -> None:
    gateway, path = start(tmp_path)
    try:
        path.write_text(BROKEN)
        gateway.process.send_signal(signal.SIGHUP)
        wait_for(gateway, "Stopped old worker-1")
        assert models(gateway) == ["before"]
        logs = gateway.logs()
        assert (
            f"SIGHUP: {path} is invalid; workers restart with the configuration already running"
            in logs
        )
        assert "invalid YAML" in logs
    finally:
        assert gateway.stop() == 0


def test_sighup_with_a_valid_file_restarts_workers_on_it(tmp_path: Path) -> None:
    gateway, path = start(tmp_path)
    try:
        path.write_text(GOOD.replace("before", "after") + "server: {port: 1}\n")
        gateway.process.send_signal(signal.SIGHUP)
        wait_for(gateway, "Stopped old worker-1")
        # --port (given at start) still applies: the listening socket does not move
        assert models(gateway) == ["after"]
    finally:
        assert gateway.stop() == 0
