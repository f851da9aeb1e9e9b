"""The embedded default config with the offline echo provider, through the real openai SDK."""

from __future__ import annotations

import asyncio
import http.client
import json
import subprocess

import openai
import pytest

from tests.integration.gateway import Gateway


def client(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0)


def test_chat_completion(echo_gateway: Gateway) -> None:
    reply = client(echo_gateway).chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "Hello, Relay"}]
    )
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.content == "You said: Hello, Relay"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert reply.usage.prompt_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_stream_without_usage_request_has_no_usage_chunk(echo_gateway: Gateway) -> None:
    chunks = list(
        client(echo_gateway).chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "one two three"}], stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "You said: one two three"
    assert all(c.choices for c in chunks), "the usage-only chunk must be stripped"
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_stream_with_usage_matches_non_streamed_usage(echo_gateway: Gateway) -> None:
    messages = [{"role": "user", "content": "count me"}]
    whole = client(echo_gateway).chat.completions.create(model="echo", messages=messages)
    chunks = list(
        client(echo_gateway).chat.completions.create(
            model="echo", messages=messages, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].choices == []
    assert chunks[-1].usage == whole.usage


def test_async_client_stream(echo_gateway: Gateway) -> None:
    async def go() -> str:
        aclient = openai.AsyncOpenAI(base_url=echo_gateway.base_url, api_key="x", max_retries=0)
        stream = await aclient.chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "async hi"}], stream=True
        )
        parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
        await aclient.close()
        return "".join(parts)

    assert asyncio.run(go()) == "You said: async hi"


def test_models_list(echo_gateway: Gateway) -> None:
    ids = [m.id for m in client(echo_gateway).models.list()]
    assert "echo" in ids and "echo-large" in ids


def test_embeddings_default_base64_and_float(echo_gateway: Gateway) -> None:
    c = client(echo_gateway)
    result = c.embeddings.create(model="echo", input=["a", "b"])
    assert len(result.data) == 2 and len(result.data[0].embedding) == 16
    floats = c.embeddings.create(model="echo", input="a", encoding_format="float")
    assert floats.data[0].embedding == pytest.approx(result.data[0].embedding, rel=1e-6)


def test_legacy_completions(echo_gateway: Gateway) -> None:
    reply = client(echo_gateway).completions.create(model="echo", prompt="legacy")
    assert reply.choices[0].text == "You said: legacy"


def test_cost_header_from_prices(echo_gateway: Gateway) -> None:
    raw = client(echo_gateway).chat.completions.with_raw_response.create(
        model="echo-large", messages=[{"role": "user", "content": "price me"}]
    )
    reply = raw.parse()
    assert reply.usage is not None
    expected = (reply.usage.prompt_tokens * 1.0 + reply.usage.completion_tokens * 2.0) / 1e6
    assert float(raw.headers["x-relay-cost-usd"]) == pytest.approx(expected, abs=1e-8)
    assert raw.headers["x-relay-provider"] == "echo"
    assert float(raw.headers["x-relay-overhead-ms"]) >= 0
    assert raw.headers["x-request-id"].startswith("req_")


def test_client_request_id_is_kept(echo_gateway: Gateway) -> None:
    raw = client(echo_gateway).chat.completions.with_raw_response.create(
        model="echo",
        messages=[{"role": "user", "content": "x"}],
        extra_headers={"x-request-id": "my-trace-42"},
    )
    assert raw.headers["x-request-id"] == "my-trace-42"


def test_curl_stream_shows_events_and_done(echo_gateway: Gateway) -> None:
    body = json.dumps(
        {"model": "echo", "stream": True, "messages": [{"role": "user", "content": "curl me"}]}
    )
    out = subprocess.run(
        [
            "curl",
            "-sN",
            "-H",
            "content-type: application/json",
            "-d",
            body,
            echo_gateway.base_url + "/chat/completions",
        ],
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout
    events = [e for e in out.split(b"\n\n") if e.strip()]
    assert events[-1] == b"data: [DONE]"
    assert events[-2].startswith(b": x-relay-cost-usd ")
    assert all(e.startswith(b"data: {") for e in events[:-2])


def test_health_and_readiness(echo_gateway: Gateway) -> None:
    for path in ("/healthz", "/readyz"):
        out = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", echo_gateway.url + path],
            capture_output=True,
            timeout=10,
        )
        assert out.stdout == b"200"


def test_models_retrieve_and_wrong_method(echo_gateway: Gateway) -> None:
    sdk = openai.OpenAI(base_url=echo_gateway.base_url, api_key="x", max_retries=0)
    assert sdk.models.retrieve("echo").id == "echo"
    with pytest.raises(openai.NotFoundError):
        sdk.models.retrieve("nope")
    conn = http.client.HTTPConnection("127.0.0.1", echo_gateway.port, timeout=10)
    conn.request("POST", "/v1/models", body=b"{}")
    response = conn.getresponse()
    assert response.status == 405
    assert json.loads(response.read())["error"]["code"] == "method_not_allowed"
