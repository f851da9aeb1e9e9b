"""Limits in Redis through the real gateway: ``/readyz`` says how Redis is and stays 200 while
it fails (killed, hanging behind a proxy that stops forwarding, connections dropped), and the
gateway returns to Redis by itself."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.gateway import Gateway
from tests.services.redis import RedisServer, StallingProxy

TIMEOUT_MS = 100
# Generous bound on anything that waits on Redis once (the timeout, plus a loaded machine).
BOUND_S = TIMEOUT_MS / 1000 + 1.5


@pytest.fixture
def server() -> Iterator[RedisServer]:
    """A redis-server of the test's own (it gets killed)."""
    server = RedisServer()
    yield server
    server.destroy()


def redis_config(address: str, **limits: Any) -> dict[str, Any]:
    return {
        "providers": {"e": {"kind": "echo"}},
        "models": {"m": {"provider": "e"}},
        "redis": {"enabled": True, "address": address, "timeout_ms": TIMEOUT_MS},
        "limits": {"on_redis_failure": "local", **limits},
        "database": {"url": "none"},
    }


def readyz(gateway: Gateway) -> tuple[int, dict[str, Any], float]:
    """Status, body and seconds taken of one ``GET /readyz``."""
    start = time.monotonic()
    try:
        with urllib.request.urlopen(gateway.url + "/readyz", timeout=10) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as err:
        status, body = err.code, err.read()
    return status, json.loads(body), time.monotonic() - start


def until(gateway: Gateway, redis: str, within_s: float = 15.0) -> dict[str, Any]:
    """Poll ``/readyz`` until it says ``redis``; every answer is a 200 within the bound."""
    deadline = time.monotonic() + within_s
    while True:
        status, body, took = readyz(gateway)
        assert status == 200, body
        assert took < BOUND_S, took
        if body.get("redis") == redis:
            return body
        assert time.monotonic() < deadline, f"/readyz never said redis: {redis}: {body}"
        time.sleep(0.1)


def test_readyz_without_redis_says_nothing_of_it(tmp_path: Path) -> None:
    config = {"providers": {"e": {"kind": "echo"}}, "database": {"url": "none"}}
    gateway = Gateway(config, tmp_path)
    try:
        status, body, _ = readyz(gateway)
        assert (status, body) == (200, {"status": "ready"})
    finally:
        gateway.stop()


def test_readyz_says_degraded_while_redis_is_killed_then_ok(
    tmp_path: Path, server: RedisServer
) -> None:
    gateway = Gateway(redis_config(server.address), tmp_path)
    try:
        assert until(gateway, "ok") == {"status": "ready", "redis": "ok"}
        server.kill()
        assert until(gateway, "degraded") == {"status": "ready", "redis": "degraded"}
        server.start()
        until(gateway, "ok")
        logs = gateway.logs()
        assert logs.count("Redis failed") == 1, logs
        assert "Redis answers again" in logs
    finally:
        gateway.stop()


def test_readyz_answers_within_the_timeout_while_redis_hangs(
    tmp_path: Path, server: RedisServer
) -> None:
    proxy = StallingProxy(server.port)
    gateway = Gateway(redis_config(proxy.address), tmp_path)
    try:
        until(gateway, "ok")
        proxy.stall()
        until(gateway, "degraded")
        proxy.flow()
        until(gateway, "ok")
        proxy.drop()
        # A dropped connection fails one call at most; the pool connects again.
        until(gateway, "ok")
    finally:
        gateway.stop()
        proxy.close()
