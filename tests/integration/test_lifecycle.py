"""The process: check-config, the simple form, several workers, graceful shutdown."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import openai
import yaml

from tests.fakes.openai_upstream import FakeUpstream
from tests.integration.conftest import upstream_config
from tests.integration.gateway import Gateway

MESSAGES: Any = [{"role": "user", "content": "hello there"}]


def relay(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relay", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_check_config_lists_every_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "providers: {openai: {kind: openai, base_url: 'https://x/v1', api_key: '${NOPE_KEY}'}}\n"
        "models: {gpt-4o: {targets: [{provider: opnai}]}}\n"
    )
    result = relay("check-config", str(bad), env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 1
    assert (
        "models.gpt-4o.targets[0].provider: unknown provider 'opnai' (known: openai)"
        in result.stderr
    )
    assert "providers.openai.api_key: environment variable NOPE_KEY is not set" in result.stderr
    serve = relay("serve", "--config", str(bad), "--port", "1")
    assert serve.returncode == 1 and "unknown provider 'opnai'" in serve.stderr


def test_check_config_accepts_the_shipped_examples() -> None:
    root = Path(__file__).resolve().parents[2] / "configs"
    for name in ("relay.yaml", "config.example.yaml", "openai.example.yaml"):
        result = relay(
            "check-config",
            str(root / name),
            env={"PATH": "/usr/bin:/bin", "OPENAI_API_KEY": "sk-x"},
        )
        assert result.returncode == 0, result.stderr
        assert ": ok (" in result.stdout


def test_simple_form_forwards_the_callers_key(fake_upstream: FakeUpstream, tmp_path: Path) -> None:
    fake_upstream.reset()
    config = {
        "server": {"port": ":1"},  # replaced by --port, as SERVER_PORT would
        "proxy": {"target": fake_upstream.url},
        "models": {"gpt-4o-mini": 0.002},
    }
    gateway = Gateway(config, tmp_path)
    try:
        client = openai.OpenAI(base_url=gateway.base_url, api_key="client-key-alice", max_retries=0)
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=MESSAGES
        )
        usage = raw.parse().usage
        assert usage is not None
        assert float(raw.headers["x-relay-cost-usd"]) == (
            __import__("pytest").approx(usage.total_tokens * 0.002 / 1000)
        )
        # a model the config does not list still goes to the target
        client.chat.completions.create(model="unlisted-model", messages=MESSAGES)
        seen = [r for r in fake_upstream.requests() if r["path"] == "/v1/chat/completions"]
        assert [r["headers"]["authorization"] for r in seen] == ["Bearer client-key-alice"] * 2
        assert seen[-1]["body"]["model"] == "unlisted-model"
    finally:
        gateway.stop()


def test_two_workers_serve(fake_upstream: FakeUpstream, tmp_path: Path) -> None:
    gateway = Gateway(upstream_config(fake_upstream), tmp_path, workers=2)
    try:
        client = openai.OpenAI(base_url=gateway.base_url, api_key="k", max_retries=0)
        for _ in range(10):
            reply = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            assert reply.choices[0].message.content == "Echo: hello there"
    finally:
        assert gateway.stop() == 0


def stream_in_thread(gateway: Gateway, model: str, out: dict[str, Any]) -> threading.Thread:
    def run() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=30)
        body = json.dumps({"model": model, "messages": MESSAGES, "stream": True})
        conn.request(
            "POST", "/v1/chat/completions", body=body, headers={"content-type": "application/json"}
        )
        response = conn.getresponse()
        out["status"] = response.status
        out["data"] = response.read()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_graceful_shutdown_finishes_short_streams_and_ends_long_ones(tmp_path: Path) -> None:
    config = {
        "server": {"drain_timeout_s": 1.5},
        "providers": {
            "slow": {"kind": "echo", "chunk_delay_ms": 100},
            "slower": {"kind": "echo", "chunk_delay_ms": 400},
        },
        "models": {"short": {"provider": "slow"}, "long": {"provider": "slower"}},
    }
    gateway = Gateway(config, tmp_path)
    short: dict[str, Any] = {}
    long: dict[str, Any] = {}
    threads = [stream_in_thread(gateway, "short", short), stream_in_thread(gateway, "long", long)]
    time.sleep(0.5)
    started = time.monotonic()
    gateway.terminate()
    for thread in threads:
        thread.join(15)
    code = gateway.stop()
    assert code == 0
    assert time.monotonic() - started < 6
    # short: 4 words + role/finish at 100 ms per chunk, done well within the drain timeout
    assert short["data"].endswith(b"data: [DONE]\n\n")
    # long: 3 words * 400 ms... plus role/finish exceeds 1.5 s: ended with an explicit error
    events = [e for e in long["data"].split(b"\n\n") if e]
    assert b"data: [DONE]" not in events
    assert (
        json.loads(events[-1].removeprefix(b"data: "))["error"]["code"] == "gateway_shutting_down"
    )
    assert "ending 1 requests still running" in gateway.logs()


def test_serve_without_config_from_any_directory(tmp_path: Path) -> None:
    gateway = Gateway(None, tmp_path)  # cwd is an empty temp dir, no --config, no RELAY_CONFIG
    try:
        client = openai.OpenAI(base_url=gateway.base_url, api_key="x", max_retries=0)
        assert [m.id for m in client.models.list()][:1] == ["echo"]
    finally:
        gateway.stop()


def test_relay_config_and_server_port_env(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        yaml.safe_dump(
            {"providers": {"e": {"kind": "echo"}}, "models": {"only-me": {"provider": "e"}}}
        )
    )
    gateway = Gateway(None, tmp_path, env={"RELAY_CONFIG": str(path)})
    try:
        client = openai.OpenAI(base_url=gateway.base_url, api_key="x", max_retries=0)
        assert [m.id for m in client.models.list()] == ["only-me"]
    finally:
        gateway.stop()
