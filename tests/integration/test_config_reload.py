"""Hot reload: an edit of the config file (or SIGHUP, or ``relay reload``) is validated by the
main process and swapped into the running workers without a restart; a broken file never
stops a running gateway and is reported; in-flight streams and the workers' state (breakers,
limiter cells, cache entries) survive the swap."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from tests.integration.gateway import Gateway
from tests.integration.tenancy import call

BROKEN = "server: {log_level: loud\n"
ADMIN = "admin-key-for-reload-0123456789"


def echo_config(tmp_path: Path, *models: str, **extra: Any) -> dict[str, Any]:
    """Echo models ``models``, an admin key and a database (for /admin/config)."""
    return {
        "providers": {"e": {"kind": "echo"}},
        "models": {name: {"provider": "e"} for name in models},
        "auth": {"mode": "none", "admin_key": ADMIN},
        "database": {"url": f"sqlite:///{tmp_path / 'relay.db'}"},
        "server": {"drain_timeout_s": 1.0},
        **extra,
    }


def start(
    tmp_path: Path, config: dict[str, Any], workers: int = 1, start_method: str | None = None
) -> tuple[Gateway, Path]:
    """A gateway serving a file the test may edit; the file's path. ``start_method``: how
    granian starts its workers (fork, or spawn: a new program, as on macOS)."""
    env = None
    if start_method is not None:
        hooks = tmp_path / "hooks"
        hooks.mkdir()
        (hooks / "sitecustomize.py").write_text(
            "import multiprocessing\n"
            f"multiprocessing.set_start_method({start_method!r}, force=True)\n"
        )
        paths = (str(hooks), os.environ.get("PYTHONPATH"))
        env = {"PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    gateway = Gateway(config, tmp_path, workers=workers, env=env)
    return gateway, tmp_path / f"relay-{gateway.port}.yaml"


def write(path: Path, config: dict[str, Any] | str) -> None:
    """Replace the file as an editor that saves in place does."""
    path.write_text(config if isinstance(config, str) else yaml.safe_dump(config))


def models(gateway: Gateway) -> list[str]:
    client = openai.OpenAI(base_url=gateway.base_url, api_key="x", max_retries=0)
    return [m.id for m in client.models.list()]


def wait_for(gateway: Gateway, text: str, count: int = 1, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while gateway.logs().count(text) < count:
        assert gateway.process.poll() is None, gateway.logs()
        if time.monotonic() > deadline:
            pytest.fail(f"no {text!r} x{count} in:\n{gateway.logs()}")
        time.sleep(0.02)


def live_config(gateway: Gateway) -> dict[str, Any]:
    status, body = call(gateway, "GET", "/admin/config", key=ADMIN)
    assert status == 200, body
    assert isinstance(body, dict)
    return body


def reloads(gateway: Gateway) -> dict[str, float]:
    """relay_config_reloads_total by outcome, as a scrape shows it."""
    with urllib.request.urlopen(gateway.url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    found = re.findall(r'relay_config_reloads_total\{outcome="(\w+)"\} ([0-9.]+)', text)
    return {outcome: float(value) for outcome, value in found}


def worker_pids(gateway: Gateway) -> list[int]:
    return [int(p) for p in re.findall(r"Spawning worker-\d+ with PID: (\d+)", gateway.logs())]


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_an_edit_is_served_by_both_workers_within_two_seconds(
    tmp_path: Path, start_method: str
) -> None:
    gateway, path = start(tmp_path, echo_config(tmp_path, "before"), 2, start_method)
    try:
        pids = worker_pids(gateway)
        assert len(pids) == 2
        before = live_config(gateway)["version"]
        edited = time.monotonic()
        write(path, echo_config(tmp_path, "after"))
        # Each worker logs the version it swapped in: wait for both (the bound).
        while True:
            logs = gateway.logs()
            swapped = {int(p) for p in re.findall(r"worker (\d+) serves config version", logs)}
            if swapped >= set(pids):
                break
            assert time.monotonic() - edited < 2.0, logs
            time.sleep(0.02)
        # Every connection, whichever worker takes it, is served the edit.
        for _ in range(20):
            assert models(gateway) == ["after"]
        after = live_config(gateway)["version"]
        assert after["hash"] != before["hash"] and after["applied_at"] > before["applied_at"]
        assert re.search(r"config reload \(file changed\): version sha256:\w+ applied", logs)
        assert worker_pids(gateway) == pids  # no worker was restarted
        assert "Stopped old worker" not in logs
        assert reloads(gateway)["applied"] == 1
    finally:
        assert gateway.stop() == 0


def test_a_broken_edit_is_kept_out_and_reported(tmp_path: Path) -> None:
    gateway, path = start(tmp_path, echo_config(tmp_path, "before"))
    try:
        version = live_config(gateway)["version"]
        broken = echo_config(tmp_path, "before")
        broken["models"]["before"]["provider"] = "nope"
        broken["server"]["log_level"] = "loud"
        write(path, broken)
        wait_for(gateway, "is invalid (2 problems); still serving version " + version["hash"])
        logs = gateway.logs()
        # Every problem, by path.
        assert "models.before.provider" in logs and "server.log_level" in logs
        assert models(gateway) == ["before"]
        assert live_config(gateway)["version"] == version
        assert reloads(gateway)["invalid"] == 1
        # A file that does not even parse: refused the same way.
        write(path, BROKEN)
        wait_for(gateway, "invalid YAML")
        assert reloads(gateway)["invalid"] == 2
        # Fixed: applied.
        write(path, echo_config(tmp_path, "fixed"))
        wait_for(gateway, "serves config version")
        assert models(gateway) == ["fixed"]
    finally:
        assert gateway.stop() == 0


def test_settings_that_need_a_restart_are_named_and_kept(tmp_path: Path) -> None:
    gateway, path = start(tmp_path, echo_config(tmp_path, "before"))
    try:
        edited = echo_config(tmp_path, "after")
        edited["database"]["url"] = f"sqlite:///{tmp_path / 'other.db'}"
        edited["auth"]["mode"] = "keys"
        edited["server"]["upstream_connections_per_host"] = 7
        new_key = "new-admin-key-0123456789abcdef"
        edited["auth"]["admin_key"] = new_key
        write(path, edited)
        wait_for(gateway, "serves config version")
        logs = gateway.logs()
        for setting in ("database.url", "auth.mode", "server.upstream_connections_per_host"):
            assert f"{setting} changed in {path}; restart Relay to apply it" in logs, setting
        # The rest of the edit applies (a new admin key at once); the running values stay.
        assert models(gateway) == ["after"]
        assert call(gateway, "GET", "/admin/config", key=ADMIN)[0] == 401
        status, shown = call(gateway, "GET", "/admin/config", key=new_key)
        assert status == 200
        live = shown["config"]
        assert live["auth"]["mode"] == "none"
        assert live["database"]["url"] == f"sqlite:///{tmp_path / 'relay.db'}"
    finally:
        assert gateway.stop() == 0


def test_a_stream_in_flight_during_the_swap_is_unharmed(tmp_path: Path) -> None:
    config = echo_config(tmp_path, "m")
    config["providers"]["e"]["chunk_delay_ms"] = 50
    gateway, path = start(tmp_path, config)
    try:
        client = openai.OpenAI(base_url=gateway.base_url, api_key="x", max_retries=0)
        words = [f"w{i}" for i in range(40)]  # 40 chunks, 50 ms apart: about 2 s
        stream = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": " ".join(words)}], stream=True
        )
        received = []
        chunks = iter(stream)
        received.append(next(chunks))  # the stream has begun on the old configuration
        # The edit removes the very model the stream is on.
        write(path, echo_config(tmp_path, "other"))
        wait_for(gateway, "serves config version")
        received.extend(chunks)  # ends normally: no error event, no cut
        text = "".join(c.choices[0].delta.content or "" for c in received if c.choices)
        assert text.split()[-len(words) :] == words  # the echo, whole
        assert received[-1].choices[0].finish_reason == "stop" or any(
            c.choices and c.choices[0].finish_reason == "stop" for c in received
        )
        assert models(gateway) == ["other"]
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    finally:
        assert gateway.stop() == 0


def test_breakers_limiter_cells_and_cache_entries_survive_a_swap(tmp_path: Path) -> None:
    config = echo_config(tmp_path, "echo")
    config["providers"]["down"] = {
        "kind": "openai",
        "base_url": "http://127.0.0.1:9/v1",
        "api_key": "sk-unused",
    }
    config["models"]["down"] = {"provider": "down", "model": "gpt-4o-mini"}
    config["models"]["limited"] = {"provider": "e", "limits": {"rpm": 3}}
    config["models"]["echo"]["cache"] = {"mode": "all"}
    config["routing"] = {
        "breaker": {"min_requests": 2, "failure_rate": 0.5, "cooldown_s": 300},
    }
    gateway, path = start(tmp_path, config)
    client = openai.OpenAI(base_url=gateway.base_url, api_key="x", max_retries=0)

    def ask(model: str, content: str = "hi") -> Any:
        return client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": content}]
        )

    try:
        # The breaker of the unreachable deployment opens.
        for _ in range(2):
            with pytest.raises(openai.APIStatusError) as failed:
                ask("down")
            assert failed.value.status_code == 502
        with pytest.raises(openai.APIStatusError) as refused:
            ask("down")
        assert refused.value.status_code == 503 and refused.value.code == "circuit_open"
        # The model's limit: 3 requests a minute, all used.
        for _ in range(3):
            assert ask("limited").http_response.status_code == 200
        with pytest.raises(openai.RateLimitError):
            ask("limited")
        # An answer recorded in the cache.
        first = ask("echo", "remember me")
        assert first.headers["x-relay-provider"] == "e"
        time.sleep(0.5)  # the cache's writer runs after the last byte

        edited = dict(config)
        edited["models"] = {**config["models"], "new": {"provider": "e"}}
        write(path, edited)
        wait_for(gateway, "serves config version")
        assert "new" in models(gateway)

        with pytest.raises(openai.APIStatusError) as still:
            ask("down")
        assert still.value.status_code == 503 and still.value.code == "circuit_open"
        with pytest.raises(openai.RateLimitError):
            ask("limited")
        again = ask("echo", "remember me")
        assert again.headers["x-relay-provider"] == "cache"
    finally:
        assert gateway.stop() == 0


def test_sighup_swaps_the_config_without_restarting_workers(tmp_path: Path) -> None:
    gateway, path = start(tmp_path, echo_config(tmp_path, "before"), workers=2)
    try:
        pids = worker_pids(gateway)
        gateway.process.send_signal(signal.SIGHUP)
        wait_for(gateway, "config reload (SIGHUP): no change to apply")
        # The edit and the signal together: the signal does not wait for the file's quiet time.
        write(path, echo_config(tmp_path, "after"))
        gateway.process.send_signal(signal.SIGHUP)
        wait_for(gateway, "serves config version", count=2)
        assert models(gateway) == ["after"]
        logs = gateway.logs()
        assert re.search(r"config reload \([^)]*SIGHUP[^)]*\): version sha256:\w+ applied", logs)
        assert worker_pids(gateway) == pids
        assert "Stopped old worker" not in logs and "respawning" not in logs
        # A broken file on SIGHUP: kept out, as an edit is.
        write(path, BROKEN)
        gateway.process.send_signal(signal.SIGHUP)
        wait_for(gateway, "(SIGHUP): ")
        wait_for(gateway, "is invalid")
        assert models(gateway) == ["after"]
    finally:
        assert gateway.stop() == 0


def reload_command(path: Path, gateway: Gateway) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "relay",
            "reload",
            "--config",
            str(path),
            "--port",
            str(gateway.port),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_relay_reload_asks_the_gateway_on_its_port(tmp_path: Path) -> None:
    gateway, path = start(tmp_path, echo_config(tmp_path, "before"))
    try:
        done = reload_command(path, gateway)
        assert done.returncode == 0, done.stderr
        assert f"asked the gateway (pid {gateway.process.pid}) to reload {path}" in done.stdout
        wait_for(gateway, "config reload (SIGHUP): no change to apply")
        # A broken file is refused by the command itself, with every problem.
        write(path, BROKEN)
        done = reload_command(path, gateway)
        assert done.returncode == 1
        assert "invalid YAML" in done.stderr and "not reloading" in done.stderr
    finally:
        assert gateway.stop() == 0
    # Stopped: no pid file left, and the command says no gateway runs there.
    write(path, echo_config(tmp_path, "before"))
    done = reload_command(path, gateway)
    assert done.returncode == 1 and "no pid file" in done.stderr


def test_admin_config_is_for_admins_with_secrets_redacted(tmp_path: Path) -> None:
    secrets = {
        "provider": "sk-provider-canary-1a2b3c",
        "db": "db-password-canary-4d5e6f",
        "redis": "redis-password-canary-7a8b",
        "session": "session-secret-canary-0123456789abcdef",
        "oidc": "oidc-client-secret-canary-9c8d",
        "header": "Bearer header-canary-5e6f",
    }
    config = echo_config(tmp_path, "m")
    config["auth"] = {"mode": "keys", "admin_key": ADMIN}
    config["providers"]["o"] = {
        "kind": "openai",
        "base_url": "http://127.0.0.1:9/v1",
        "api_key": secrets["provider"],
        "headers": {"Authorization": secrets["header"]},
    }
    config["redis"] = {"enabled": False, "password": secrets["redis"]}
    config["telemetry"] = {"endpoint": f"http://otel:{secrets['db']}@127.0.0.1:4318"}
    config["ui"] = {
        "session_secret": secrets["session"],
        "oidc": {
            "issuer": "https://idp.example",
            "client_id": "relay",
            "client_secret": secrets["oidc"],
            "redirect_uri": "https://relay.example/ui/oidc/callback",
        },
    }
    gateway, _ = start(tmp_path, config)
    try:
        status, raw = call(gateway, "GET", "/admin/config", key=ADMIN)
        assert status == 200
        text = json.dumps(raw)
        for name, secret in secrets.items():
            assert secret not in text, name
        assert ADMIN not in text
        live = raw["config"]
        assert live["providers"]["o"]["api_key"] == "[redacted]"
        assert live["providers"]["o"]["headers"]["Authorization"] == "[redacted]"
        assert live["auth"]["admin_key"] == "[redacted]"
        assert live["redis"]["password"] == "[redacted]"
        assert live["ui"]["session_secret"] == "[redacted]"
        assert live["ui"]["oidc"]["client_secret"] == "[redacted]"
        assert live["telemetry"]["endpoint"] == "http://otel:[redacted]@127.0.0.1:4318"
        assert live["providers"]["e"]["api_key"] is None  # unset stays visible as unset
        assert live["models"]["m"]["targets"][0]["provider"] == "e"
        assert re.fullmatch(r"sha256:[0-9a-f]{16}", raw["version"]["hash"])
        assert "server.port" in raw["restart_needed"]
        # Admins only: no key, a wrong key, a tenant's key, a user who is not an admin.
        assert call(gateway, "GET", "/admin/config", key=None)[0] == 401
        assert call(gateway, "GET", "/admin/config", key="wrong-key-0123456789")[0] == 401
        status, tenant = call(gateway, "POST", "/admin/tenants", {"name": "t"}, key=ADMIN)
        assert status == 201
        assert call(gateway, "GET", "/admin/config", key=tenant["api_key"])[0] == 403
        status, user = call(gateway, "POST", "/admin/users", {"name": "u"}, key=ADMIN)
        assert status == 201
        status, error = call(gateway, "GET", "/admin/config", key=user["api_key"])
        assert status == 403 and error["error"]["type"] == "permission_denied"
        status, admin = call(
            gateway, "POST", "/admin/users", {"name": "root", "role": "admin"}, key=ADMIN
        )
        assert status == 201
        assert call(gateway, "GET", "/admin/config", key=admin["api_key"])[0] == 200
        assert call(gateway, "POST", "/admin/config", {}, key=ADMIN)[0] == 405
    finally:
        assert gateway.stop() == 0


def test_a_crashed_worker_restarts_from_the_validated_config(tmp_path: Path) -> None:
    gateway, path = start(tmp_path, echo_config(tmp_path, "before"))
    try:
        write(path, BROKEN)
        wait_for(gateway, "is invalid")
        pid = worker_pids(gateway)[-1]
        os.kill(pid, signal.SIGKILL)
        wait_for(gateway, "Started worker-1 runtime", count=2)
        assert models(gateway) == ["before"]
        assert "crash loop" not in gateway.logs()
    finally:
        gateway.stop()


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
