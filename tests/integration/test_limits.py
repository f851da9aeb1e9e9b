"""The limits stage through a real ``relay serve``: exact bursts with one and two workers,
callers, tenants and keys from the admin API, ``TOKENS_PER_MINUTE``, tokens reserved then
settled to the real usage (JSON, streamed, cut, abandoned), the 429s of each dialect with
``retry-after`` and ``x-ratelimit-*``, pass-through routes, and no headers when no limit
applies."""

from __future__ import annotations

import http.client
import json
import secrets
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from relay.native import SharedLimitTable, monotonic
from tests.fakes.openai_upstream import FakeUpstream
from tests.integration.conftest import upstream_config
from tests.integration.gateway import Gateway
from tests.integration.tenancy import call, keys_config, ledger_entry

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
ECHO: dict[str, Any] = {"providers": {"e": {"kind": "echo"}}, "models": {"m": {"provider": "e"}}}


def post(
    gateway: Gateway, path: str, body: Any, key: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One POST; the status, the headers (lower-cased names) and the body."""
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=20)
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["authorization"] = f"Bearer {key}"
    conn.request("POST", path, body=json.dumps(body).encode(), headers=headers)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data


def echo_config(**sections: Any) -> dict[str, Any]:
    return {**ECHO, "database": {"url": "none"}, **sections}


def burst(gateway: Gateway, count: int, key: str | None = None) -> list[int]:
    """``count`` requests at once; their statuses."""
    with ThreadPoolExecutor(count) as pool:
        return list(
            pool.map(lambda _: post(gateway, "/v1/chat/completions", CHAT, key)[0], range(count))
        )


@pytest.mark.parametrize("workers", [1, 2])
def test_a_burst_lets_exactly_the_limit_through(tmp_path: Path, workers: int) -> None:
    config = echo_config(
        ratelimit={"enabled": True, "requests_per_second": 0.001, "burst": 7, "scope": "global"}
    )
    gateway = Gateway(config, tmp_path, workers=workers)
    try:
        statuses = burst(gateway, 40)
        assert sorted(statuses) == [200] * 7 + [429] * 33
    finally:
        gateway.stop()


def test_one_request_in_five_seconds_in_both_dialects(tmp_path: Path) -> None:
    config = echo_config(ratelimit={"enabled": True, "requests_per_second": 0.2, "burst": 1})
    gateway = Gateway(config, tmp_path)
    try:
        status, headers, _ = post(gateway, "/v1/chat/completions", CHAT)
        assert status == 200
        assert headers["x-ratelimit-limit-requests"] == "1"
        assert headers["x-ratelimit-remaining-requests"] == "0"
        assert headers["x-ratelimit-reset-requests"] == "5s"
        assert "x-ratelimit-limit-tokens" not in headers
        status, headers, data = post(gateway, "/v1/chat/completions", CHAT)
        assert status == 429 and headers["retry-after"] == "5"
        assert headers["x-ratelimit-remaining-requests"] == "0"
        error = json.loads(data)["error"]
        assert (error["type"], error["code"]) == ("requests", "rate_limit_exceeded")
        assert "0.2 requests per second in bursts of 1" in error["message"]
        messages = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
        status, headers, data = post(gateway, "/v1/messages", messages)
        assert status == 429 and int(headers["retry-after"]) >= 1
        assert "x-ratelimit-reset-requests" in headers
        body = json.loads(data)
        assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error"
    finally:
        gateway.stop()


def test_no_limit_no_headers(tmp_path: Path) -> None:
    gateway = Gateway(echo_config(), tmp_path)
    try:
        status, headers, _ = post(gateway, "/v1/chat/completions", CHAT)
        assert status == 200
        assert not [h for h in headers if h.startswith("x-ratelimit-")]
    finally:
        gateway.stop()


def test_a_tenant_rpm_from_the_admin_api_and_its_key(
    tmp_path: Path, fake_upstream: FakeUpstream
) -> None:
    db = f"sqlite:///{tmp_path / 'relay.db'}"
    gateway = Gateway(keys_config(fake_upstream, db), tmp_path, workers=2)
    try:
        status, tenant = call(gateway, "POST", "/admin/tenants", {"name": "t", "rate_limit_rpm": 3})
        assert status in (200, 201), tenant
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        # A key of the tenant with a lower limit of its own: both apply.
        status, made = call(
            gateway, "POST", "/admin/keys", {"tenant_id": tenant["id"], "rate_limit_rpm": 1}
        )
        assert status in (200, 201), made
        assert post(gateway, "/v1/chat/completions", body, made["api_key"])[0] == 200
        status, _, data = post(gateway, "/v1/chat/completions", body, made["api_key"])
        assert status == 429
        assert "this key may make 1 requests per minute" in json.loads(data)["error"]["message"]
        # The tenant's own key, at once from ten threads: the tenant has 2 of its 3 left.
        key = tenant["api_key"]
        with ThreadPoolExecutor(10) as pool:
            results = list(
                pool.map(lambda _: post(gateway, "/v1/chat/completions", body, key), range(10))
            )
        assert sorted(r[0] for r in results) == [200] * 2 + [429] * 8
        refused = next(r for r in results if r[0] == 429)
        message = json.loads(refused[2])["error"]["message"]
        assert "this tenant may make 3 requests per minute" in message
        assert refused[1]["x-ratelimit-limit-requests"] == "3"
    finally:
        gateway.stop()


def test_tokens_per_minute_from_the_environment(tmp_path: Path) -> None:
    gateway = Gateway(echo_config(), tmp_path, env={"TOKENS_PER_MINUTE": "50"})
    try:
        big = {**CHAT, "max_tokens": 100}
        status, headers, data = post(gateway, "/v1/chat/completions", big)
        assert status == 429 and headers["retry-after"] == "60"
        error = json.loads(data)["error"]
        assert (error["type"], error["code"]) == ("tokens", "rate_limit_exceeded")
        assert "lower max_tokens" in error["message"] and "50 tokens per minute" in error["message"]
        small = {**CHAT, "max_tokens": 10}
        statuses = []
        for _ in range(10):
            status, headers, _ = post(gateway, "/v1/chat/completions", small)
            statuses.append(status)
            assert headers["x-ratelimit-limit-tokens"] == "50"
        assert statuses[0] == 200 and 429 in statuses
        assert headers["x-ratelimit-reset-tokens"].endswith("s")
        # Counting tokens generates none: not refused for tokens when they are spent.
        count = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        status, _, data = post(gateway, "/v1/messages/count_tokens", count)
        assert status == 200, data
    finally:
        gateway.stop()


def test_a_passthrough_route_is_counted(tmp_path: Path, fake_upstream: FakeUpstream) -> None:
    config = upstream_config(fake_upstream)
    config["routing"] = {"passthrough_provider": "fake"}
    config["database"] = {"url": "none"}
    config["ratelimit"] = {"enabled": True, "requests_per_second": 0.01, "burst": 1}
    gateway = Gateway(config, tmp_path)
    try:
        body = {"model": "gpt-4o-mini", "prompt": "a cat"}
        status, headers, _ = post(gateway, "/v1/images/generations", body)
        assert status == 200 and headers["x-ratelimit-remaining-requests"] == "0"
        status, headers, data = post(gateway, "/v1/images/generations", body)
        assert status == 429 and json.loads(data)["error"]["code"] == "rate_limit_exceeded"
    finally:
        gateway.stop()


# -- reservations and settlement --------------------------------------------------------------

TPM = 600  # a token every 0.1 s: a request's own time is a small fraction of one token


def cell_tokens(table: SharedLimitTable, cell: str, since: float) -> float:
    """Tokens the cell holds charged since ``since`` (an empty cell at that time)."""
    tat = table.tat(cell)
    assert tat is not None
    return (tat - since) / (60.0 / TPM)


def settled(table: SharedLimitTable, cell: str, since: float, reserved: float) -> float:
    """Wait for the settlement (what the cell holds moves off the reservation)."""
    deadline = time.monotonic() + 10
    while True:
        held = cell_tokens(table, cell, since)
        if abs(held - reserved) > 1 or time.monotonic() > deadline:
            return held
        time.sleep(0.02)


@pytest.fixture
def tokens_gateway(tmp_path: Path, fake_upstream: FakeUpstream) -> Any:
    db = f"sqlite:///{tmp_path / 'relay.db'}"
    config = keys_config(fake_upstream, db)
    # The first call fails, the retry answers: one settlement, with the retry's usage.
    config["models"]["retried"] = {
        "provider": "fake",
        "model": f"fault-500-1-limits{secrets.token_hex(4)}",
        "retries": {"max": 1, "backoff_base_s": 0.01, "backoff_max_s": 0.05},
    }
    gateway = Gateway(config, tmp_path)
    try:
        [segment] = Path("/dev/shm").glob(f"relay-limits-{gateway.process.pid}-*")
        yield gateway, SharedLimitTable.attach(segment.name)
    finally:
        gateway.stop()


def new_tenant(gateway: Gateway, name: str) -> tuple[str, str]:
    status, tenant = call(
        gateway, "POST", "/admin/tenants", {"name": name, "tokens_per_minute": TPM}
    )
    assert status in (200, 201), tenant
    return f"t:{tenant['id']}:tpm", tenant["api_key"]


def raw_stream(gateway: Gateway, body: Any, key: str, rid: str, *, read_all: bool) -> bytes:
    """A streamed request over a bare socket; with ``read_all`` False, leave after the first
    content (an abandoned stream)."""
    payload = json.dumps(body).encode()
    sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=20)
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        + f"authorization: Bearer {key}\r\nx-request-id: {rid}\r\n".encode()
        + f"content-length: {len(payload)}\r\nconnection: close\r\n\r\n".encode()
        + payload
    )
    got = b""
    while chunk := sock.recv(65536):
        got += chunk
        if not read_all and b'"content":"' in got.split(b"\r\n\r\n", 1)[-1]:
            break
    sock.close()
    return got


@pytest.mark.parametrize(
    ("model", "stream", "read_all"),
    [
        ("gpt-4o-mini", False, True),
        ("gpt-4o-mini", True, True),
        ("cut-stream", True, True),
        ("stall-mid-stream", True, False),
        ("error-500", False, True),
        ("retried", True, True),
    ],
    ids=["json", "streamed", "cut", "abandoned", "failed", "retried"],
)
def test_tokens_are_reserved_then_settled_to_the_real_usage(
    tokens_gateway: Any, model: str, stream: bool, read_all: bool
) -> None:
    gateway, table = tokens_gateway
    cell, key = new_tenant(gateway, f"tokens-{model}")
    max_tokens = 200
    body = {
        "model": model,
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": "one two three four five six seven"}],
        "stream": stream,
    }
    rid = f"req-{model}-{stream}"
    since = monotonic()
    if stream:
        raw_stream(gateway, body, key, rid, read_all=read_all)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=20)
        conn.request(
            "POST",
            "/v1/chat/completions",
            body=json.dumps(body).encode(),
            headers={"authorization": f"Bearer {key}", "x-request-id": rid},
        )
        response = conn.getresponse()
        response.read()
        assert response.getheader("x-ratelimit-limit-tokens") == str(TPM)
        reserved_left = int(response.getheader("x-ratelimit-remaining-tokens"))
        conn.close()
        assert reserved_left < TPM - max_tokens  # the reservation: prompt + max_tokens
    entry = ledger_entry(gateway, rid)
    real = entry["prompt_tokens"] + entry["completion_tokens"]
    if model == "error-500":
        assert real == 0
    else:
        assert entry["completion_tokens"] > 0
    if model == "retried":
        assert len(entry["attempts"]) == 2, entry
    held = settled(table, cell, since, reserved=real + max_tokens)
    if model == "error-500":  # every token given back: the cell is empty
        assert table.tat(cell) <= monotonic()
        return
    # The cell holds the real usage, charged a little after ``since`` (well under a token).
    assert real - 1e-6 <= held < real + 1, (held, real, entry)


def test_every_route_is_limited(tmp_path: Path) -> None:
    config = echo_config(
        ratelimit={"enabled": True, "requests_per_second": 0.001, "burst": 100, "scope": "global"}
    )
    gateway = Gateway(config, tmp_path, env={"TOKENS_PER_MINUTE": "100000"})
    try:
        calls = [
            ("/v1/chat/completions", {**CHAT, "max_completion_tokens": 20}, 20),
            ("/v1/completions", {"model": "m", "prompt": "hi", "max_tokens": 20}, 20),
            ("/v1/embeddings", {"model": "m", "input": "hello world"}, 0),
            ("/v1/messages", {"model": "m", "max_tokens": 20, "messages": CHAT["messages"]}, 20),
            ("/v1/responses", {"model": "m", "input": "hi", "max_output_tokens": 20}, 20),
        ]
        for n, (path, body, completion) in enumerate(calls):
            status, headers, data = post(gateway, path, body)
            assert status == 200, (path, data)
            assert headers["x-ratelimit-remaining-requests"] == str(99 - n), path
            assert headers["x-ratelimit-limit-tokens"] == "100000", path
            reserved = 100000 - int(headers["x-ratelimit-remaining-tokens"])
            # The prompt's tokens and the completion's maximum (and what the requests before
            # used, not regained yet: the settlement test measures the reservation exactly).
            assert completion < reserved < completion + 100, (path, reserved)
    finally:
        gateway.stop()


def test_callers_by_their_own_credential_and_the_providers_headers_replaced(
    tmp_path: Path, fake_upstream: FakeUpstream
) -> None:
    config = upstream_config(fake_upstream)
    config["database"] = {"url": "none"}
    body = {"model": "own-key", "messages": [{"role": "user", "content": "hi"}]}
    plain = Gateway(config, tmp_path)
    try:  # without a gateway limit, the provider's own pass (the caller's key was used)
        status, headers, _ = post(plain, "/v1/chat/completions", body, "client-key-a")
        assert status == 200 and headers["x-ratelimit-remaining-requests"] == "99"
    finally:
        plain.stop()
    config["ratelimit"] = {"enabled": True, "requests_per_second": 0.01, "burst": 1}
    gateway = Gateway(config, tmp_path)
    try:
        status, headers, _ = post(gateway, "/v1/chat/completions", body, "client-key-a")
        assert status == 200 and headers["x-ratelimit-remaining-requests"] == "0"
        assert headers["x-ratelimit-limit-requests"] == "1"
        assert post(gateway, "/v1/chat/completions", body, "client-key-a")[0] == 429
        # Another credential is another caller.
        assert post(gateway, "/v1/chat/completions", body, "client-key-b")[0] == 200
    finally:
        gateway.stop()
