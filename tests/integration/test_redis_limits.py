"""Limits in Redis through the real gateway: two gateway processes on one Redis keep one limit
exactly; while Redis fails (killed, hanging behind a proxy that stops forwarding, connections
dropped) every request is answered 200 or 429, never a 5xx, and waits at most the timeout;
``/readyz`` stays 200 and says ``"redis": "degraded"``, then ``"ok"`` once the gateway is back
on Redis by itself."""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
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


def redis_config(
    address: str, rpm: int | None = None, timeout_ms: float = TIMEOUT_MS, **limits: Any
) -> dict[str, Any]:
    model: dict[str, Any] = {"provider": "e"}
    if rpm is not None:
        model["limits"] = {"rpm": rpm}
    return {
        "providers": {"e": {"kind": "echo"}},
        "models": {"m": model},
        "redis": {"enabled": True, "address": address, "timeout_ms": timeout_ms},
        "limits": {"on_redis_failure": "local", **limits},
        "database": {"url": "none"},
    }


CHAT = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()


def chat(gateway: Gateway) -> tuple[int, float]:
    """One chat request: its status and how long it took."""
    start = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=30)
    conn.request("POST", "/v1/chat/completions", body=CHAT)
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.status, time.monotonic() - start


def while_failing(
    gateway: Gateway, fail: Callable[[], None], requests: int = 60
) -> list[tuple[int, float]]:
    """``requests`` chat requests from 4 threads, ``fail`` called once a quarter are done."""
    done = threading.Semaphore(0)

    def one(_: int) -> tuple[int, float]:
        result = chat(gateway)
        done.release()
        return result

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(one, i) for i in range(requests)]
        for _ in range(requests // 4):
            done.acquire()
        fail()
        return [f.result() for f in futures]


def readyz(gateway: Gateway) -> tuple[int, dict[str, Any], float]:
    """Status, body and seconds taken of one ``GET /readyz``."""
    start = time.monotonic()
    try:
        with urllib.request.urlopen(gateway.url + "/readyz", timeout=10) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as err:
        status, body = err.code, err.read()
    return status, json.loads(body), time.monotonic() - start


def metric(gateway: Gateway, name: str) -> float:
    """The value of an unlabelled metric in one scrape of ``/metrics``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{gateway.port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    values = [float(line.split()[-1]) for line in text.splitlines() if line.split(" ")[0] == name]
    assert len(values) == 1, (name, values)
    return values[0]


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
        assert metric(gateway, "relay_redis_degraded") == 0
        server.kill()
        assert until(gateway, "degraded") == {"status": "ready", "redis": "degraded"}
        # The metrics say so too (a scrape flushes what the worker counted).
        assert metric(gateway, "relay_redis_degraded") == 1
        assert metric(gateway, "relay_redis_degradations_total") >= 1
        server.start()
        until(gateway, "ok")
        assert metric(gateway, "relay_redis_degraded") == 0
        logs = gateway.logs()
        # Each switch logged once (a loaded machine may add a slow call's switch and back).
        assert logs.count("Redis failed") == logs.count("Redis answers again;") >= 1, logs
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


def assert_answered_in_time(results: list[tuple[int, float]]) -> None:
    statuses = {status for status, _ in results}
    assert statuses <= {200, 429}, results
    slowest = max(took for _, took in results)
    assert slowest < BOUND_S, slowest


def test_two_gateways_on_one_redis_keep_one_limit(tmp_path: Path, server: RedisServer) -> None:
    # A long timeout: Redis must decide every request here, however loaded the machine.
    config = redis_config(server.address, rpm=9, timeout_ms=5000)
    first = Gateway(config, tmp_path, workers=2)
    second = Gateway(config, tmp_path)
    try:
        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(lambda i: chat((first, second)[i % 2])[0], range(30)))
        assert sorted(statuses) == [200] * 9 + [429] * 21
    finally:
        first.stop()
        second.stop()


def test_redis_killed_mid_test_answers_200_or_429_in_time(
    tmp_path: Path, server: RedisServer
) -> None:
    gateway = Gateway(redis_config(server.address, rpm=1000), tmp_path)
    try:
        results = while_failing(gateway, server.kill)
        assert_answered_in_time(results)
        assert [s for s, _ in results] == [200] * len(results)  # local: 1000/min holds them
        until(gateway, "degraded")
        server.start()
        until(gateway, "ok")
        assert chat(gateway)[0] == 200
        logs = gateway.logs()
        assert logs.count("Redis failed") == logs.count("Redis answers again;") >= 1, logs
    finally:
        gateway.stop()


@pytest.mark.parametrize("mode", ["local", "open", "closed"])
def test_redis_hanging_answers_200_or_429_within_the_timeout(
    tmp_path: Path, server: RedisServer, mode: str
) -> None:
    proxy = StallingProxy(server.port)
    config = redis_config(proxy.address, rpm=1000, on_redis_failure=mode)
    gateway = Gateway(config, tmp_path)
    try:
        results = while_failing(gateway, proxy.stall)
        assert_answered_in_time(results)
        if mode == "closed":
            assert results[-1][0] == 429  # refused while Redis hangs
        else:
            assert [s for s, _ in results] == [200] * len(results)
        until(gateway, "degraded")
        proxy.flow()
        until(gateway, "ok")
        assert chat(gateway)[0] == 200
    finally:
        gateway.stop()
        proxy.close()
