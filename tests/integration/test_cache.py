"""The response cache through the real gateway process, with the openai and anthropic SDKs.

The fake providers count their calls: a hit is a request the provider never saw.
"""

from __future__ import annotations

import http.client
import json
import sqlite3
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from tests.fakes.anthropic_upstream import start_fake_anthropic
from tests.fakes.openai_upstream import FakeUpstream
from tests.integration.conftest import upstream_config
from tests.integration.gateway import Gateway
from tests.services.redis import RedisServer, StallingProxy

pytestmark = pytest.mark.integration

ANTHROPIC_KEY = "sk-ant-test-upstream"
ADMIN_KEY = "admin-secret-cache"


def cache_config(
    up: FakeUpstream, anthropic_url: str | None = None, **cache: Any
) -> dict[str, Any]:
    config = upstream_config(up)
    config["cache"] = {"mode": "deterministic", **cache}
    config["auth"] = {"mode": "none", "admin_key": ADMIN_KEY}
    config["models"]["refusal"] = {"provider": "fake", "pricing": {"input": 1.0, "output": 2.0}}
    config["models"]["any-temp"] = {
        "provider": "fake",
        "model": "gpt-4o-mini",
        "pricing": {"input": 1.0, "output": 2.0},
        "cache": {"mode": "all"},
    }
    if anthropic_url is not None:
        config["providers"]["anthropic"] = {
            "kind": "anthropic",
            "base_url": anthropic_url,
            "api_key": ANTHROPIC_KEY,
        }
        config["models"]["claude"] = {
            "provider": "anthropic",
            "model": "claude-sonnet-4-5",
            "pricing": {"input": 3.0, "output": 15.0},
        }
    return config


@pytest.fixture(scope="module")
def fake_anthropic() -> Iterator[FakeUpstream]:
    with start_fake_anthropic(ANTHROPIC_KEY) as fake:
        yield fake


@pytest.fixture(scope="module")
def gw(
    fake_upstream: FakeUpstream,
    fake_anthropic: FakeUpstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Gateway]:
    gateway = Gateway(
        cache_config(fake_upstream, fake_anthropic.base_url),
        tmp_path_factory.mktemp("cache"),
    )
    yield gateway
    gateway.stop()


def client(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0, timeout=20)


def chat(
    gateway: Gateway,
    text: str,
    *,
    model: str = "gpt-4o-mini",
    stream: bool = False,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> tuple[Any, dict[str, str]]:
    """A chat call with the SDK: (the completion or its chunks, the response headers)."""
    body: dict[str, Any] = {"temperature": 0, **extra}
    raw = client(gateway).chat.completions.with_raw_response.create(
        model=model,
        messages=[{"role": "user", "content": text}],
        stream=stream,
        extra_headers=headers or {},
        **body,
    )
    parsed = raw.parse()
    if stream:
        parsed = list(parsed)
    return parsed, {k.lower(): v for k, v in raw.headers.items()}


def text_of(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_json_miss_then_hit_without_a_provider_call(gw: Gateway, upstream: FakeUpstream) -> None:
    first, h1 = chat(gw, "json hit one")
    second, h2 = chat(gw, "json hit one")
    assert upstream.calls("gpt-4o-mini") == 1
    assert (h1["x-relay-cache"], h2["x-relay-cache"]) == ("miss", "hit")
    assert h2["x-relay-provider"] == "cache" and h2["x-relay-attempts"] == "0"
    assert second.choices[0].message.content == first.choices[0].message.content
    assert second.usage == first.usage
    assert second.id != first.id and second.id.startswith("chatcmpl-")


def test_stream_miss_then_hit_replays_the_events(gw: Gateway, upstream: FakeUpstream) -> None:
    first, h1 = chat(gw, "stream hit two words", stream=True)
    second, h2 = chat(gw, "stream hit two words", stream=True)
    assert upstream.calls("gpt-4o-mini") == 1
    assert (h1["x-relay-cache"], h2["x-relay-cache"]) == ("miss", "hit")
    assert text_of(second) == text_of(first) == "Echo: stream hit two words"
    assert len(second) == len(first)
    assert {c.id for c in second} != {c.id for c in first}
    assert len({c.id for c in second}) == 1
    assert [c.choices[0].finish_reason for c in second] == [
        c.choices[0].finish_reason for c in first
    ]
    # No usage chunk for a client that did not ask; one for a client that does.
    assert all(c.usage is None for c in second)
    asked, h3 = chat(
        gw, "stream hit two words", stream=True, stream_options={"include_usage": True}
    )
    assert h3["x-relay-cache"] == "hit" and upstream.calls("gpt-4o-mini") == 1
    assert asked[-1].choices == [] and asked[-1].usage is not None
    assert asked[-1].usage.completion_tokens == 5


def test_json_from_a_stream_and_a_stream_from_json(gw: Gateway, upstream: FakeUpstream) -> None:
    streamed, _ = chat(gw, "cross shapes a", stream=True)
    answer, h = chat(gw, "cross shapes a")
    assert h["x-relay-cache"] == "hit"
    assert answer.choices[0].message.content == text_of(streamed)
    assert answer.choices[0].finish_reason == "stop" and answer.usage.total_tokens > 0
    answer_b, _ = chat(gw, "cross shapes b")
    chunks, h = chat(gw, "cross shapes b", stream=True)
    assert h["x-relay-cache"] == "hit"
    assert text_of(chunks) == answer_b.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert upstream.calls("gpt-4o-mini") == 2


def test_non_deterministic_requests_bypass(gw: Gateway, upstream: FakeUpstream) -> None:
    for _ in range(2):
        _, h = chat(gw, "warm words", temperature=0.7)
        assert h["x-relay-cache"] == "bypass"
    assert upstream.calls("gpt-4o-mini") == 2
    for _ in range(2):
        _, h = chat(gw, "seeded words", temperature=0.7, seed=7)
    assert h["x-relay-cache"] == "hit"
    for _ in range(2):
        _, h = chat(gw, "several", n=2)
        assert h["x-relay-cache"] == "bypass"
    # mode: all on this model: any temperature is cached
    for _ in range(2):
        _, h = chat(gw, "warm all", model="any-temp", temperature=0.9)
    assert h["x-relay-cache"] == "hit"
    assert upstream.calls("gpt-4o-mini") == 6


def test_errors_and_truncated_streams_are_not_cached(gw: Gateway, upstream: FakeUpstream) -> None:
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            chat(gw, "fails", model="error-500")
    assert upstream.calls("error-500") == 2
    for _ in range(2):
        with pytest.raises(openai.APIError):
            chat(gw, "cut me", model="cut-stream", stream=True)
    assert upstream.calls("cut-stream") == 2
    for _ in range(2):
        with pytest.raises(openai.APIError):
            chat(gw, "broken", model="stream-error", stream=True)
    assert upstream.calls("stream-error") == 2


def test_refusals_are_not_cached(gw: Gateway, upstream: FakeUpstream) -> None:
    for stream in (False, True, False, True):
        answer, h = chat(gw, "refuse this", model="refusal", stream=stream)
        assert h["x-relay-cache"] == "miss"
    assert answer[-2].choices[0].delta.refusal is not None
    assert upstream.calls("refusal") == 4


def test_tool_calls_are_not_cached_by_default(gw: Gateway, upstream: FakeUpstream) -> None:
    tools: Any = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    for _ in range(2):
        answer, h = chat(gw, "call it", tools=tools, tool_choice="required")
        assert answer.choices[0].message.tool_calls
        assert h["x-relay-cache"] == "miss"
    assert upstream.calls("gpt-4o-mini") == 2


def test_tool_calls_are_cached_when_configured(
    fake_upstream: FakeUpstream, upstream: FakeUpstream, tmp_path: Path
) -> None:
    gateway = Gateway(cache_config(fake_upstream, cache_tool_calls=True), tmp_path)
    tools: Any = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    try:
        first, _ = chat(gateway, "call it", tools=tools, tool_choice="required", stream=True)
        answer, h = chat(gateway, "call it", tools=tools, tool_choice="required")
        assert h["x-relay-cache"] == "hit" and upstream.calls("gpt-4o-mini") == 1
        call = answer.choices[0].message.tool_calls[0]
        assert (call.id, call.function.name, call.function.arguments) == ("call_1", "f", '{"x": 1}')
        assert answer.choices[0].finish_reason == "tool_calls"
        again, h = chat(gateway, "call it", tools=tools, tool_choice="required", stream=True)
        assert h["x-relay-cache"] == "hit"
        assert len(again) == len(first)
    finally:
        gateway.stop()


def test_two_tenants_never_share_an_entry(gw: Gateway, upstream: FakeUpstream) -> None:
    # auth.mode none: metadata.tenant names the tenant (metadata is not in the key)
    for tenant in ("acme", "globex", "acme", "globex"):
        _, h = chat(gw, "same for all", metadata={"tenant": tenant})
    assert h["x-relay-cache"] == "hit"
    assert upstream.calls("gpt-4o-mini") == 2


def admin(gateway: Gateway, method: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        gateway.url + path,
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"authorization": f"Bearer {ADMIN_KEY}", "content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=20) as response:
        return json.loads(response.read())


def test_two_tenants_keys_never_share_an_entry(
    fake_upstream: FakeUpstream, upstream: FakeUpstream, tmp_path: Path
) -> None:
    config = cache_config(fake_upstream)
    config["auth"] = {"mode": "keys", "admin_key": ADMIN_KEY}
    del config["providers"]["passthrough"]
    config["models"] = {
        m: c for m, c in config["models"].items() if c.get("provider") != "passthrough"
    }
    gateway = Gateway(config, tmp_path)
    try:
        keys = [
            admin(gateway, "POST", "/admin/tenants", {"name": n})["api_key"] for n in ("a", "b")
        ]
        seen = []
        for key in (*keys, *keys):
            sdk = openai.OpenAI(base_url=gateway.base_url, api_key=key, max_retries=0)
            raw = sdk.chat.completions.with_raw_response.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "identical"}],
                temperature=0,
            )
            seen.append(raw.headers["x-relay-cache"])
        assert seen == ["miss", "miss", "hit", "hit"]
        assert upstream.calls("gpt-4o-mini") == 2
        # A purge of one tenant leaves the other's entry.
        status, body = purge(gateway, "?tenant=a")
        assert status == 200 and body["purged"] == 1
    finally:
        gateway.stop()


def test_forwarded_credentials_never_share_an_entry(
    fake_upstream: FakeUpstream, upstream: FakeUpstream, tmp_path: Path
) -> None:
    # auth.mode passthrough: every caller is tenant "default"; the provider checks its key.
    config = cache_config(fake_upstream)
    config["auth"] = {"mode": "passthrough"}
    gateway = Gateway(config, tmp_path)
    try:
        seen = []
        for key in ("client-key-1", "client-key-2", "client-key-1", "client-key-2"):
            sdk = openai.OpenAI(base_url=gateway.base_url, api_key=key, max_retries=0)
            raw = sdk.chat.completions.with_raw_response.create(
                model="own-key", messages=[{"role": "user", "content": "mine"}], temperature=0
            )
            seen.append(raw.headers["x-relay-cache"])
        assert seen == ["miss", "miss", "hit", "hit"]
        assert upstream.calls("gpt-4o-mini") == 2
        # A key the provider never saw is not answered from another caller's entry.
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(
                base_url=gateway.base_url, api_key="sk-wrong", max_retries=0
            ).chat.completions.create(
                model="own-key", messages=[{"role": "user", "content": "mine"}], temperature=0
            )
    finally:
        gateway.stop()


def test_controls(gw: Gateway, upstream: FakeUpstream) -> None:
    chat(gw, "controlled")
    _, h = chat(gw, "controlled", headers={"cache-control": "no-cache"})
    assert h["x-relay-cache"] == "miss"  # not read; written again
    assert upstream.calls("gpt-4o-mini") == 2
    _, h = chat(gw, "not kept", headers={"cache-control": "no-store"})
    _, h = chat(gw, "not kept")
    assert h["x-relay-cache"] == "miss"
    assert upstream.calls("gpt-4o-mini") == 4
    _, h = chat(gw, "both", headers={"cache-control": "no-cache, no-store"})
    assert h["x-relay-cache"] == "bypass"
    chat(gw, "aged")
    time.sleep(1.1)
    _, h = chat(gw, "aged", headers={"cache-control": "max-age=3600"})
    assert h["x-relay-cache"] == "hit"
    _, h = chat(gw, "aged", headers={"cache-control": "max-age=1"})
    assert h["x-relay-cache"] == "miss"
    chat(gw, "short lived", headers={"x-relay-cache-ttl": "1"})
    time.sleep(1.1)
    _, h = chat(gw, "short lived")
    assert h["x-relay-cache"] == "miss"
    with pytest.raises(openai.BadRequestError, match="x-relay-cache-ttl"):
        chat(gw, "bad ttl", headers={"x-relay-cache-ttl": "soon"})


def test_embeddings_and_completions(gw: Gateway, upstream: FakeUpstream) -> None:
    sdk = client(gw)
    first = sdk.embeddings.with_raw_response.create(model="gpt-4o-mini", input=["a b", "c"])
    second = sdk.embeddings.with_raw_response.create(model="gpt-4o-mini", input=["a b", "c"])
    assert second.headers["x-relay-cache"] == "hit"
    assert second.parse().data[0].embedding == first.parse().data[0].embedding
    done = sdk.completions.with_raw_response.create(
        model="gpt-4o-mini", prompt="say", temperature=0
    )
    again = list(
        sdk.completions.create(model="gpt-4o-mini", prompt="say", temperature=0, stream=True)
    )
    assert "".join(c.choices[0].text for c in again) == done.parse().choices[0].text
    streamed = list(
        sdk.completions.create(model="gpt-4o-mini", prompt="s", temperature=0, stream=True)
    )
    whole = sdk.completions.with_raw_response.create(model="gpt-4o-mini", prompt="s", temperature=0)
    assert whole.headers["x-relay-cache"] == "hit"
    assert whole.parse().choices[0].text == "".join(c.choices[0].text for c in streamed)
    assert whole.parse().choices[0].finish_reason == "stop"
    assert upstream.calls("gpt-4o-mini") == 3


def test_messages_both_ways(gw: Gateway, fake_anthropic: FakeUpstream) -> None:
    fake_anthropic.reset()
    sdk = anthropic.Anthropic(base_url=gw.url, api_key="unused", max_retries=0)
    ask: Any = {"model": "claude", "max_tokens": 50, "extra_body": {"temperature": 0}}
    msgs: Any = [{"role": "user", "content": "hello cache"}]
    first = sdk.messages.with_raw_response.create(messages=msgs, **ask)
    second = sdk.messages.with_raw_response.create(messages=msgs, **ask)
    assert second.headers["x-relay-cache"] == "hit"
    a, b = first.parse(), second.parse()
    assert (
        b.content == a.content and b.id != a.id and b.usage.output_tokens == a.usage.output_tokens
    )
    with sdk.messages.stream(messages=msgs, **ask) as stream:
        final = stream.get_final_message()
    assert final.content[0].text == a.content[0].text  # a stream from the JSON entry
    streamed_msgs: Any = [{"role": "user", "content": "stream first"}]
    with sdk.messages.stream(messages=streamed_msgs, **ask) as stream:
        recorded = stream.get_final_message()
    again = sdk.messages.with_raw_response.create(messages=streamed_msgs, **ask)
    assert again.headers["x-relay-cache"] == "hit"
    assert again.parse().content[0].text == recorded.content[0].text
    assert again.parse().stop_reason == recorded.stop_reason
    with sdk.messages.stream(messages=streamed_msgs, **ask) as stream:
        replayed = stream.get_final_message()
    assert replayed.content == recorded.content and replayed.id != recorded.id
    assert replayed.usage.output_tokens == recorded.usage.output_tokens
    calls = [r for r in fake_anthropic.requests() if r["path"] == "/v1/messages"]
    assert len(calls) == 2
    # An OpenAI client on the Anthropic provider (translated): cached in the client's shape.
    first_chat, _ = chat(gw, "translated", model="claude", stream=True)
    again_chat, h = chat(gw, "translated", model="claude")
    assert h["x-relay-cache"] == "hit"
    assert again_chat.choices[0].message.content == text_of(first_chat)
    calls = [r for r in fake_anthropic.requests() if r["path"] == "/v1/messages"]
    assert len(calls) == 3


def test_the_ledger_records_a_hit_as_free(gw: Gateway, upstream: FakeUpstream) -> None:
    chat(gw, "ledger check", metadata={"tenant": "ledgered"})
    _, h = chat(gw, "ledger check", metadata={"tenant": "ledgered"})
    assert h["x-relay-cache"] == "hit"
    db = Path(gw.log_path).parent / "relay.db"
    rows: list[Any] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(rows) < 2:
        with sqlite3.connect(db) as conn:
            rows = conn.execute(
                "SELECT cache_hit, cost_usd, cost_saved_usd, provider FROM requests "
                "WHERE tenant = 'ledgered' ORDER BY ts"
            ).fetchall()
        time.sleep(0.1)
    (miss_hit, miss_cost, miss_saved, _), (hit, cost, saved, provider) = rows
    assert (miss_hit, miss_saved) == (0, 0) and miss_cost > 0
    assert (hit, cost, provider) == (1, 0, "cache") and saved == pytest.approx(miss_cost)


def purge(gateway: Gateway, query: str = "", key: str = ADMIN_KEY) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=20)
    conn.request("DELETE", "/admin/cache" + query, headers={"authorization": f"Bearer {key}"})
    response = conn.getresponse()
    data = json.loads(response.read())
    conn.close()
    return response.status, data


def test_purge_by_model_and_tenant_and_auth(gw: Gateway, upstream: FakeUpstream) -> None:
    chat(gw, "purge me", metadata={"tenant": "p1"})
    chat(gw, "purge me", metadata={"tenant": "p2"})
    assert purge(gw, "", key="wrong")[0] == 401
    assert purge(gw, "?colour=red")[0] == 400
    status, body = purge(gw, "?tenant=p1")
    assert status == 200 and body["purged"] == 1
    _, h = chat(gw, "purge me", metadata={"tenant": "p1"})
    assert h["x-relay-cache"] == "miss"
    _, h = chat(gw, "purge me", metadata={"tenant": "p2"})
    assert h["x-relay-cache"] == "hit"
    status, body = purge(gw, "?model=gpt-4o-mini")
    assert status == 200 and body["purged"] >= 2
    _, h = chat(gw, "purge me", metadata={"tenant": "p2"})
    assert h["x-relay-cache"] == "miss"


def test_purge_reaches_every_worker(
    fake_upstream: FakeUpstream, upstream: FakeUpstream, tmp_path: Path
) -> None:
    gateway = Gateway(cache_config(fake_upstream), tmp_path, workers=2)
    try:
        # Each worker fills its own memory: enough calls that both answered a hit.
        for _ in range(12):
            _, h = chat(gateway, "every worker")
        assert upstream.calls("gpt-4o-mini") <= 2 and h["x-relay-cache"] == "hit"
        assert purge(gateway)[0] == 200
        before = upstream.calls("gpt-4o-mini")
        seen = [chat(gateway, "every worker")[1]["x-relay-cache"] for _ in range(12)]
        # After the purge, each worker misses once (at most two calls), then hits.
        assert upstream.calls("gpt-4o-mini") - before == seen.count("miss")
        assert 1 <= seen.count("miss") <= 2
    finally:
        gateway.stop()


# -- Redis ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    yield server
    server.destroy()


def redis_gateway(up: FakeUpstream, address: str, tmp: Path, workers: int = 1) -> Gateway:
    config = cache_config(up, backend="redis")
    config["redis"] = {"enabled": False, "address": address}
    return Gateway(config, tmp, workers=workers)


def test_redis_hit_across_workers_and_purge(
    fake_upstream: FakeUpstream, upstream: FakeUpstream, redis_server: RedisServer, tmp_path: Path
) -> None:
    gateway = redis_gateway(fake_upstream, redis_server.address, tmp_path, workers=2)
    try:
        chat(gateway, "redis shared")
        seen = {chat(gateway, "redis shared", stream=True)[1]["x-relay-cache"] for _ in range(6)}
        assert seen == {"hit"} and upstream.calls("gpt-4o-mini") == 1
        keys = redis_server.command("KEYS", "relay:cache:*")
        assert b"relay:cache:" in keys
        assert (
            int(redis_server.command("TTL", keys.split(b"\r\n")[2].decode()).strip(b":\r\n")) > 3000
        )
        assert purge(gateway)[1]["purged"] >= 1
        _, h = chat(gateway, "redis shared")
        assert h["x-relay-cache"] == "miss"
    finally:
        gateway.stop()


def test_redis_killed_or_hanging_is_a_pass_through(
    fake_upstream: FakeUpstream, upstream: FakeUpstream, tmp_path: Path
) -> None:
    server = RedisServer()
    proxy = StallingProxy(server.port)
    gateway = redis_gateway(fake_upstream, proxy.address, tmp_path)
    try:
        chat(gateway, "before trouble")
        _, h = chat(gateway, "before trouble")
        assert h["x-relay-cache"] == "hit"
        proxy.stall()
        for _ in range(3):
            answer, h = chat(gateway, "while hanging")
            assert answer.choices[0].message.content == "Echo: while hanging"
            assert h["x-relay-cache"] == "miss"
        proxy.flow()
        server.kill()
        for _ in range(3):
            answer, h = chat(gateway, "while dead")
            assert answer.choices[0].message.content == "Echo: while dead"
        assert upstream.calls("gpt-4o-mini") == 7
        logs = gateway.logs()
        assert logs.count("the response cache cannot use Redis") == 1
    finally:
        gateway.stop()
        proxy.close()
        server.destroy()


def test_a_hit_counts_against_request_limits_not_token_limits(
    fake_upstream: FakeUpstream, upstream: FakeUpstream, tmp_path: Path
) -> None:
    config = cache_config(fake_upstream)
    config["ratelimit"] = {"enabled": True, "requests_per_second": 0.01, "burst": 6}
    config["limits"] = {"tokens_per_minute": 100}
    gateway = Gateway(config, tmp_path)
    try:
        # Each request reserves its prompt and max_tokens (about 45 tokens of 100): only
        # given back in full does a third one fit.
        seen = [chat(gateway, "limited", max_tokens=40)[1]["x-relay-cache"] for _ in range(6)]
        assert seen == ["miss"] + ["hit"] * 5
        assert upstream.calls("gpt-4o-mini") == 1
        with pytest.raises(openai.RateLimitError, match="requests"):
            chat(gateway, "limited", max_tokens=40)
    finally:
        gateway.stop()


def test_hits_and_misses_reach_the_metrics(gw: Gateway, upstream: FakeUpstream) -> None:
    def counts() -> tuple[float, float]:
        with urllib.request.urlopen(gw.url + "/metrics", timeout=10) as response:
            text = response.read().decode()
        found = {}
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            name = name.replace('{model="gpt-4o-mini"}', "")  # the model chat() asks for
            if name in ("relay_cache_hits_total", "relay_cache_misses_total"):
                found[name] = float(value)
        return found["relay_cache_hits_total"], found["relay_cache_misses_total"]

    hits, misses = counts()
    chat(gw, "counted once")
    chat(gw, "counted once")
    chat(gw, "counted once", temperature=1)  # bypassed: neither
    assert counts() == (hits + 1, misses + 1)
