"""Ledger rows and provider attempts for every way a request can end, on both databases."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.fakes.openai_upstream import FakeUpstream
from tests.integration.gateway import Gateway
from tests.integration.tenancy import call, keys_config, ledger_entry

MESSAGES: Any = [{"role": "user", "content": "hello world"}]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def setup(
    request: pytest.FixtureRequest,
    fake_upstream: FakeUpstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Gateway, str]]:
    tmp = tmp_path_factory.mktemp("ledger")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'relay.db'}"
    else:
        url = request.getfixturevalue("postgres_server").create_database(f"ledger_{id(tmp)}")
    gateway = Gateway(keys_config(fake_upstream, url), tmp)
    status, tenant = call(gateway, "POST", "/admin/tenants", {"name": "ledger-svc"})
    assert status == 201
    yield gateway, tenant["api_key"]
    gateway.stop()


def client(gateway: Gateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key=key, max_retries=0, timeout=20)


def test_plain_request(setup: tuple[Gateway, str]) -> None:
    gateway, key = setup
    raw = client(gateway, key).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES
    )
    reply = raw.parse()
    entry = ledger_entry(gateway, raw.headers["x-request-id"])
    assert reply.usage is not None
    assert entry["status"] == 200 and entry["error"] is None and not entry["stream"]
    assert (entry["prompt_tokens"], entry["completion_tokens"]) == (
        reply.usage.prompt_tokens, reply.usage.completion_tokens,
    )  # fmt: skip
    assert entry["cost_usd"] == pytest.approx(float(raw.headers["x-relay-cost-usd"]))
    assert (entry["provider"], entry["deployment"], entry["model"]) == (
        "fake",
        "gpt-4o-mini",
        "gpt-4o-mini",
    )
    assert entry["tenant"] == "ledger-svc" and entry["key_prefix"] == key[:14]
    assert entry["latency_ms"] > 0 and entry["ttft_ms"] is None
    [attempt] = entry["attempts"]
    assert attempt["attempt"] == 1 and attempt["status"] == 200 and attempt["ttfb_ms"] is not None
    assert attempt["prompt_tokens"] == reply.usage.prompt_tokens


def test_streamed_request(setup: tuple[Gateway, str]) -> None:
    gateway, key = setup
    with client(gateway, key).chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    ) as response:
        request_id = response.headers["x-request-id"]
        chunks = list(response.parse())
    entry = ledger_entry(gateway, request_id)
    assert chunks and entry["stream"] and entry["status"] == 200 and not entry["truncated"]
    assert entry["completion_tokens"] > 0 and entry["cost_usd"] > 0
    assert 0 < entry["ttft_ms"] <= entry["latency_ms"]


def test_failed_request(setup: tuple[Gateway, str]) -> None:
    gateway, key = setup
    with pytest.raises(openai.InternalServerError) as failed:
        client(gateway, key).chat.completions.create(model="error-500", messages=MESSAGES)
    assert failed.value.response is not None
    entry = ledger_entry(gateway, failed.value.response.headers["x-request-id"])
    assert entry["status"] == 500 and entry["error"]
    [attempt] = entry["attempts"]
    assert attempt["status"] == 500 and attempt["error"]


def test_cut_stream(setup: tuple[Gateway, str]) -> None:
    gateway, key = setup
    with client(gateway, key).chat.completions.with_streaming_response.create(
        model="cut-stream", messages=MESSAGES, stream=True
    ) as response:
        request_id = response.headers["x-request-id"]
        with pytest.raises(openai.APIError):
            list(response.parse())
    entry = ledger_entry(gateway, request_id)
    assert entry["truncated"] and entry["error"] == "upstream_unreachable"
    assert entry["attempts"][0]["error"] == "upstream_unreachable"


def test_client_abandoned_stream(setup: tuple[Gateway, str]) -> None:
    gateway, key = setup
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=20)
    body = json.dumps({"model": "long-stream", "messages": MESSAGES, "stream": True})
    conn.request(
        "POST", "/v1/chat/completions", body=body,
        headers={"content-type": "application/json", "authorization": f"Bearer {key}",
                 "x-request-id": "abandoned-1"},
    )  # fmt: skip
    response = conn.getresponse()
    assert response.read1(4096).startswith(b"data: ")
    conn.sock.close()  # type: ignore[union-attr]
    conn.close()
    entry = ledger_entry(gateway, "abandoned-1")
    assert entry["status"] == 499 and entry["stream"]
    assert entry["completion_tokens"] > 0  # what was relayed before the client left


def test_refusals_are_recorded_and_usage_sums_them(setup: tuple[Gateway, str]) -> None:
    gateway = setup[0]
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=20)
    conn.request(
        "POST", "/v1/chat/completions", body=json.dumps({"model": "gpt-4o-mini", "messages": MESSAGES}),
        headers={"authorization": "Bearer gw-sk-unknown", "x-request-id": "refused-1"},
    )  # fmt: skip
    assert conn.getresponse().status == 401
    entry = ledger_entry(gateway, "refused-1")
    assert entry["status"] == 401 and entry["key_prefix"] is None and entry["attempts"] == []
    status, usage = call(gateway, "GET", "/admin/usage?group_by=tenant,model")
    assert status == 200
    rows = {(r["tenant"], r["model"]): r for r in usage["data"]}
    mini = rows[("ledger-svc", "gpt-4o-mini")]
    assert mini["requests"] >= 2 and mini["prompt_tokens"] > 0
    assert usage["total"]["requests"] == sum(r["requests"] for r in usage["data"])
    status, page = call(gateway, "GET", "/admin/requests?limit=2&tenant=ledger-svc")
    assert status == 200 and len(page["data"]) == 2 and page["has_more"]
    status, nxt = call(
        gateway, "GET", f"/admin/requests?limit=2&tenant=ledger-svc&cursor={page['next_cursor']}"
    )
    assert status == 200
    first = {r["id"] for r in page["data"]}
    assert nxt["data"] and not first & {r["id"] for r in nxt["data"]}
    assert nxt["data"][0]["created_at"] <= page["data"][-1]["created_at"]


def test_client_abandoned_json_request(setup: tuple[Gateway, str]) -> None:
    """Not only streams: a caller that gives up on a slow JSON answer ends the exchange at
    once (its task, and so the upstream request, are cancelled), recorded as a 499."""
    gateway, key = setup
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=20)
    body = json.dumps({"model": "slow-3000", "messages": MESSAGES})
    conn.request(
        "POST", "/v1/chat/completions", body=body,
        headers={"content-type": "application/json", "authorization": f"Bearer {key}",
                 "x-request-id": "abandoned-json-1"},
    )  # fmt: skip
    time.sleep(0.4)  # the gateway is waiting on the provider
    conn.sock.close()  # type: ignore[union-attr]
    conn.close()
    entry = ledger_entry(gateway, "abandoned-json-1")
    assert entry["status"] == 499 and not entry["stream"]
    assert entry["latency_ms"] < 2000  # not the provider's 3 s
