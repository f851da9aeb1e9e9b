"""The gateway in front of an OpenAI-shaped provider, driven with the real openai SDK.

The provider is a fake, but a real HTTP server speaking OpenAI's wire format (tests/fakes).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import time
from typing import Any

import openai
import pytest

from tests.fakes.openai_upstream import FakeUpstream
from tests.integration.conftest import UPSTREAM_KEY, upstream_config
from tests.integration.gateway import Gateway

MESSAGES: Any = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "hello world"},
]


def sdk(base_url: str, key: str = "client-key-abc") -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=20)


def raw_post(gateway: Gateway, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=20)
    conn.request(
        "POST",
        "/v1/chat/completions",
        body=json.dumps(body),
        headers={"content-type": "application/json"},
    )
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data


def events_of(data: bytes) -> list[bytes]:
    return [e for e in data.split(b"\n\n") if e.strip()]


def last_request(up: FakeUpstream) -> dict[str, Any]:
    calls = [r for r in up.requests() if r["path"].startswith("/v1/")]
    assert calls, "the provider received no request"
    return calls[-1]


def comparable(obj: Any) -> Any:
    data = obj.model_dump()
    data.pop("id", None)
    data.pop("created", None)
    return data


def test_same_objects_as_calling_the_provider_directly(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    direct = sdk(upstream.base_url, UPSTREAM_KEY).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, n=2, seed=7
    )
    via = sdk(gateway.base_url).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, n=2, seed=7
    )
    assert comparable(via) == comparable(direct)
    assert len(via.choices) == 2


def test_stream_same_chunks_as_direct_and_usage_forced_upstream(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    direct = list(
        sdk(upstream.base_url, UPSTREAM_KEY).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True
        )
    )
    via = list(
        sdk(gateway.base_url).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True
        )
    )
    # Upstream was asked for usage although the client was not...
    assert last_request(upstream)["body"]["stream_options"] == {"include_usage": True}
    # ...and the client sees exactly what the provider sends without it.
    assert [comparable(c) for c in via] == [comparable(c) for c in direct]
    assert all(c.choices for c in via)


def test_stream_with_usage_requested(gateway: Gateway, upstream: FakeUpstream) -> None:
    chunks = list(
        sdk(gateway.base_url).chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage is not None
    # the fake counts words: 2+3 and 2+3 for the messages; "Echo: hello world" is 3
    assert (usage.prompt_tokens, usage.completion_tokens) == (10, 3)


def test_unknown_fields_are_forwarded_unchanged(gateway: Gateway, upstream: FakeUpstream) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    extra = {"future_field": {"nested": [1, 2.5, None, "x"]}, "logprobs": True, "top_logprobs": 2}
    reply = sdk(gateway.base_url).chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        tools=tools,  # type: ignore[arg-type]
        tool_choice="required",
        response_format={"type": "json_object"},
        stop=["\n\n"],
        user="u-1",
        extra_body=extra,
    )
    body = last_request(upstream)["body"]
    for key, value in {**extra, "tools": tools, "tool_choice": "required", "user": "u-1"}.items():
        assert body[key] == value
    assert body["response_format"] == {"type": "json_object"}
    calls = reply.choices[0].message.tool_calls
    assert calls is not None and calls[0].function.name == "lookup"
    assert reply.choices[0].finish_reason == "tool_calls"


def test_body_bytes_pass_untouched_when_nothing_changes(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    raw = b'{"messages": [{"role": "user", "content": "caf\\u00e9"}],  "model": "gpt-4o-mini"}'
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=20)
    conn.request(
        "POST", "/v1/chat/completions", body=raw, headers={"content-type": "application/json"}
    )
    assert conn.getresponse().status == 200
    assert last_request(upstream)["raw"].encode("latin-1") == raw


def test_public_model_renamed_upstream_and_headers(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    raw = sdk(gateway.base_url).chat.completions.with_raw_response.create(
        model="renamed", messages=MESSAGES, extra_headers={"x-request-id": "trace-7"}
    )
    recorded = last_request(upstream)
    assert recorded["body"]["model"] == "gpt-4o-mini"
    assert recorded["headers"]["x-request-id"] == "trace-7"
    # the gateway's provider key is used, never the caller's
    assert recorded["headers"]["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert raw.headers["x-request-id"] == "trace-7"
    assert raw.headers["x-relay-provider"] == "fake"
    assert raw.headers["x-relay-model"] == "gpt-4o-mini"
    assert raw.headers["x-upstream-request-id"].startswith("upstream-")
    assert raw.headers["openai-processing-ms"]
    # rate-limit state and organisation describe the gateway's key: not the caller's business
    assert "x-ratelimit-remaining-requests" not in raw.headers
    assert "openai-organization" not in raw.headers
    upstream_ms = float(raw.headers["x-relay-upstream-ms"])
    assert upstream_ms > 0 and float(raw.headers["x-relay-overhead-ms"]) >= 0


def test_cost_from_reported_usage(gateway: Gateway, upstream: FakeUpstream) -> None:
    raw = sdk(gateway.base_url).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES
    )
    usage = raw.parse().usage
    assert usage is not None
    expected = (usage.prompt_tokens * 1.0 + usage.completion_tokens * 2.0) / 1e6
    assert float(raw.headers["x-relay-cost-usd"]) == pytest.approx(expected, abs=1e-9)


def test_no_usage_from_provider_is_counted_locally(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    raw = sdk(gateway.base_url).chat.completions.with_raw_response.create(
        model="no-usage", messages=MESSAGES
    )
    assert raw.parse().usage is None  # the response is the provider's, untouched
    # but the gateway counted it: cost > 0 from prompt and completion tokens
    assert float(raw.headers["x-relay-cost-usd"]) > 0
    status, _, data = raw_post(gateway, {"model": "no-usage", "messages": MESSAGES, "stream": True})
    events = events_of(data)
    assert status == 200 and events[-1] == b"data: [DONE]"
    assert float(events[-2].split()[-1]) > 0  # ": x-relay-cost-usd N"


def test_stream_asking_usage_gets_the_locally_counted_chunk(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    stream = sdk(gateway.base_url).chat.completions.create(
        model="no-usage", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    usage = chunks[-1].usage
    assert usage is not None and chunks[-1].choices == []
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert (usage.model_extra or {}).get("counted_locally") is True


def test_upstream_redirect_is_a_502(gateway: Gateway, upstream: FakeUpstream) -> None:
    status, _, data = raw_post(gateway, {"model": "redirect", "messages": MESSAGES})
    assert status == 502 and "redirect (302)" in json.loads(data)["error"]["message"]


def test_non_utf8_from_provider_is_a_502_or_an_error_event(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    status, _, data = raw_post(gateway, {"model": "bad-utf8", "messages": MESSAGES})
    assert status == 502 and json.loads(data)["error"]["code"] == "upstream_bad_response"
    status, _, data = raw_post(gateway, {"model": "bad-utf8", "messages": MESSAGES, "stream": True})
    events = events_of(data)
    assert status == 200 and b'"ok"' in events[0]
    assert json.loads(events[-1][6:])["error"]["code"] == "upstream_bad_response"
    assert b"[DONE]" not in data


def test_async_sdk_stream_with_split_events(gateway: Gateway, upstream: FakeUpstream) -> None:
    async def go() -> str:
        client = openai.AsyncOpenAI(base_url=gateway.base_url, api_key="k", max_retries=0)
        stream = await client.chat.completions.create(
            model="split-events", messages=MESSAGES, stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        await client.close()
        return text

    direct = sdk(upstream.base_url, UPSTREAM_KEY).chat.completions.create(
        model="split-events", messages=MESSAGES
    )
    assert asyncio.run(go()) == direct.choices[0].message.content


def test_large_response(gateway: Gateway, upstream: FakeUpstream) -> None:
    reply = sdk(gateway.base_url).chat.completions.create(model="big-3000", messages=MESSAGES)
    content = reply.choices[0].message.content
    assert content is not None and len(content.split()) >= 3000


def test_embeddings_and_completions(gateway: Gateway, upstream: FakeUpstream) -> None:
    client = sdk(gateway.base_url)
    vectors = client.embeddings.create(model="gpt-4o-mini", input=["a b", "c"])
    assert [len(d.embedding) for d in vectors.data] == [8, 8]
    assert last_request(upstream)["path"] == "/v1/embeddings"
    text = client.completions.create(model="gpt-4o-mini", prompt="say this")
    assert text.choices[0].text == "Echo: say this"
    stream = list(client.completions.create(model="gpt-4o-mini", prompt="say it", stream=True))
    assert "".join(c.choices[0].text for c in stream if c.choices) == "Echo: say it"


# -- provider errors -----------------------------------------------------------------------------


def test_provider_429_passes_status_and_retry_after(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    with pytest.raises(openai.RateLimitError) as info:
        sdk(gateway.base_url).chat.completions.create(model="error-429", messages=MESSAGES)
    assert info.value.status_code == 429
    assert info.value.response.headers["retry-after"] == "7"
    assert info.value.code == "rate_limit_exceeded"


def test_the_gateways_account_ids_are_scrubbed_from_provider_errors(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    with pytest.raises(openai.RateLimitError) as info:
        sdk(gateway.base_url).chat.completions.create(model="error-429", messages=MESSAGES)
    assert "org-fakeupstream" not in info.value.message
    assert "for gpt-4o-mini in organization [redacted] on requests per min" in info.value.message
    _, _, data = raw_post(
        gateway, {"model": "stream-error-429", "messages": MESSAGES, "stream": True}
    )
    message = assert_cut_with_error_event(data)["message"]
    assert "proj_" not in message and "in project [redacted] on tokens per min" in message

    # With the caller's own key, the account named is the caller's: left as the provider wrote.
    own = sdk(gateway.base_url, key="client-key-own")
    with pytest.raises(openai.RateLimitError) as info:
        own.chat.completions.create(model="own-key-429", messages=MESSAGES)
    assert "in organization org-fakeupstream on" in info.value.message
    with pytest.raises(openai.APIError) as mid_stream:
        list(
            own.chat.completions.create(model="own-key-stream-429", messages=MESSAGES, stream=True)
        )
    assert "in project proj_FakeUpstream0123 on" in mid_stream.value.message


def test_provider_bodies_are_read_within_a_bound_after_decompression(
    fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> None:
    config = upstream_config(fake_upstream, max_upstream_body_bytes=4 * 1024 * 1024)
    config["models"] = {
        name: {"provider": "fake"}
        for name in ("gzip-pad-1", "gzip-pad-8", "gzip-error-0", "gzip-error-2")
    }
    gateway = Gateway(config, tmp_path_factory.mktemp("bounded"))
    try:
        client = sdk(gateway.base_url)
        # 1 MiB once decompressed: within the bound, answered.
        reply = client.chat.completions.create(model="gzip-pad-1", messages=MESSAGES)
        assert reply.choices[0].message.content == "padded"
        # 8 MiB once decompressed (a few KiB on the wire): a 502 that says why.
        with pytest.raises(openai.InternalServerError) as info:
            client.chat.completions.create(model="gzip-pad-8", messages=MESSAGES)
        assert info.value.status_code == 502 and info.value.code == "upstream_bad_response"
        assert "over 4194304 bytes" in info.value.message
        assert "server.max_upstream_body_bytes" in info.value.message
        # Error bodies are small: a compressed error is read, a 2 MiB one is refused.
        with pytest.raises(openai.InternalServerError) as info:
            client.chat.completions.create(model="gzip-error-0", messages=MESSAGES)
        assert info.value.status_code == 500
        with pytest.raises(openai.InternalServerError) as info:
            client.chat.completions.create(model="gzip-error-2", messages=MESSAGES)
        assert info.value.status_code == 502
        assert "answered 500 with an error body over 1048576 bytes" in info.value.message
    finally:
        gateway.stop()


@pytest.mark.parametrize(
    ("model", "error"),
    [("error-400", openai.BadRequestError), ("error-500", openai.InternalServerError)],
)
def test_provider_errors_pass_through(
    gateway: Gateway, upstream: FakeUpstream, model: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        sdk(gateway.base_url).chat.completions.create(model=model, messages=MESSAGES)


def test_callers_own_key_sees_its_account_headers(gateway: Gateway, upstream: FakeUpstream) -> None:
    raw = sdk(gateway.base_url, key="client-key-own").chat.completions.with_raw_response.create(
        model="own-key",
        messages=MESSAGES,
        extra_headers={"OpenAI-Organization": "org-caller", "OpenAI-Project": "proj-caller"},
    )
    recorded = last_request(upstream)
    assert recorded["headers"]["authorization"] == "Bearer client-key-own"
    assert recorded["headers"]["openai-organization"] == "org-caller"
    assert recorded["headers"]["openai-project"] == "proj-caller"
    assert raw.headers["x-ratelimit-remaining-requests"] == "99"
    assert raw.headers["openai-organization"] == "org-of-this-key"


def test_callers_own_bad_key_is_the_callers_401(gateway: Gateway, upstream: FakeUpstream) -> None:
    with pytest.raises(openai.AuthenticationError):
        sdk(gateway.base_url, key="not-a-client-key").chat.completions.create(
            model="own-key", messages=MESSAGES
        )


def test_gateway_key_refused_is_a_502_for_the_operator(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    status, headers, data = raw_post(gateway, {"model": "wrong-key", "messages": MESSAGES})
    assert status == 502
    error = json.loads(data)["error"]
    assert error["code"] == "upstream_auth_failed"
    assert "providers.badkey.api_key" in error["message"]
    assert "x-relay-provider" in headers  # error responses carry the gateway's headers too
    assert "sk-wrong-secret-42" not in data.decode()
    assert "sk-wrong-secret-42" not in gateway.logs()


def test_provider_key_never_reaches_the_client(gateway: Gateway, upstream: FakeUpstream) -> None:
    # The caller's own (wrong) key is echoed masked by the provider: scrubbed before the client.
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=20)
    conn.request(
        "POST",
        "/v1/chat/completions",
        body=json.dumps({"model": "own-key", "messages": MESSAGES}),
        headers={"content-type": "application/json", "authorization": "Bearer sk-wrong-secret-43"},
    )
    response = conn.getresponse()
    text = response.read().decode()
    assert response.status == 401
    assert "sk-wr" not in text and "sk-wrong-secret-43" not in text
    assert "[redacted]" in json.loads(text)["error"]["message"]
    assert not any("sk-" in value for _, value in response.getheaders())
    assert "sk-wrong-secret-43" not in gateway.logs()


def test_non_json_provider_error_page(gateway: Gateway, upstream: FakeUpstream) -> None:
    status, _, data = raw_post(gateway, {"model": "error-html", "messages": MESSAGES})
    error = json.loads(data)["error"]
    assert status == 502 and "provider 'fake' answered 502" in error["message"]


def test_provider_speaking_nonsense_is_502(gateway: Gateway, upstream: FakeUpstream) -> None:
    status, _, data = raw_post(gateway, {"model": "not-json", "messages": MESSAGES})
    assert status == 502 and json.loads(data)["error"]["code"] == "upstream_bad_response"


def test_unreachable_provider_is_502(gateway: Gateway) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        sdk(gateway.base_url).chat.completions.create(model="nowhere", messages=MESSAGES)
    assert info.value.status_code == 502
    assert "could not connect to provider 'unreachable'" in info.value.message


def test_slow_provider_is_504(gateway: Gateway, upstream: FakeUpstream) -> None:
    started = time.monotonic()
    status, _, data = raw_post(gateway, {"model": "slow", "messages": MESSAGES})
    assert status == 504 and json.loads(data)["error"]["code"] == "upstream_timeout"
    assert time.monotonic() - started < 1.4  # read_s is 0.5; the provider would take 1.5


# -- streams that go wrong -----------------------------------------------------------------------


def assert_cut_with_error_event(data: bytes) -> dict[str, Any]:
    events = events_of(data)
    assert b"data: [DONE]" not in events
    assert any(b'"content"' in e for e in events[:-1]), "content was relayed before the cut"
    error: dict[str, Any] = json.loads(events[-1].removeprefix(b"data: "))["error"]
    return error


def test_cut_stream_ends_with_error_event(gateway: Gateway, upstream: FakeUpstream) -> None:
    status, _, data = raw_post(
        gateway, {"model": "cut-stream", "messages": MESSAGES, "stream": True}
    )
    assert status == 200
    assert assert_cut_with_error_event(data)["code"] == "upstream_unreachable"
    with pytest.raises(openai.APIError):
        list(
            sdk(gateway.base_url).chat.completions.create(
                model="cut-stream", messages=MESSAGES, stream=True
            )
        )


def test_provider_error_event_mid_stream(gateway: Gateway, upstream: FakeUpstream) -> None:
    _, _, data = raw_post(gateway, {"model": "stream-error", "messages": MESSAGES, "stream": True})
    error = assert_cut_with_error_event(data)
    assert error["type"] == "server_error"


def test_stalled_stream_ends_after_read_timeout(gateway: Gateway, upstream: FakeUpstream) -> None:
    started = time.monotonic()
    _, _, data = raw_post(gateway, {"model": "stalled", "messages": MESSAGES, "stream": True})
    assert assert_cut_with_error_event(data)["code"] == "upstream_timeout"
    assert time.monotonic() - started < 5
    upstream.wait_for_stats(lambda s: s["active_streams"] == 0, timeout=3.0)


def test_client_disconnect_cancels_the_upstream(gateway: Gateway, upstream: FakeUpstream) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=20)
    body = json.dumps({"model": "long-stream", "messages": MESSAGES, "stream": True})
    conn.request(
        "POST", "/v1/chat/completions", body=body, headers={"content-type": "application/json"}
    )
    response = conn.getresponse()
    assert response.status == 200
    assert response.read1(4096).startswith(b"data: ")
    conn.sock.close()  # type: ignore[union-attr]
    conn.close()
    stats = upstream.wait_for_stats(lambda s: s["cancelled_streams"] >= 1, timeout=3.0)
    assert stats["cancelled_streams"] == 1 and stats["completed_streams"] == 0
    # the worker is fine afterwards
    assert sdk(gateway.base_url).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)


@pytest.mark.parametrize("client", ["h1", "aiohttp"])
def test_both_upstream_clients_relay_answers_streams_and_failures(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory, client: str
) -> None:
    """``server.upstream_client``: the gateway's own client (the default) and aiohttp give the
    client the same answers, streams, timeouts and cut streams."""
    gateway = Gateway(
        upstream_config(upstream, upstream_client=client), tmp_path_factory.mktemp(client)
    )
    try:
        api = sdk(gateway.base_url)
        direct = sdk(upstream.base_url, UPSTREAM_KEY)
        reply = api.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, seed=3)
        assert comparable(reply) == comparable(
            direct.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, seed=3)
        )
        chunks = list(
            api.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text and chunks[-1].choices[0].finish_reason == "stop"
        with pytest.raises(openai.APIStatusError) as slow:  # read_s 0.5 on "impatient"
            api.chat.completions.create(model="slow", messages=MESSAGES)
        assert slow.value.status_code == 504
        assert "first-byte timeout" in slow.value.message
        with pytest.raises(openai.APIError, match="closed the connection in the middle"):
            list(api.chat.completions.create(model="cut-stream", messages=MESSAGES, stream=True))
    finally:
        gateway.stop()
