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
from tests.integration.tenancy import call

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


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # "pid (comm) state ppid ...": comm may hold spaces, so split after its ")".
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


@pytest.mark.parametrize(
    ("start_method", "stop_signal"),
    [("fork", signal.SIGTERM), ("spawn", signal.SIGINT)],
)
def test_secrets_reach_workers_in_a_private_file_not_the_environment(
    tmp_path: Path, start_method: str, stop_signal: signal.Signals
) -> None:
    """Provider keys, the admin key and the database URL are in no process's environment
    (inherited by everything it starts); the file that carries them is the user's alone, and
    is gone once the gateway stops. Spawned workers (macOS's default, and Linux's from
    Python 3.14 on) start as new programs, with the environment they are handed."""
    canary = "sk-canary-6f1d2c9e8b7a"
    admin = "admin-canary-0a9b8c7d6e5f"
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(
        f"import multiprocessing\nmultiprocessing.set_start_method({start_method!r}, force=True)\n"
    )
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    env = {
        "PYTHONPATH": os.pathsep.join(p for p in (str(hooks), os.environ.get("PYTHONPATH")) if p),
        "XDG_RUNTIME_DIR": str(runtime),
    }
    config = {
        "providers": {
            "e": {"kind": "echo"},
            "o": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": canary},
        },
        "models": {"m": {"provider": "o"}, "echo": {"provider": "e"}},
        "auth": {"mode": "keys", "admin_key": admin},
        "database": {"url": f"sqlite:///{tmp_path / 'relay.db'}"},
        "server": {"drain_timeout_s": 1.0},
    }
    gateway = Gateway(config, tmp_path, workers=2, env=env)
    try:
        status, _ = call(gateway, "POST", "/admin/tenants", {"name": "t"}, key=admin)
        assert status == 201  # the workers hold the admin key
        main = gateway.process.pid
        workers = children(main)
        assert len(workers) >= 2, workers
        for pid in [main, *workers]:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            for secret in (canary, admin):
                assert secret.encode() not in environ, (start_method, pid)
        [handed] = runtime.glob(f"relay-handoff-{main}-*/config.json")
        assert canary in handed.read_text()
        assert handed.stat().st_mode & 0o777 == 0o600
        assert handed.parent.stat().st_mode & 0o777 == 0o700
    finally:
        gateway.process.send_signal(stop_signal)
        # Generous: two workers each drain, then their spawned replacements' imports are not
        # waited for, but on a busy machine the workers' own exit can take a while.
        assert gateway.stop(timeout=60) == 0
    assert list(runtime.iterdir()) == []
