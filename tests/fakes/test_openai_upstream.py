"""Tests of the fake OpenAI upstream, driven by the real ``openai`` SDK (and raw sockets)."""

from __future__ import annotations

import json
import socket
import struct
import time
from collections.abc import Iterator

import openai
import pytest
from openai.types.chat import ChatCompletionMessageFunctionToolCall, ChatCompletionMessageParam

from .openai_upstream import FakeUpstream, make_fake_upstream_fixture

pytestmark = pytest.mark.integration

upstream = make_fake_upstream_fixture(scope="module")

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello world"}]


@pytest.fixture
def client(upstream: FakeUpstream) -> Iterator[openai.OpenAI]:
    upstream.reset()
    with openai.OpenAI(
        base_url=upstream.base_url, api_key="sk-test-upstream", max_retries=0, timeout=10
    ) as sdk:
        yield sdk


def raw_post(upstream: FakeUpstream, path: str, body: bytes, timeout: float = 5.0) -> bytes:
    """POST over a bare socket and return everything the server sent until it closed."""
    request = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer sk-test-upstream\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body
    with socket.create_connection(("127.0.0.1", upstream.port), timeout=timeout) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def test_chat_non_stream(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": "be brief"}, *HELLO],
        n=2,
    )
    assert raw.headers["x-request-id"].startswith("upstream-")
    assert raw.headers["x-ratelimit-remaining-requests"] == "99"
    assert "openai-processing-ms" in raw.headers
    completion = raw.parse()
    assert completion.id.startswith("chatcmpl-")
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o-mini"
    assert [c.message.content for c in completion.choices] == ["Echo: hello world"] * 2
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    # (2 + 3) + (2 + 3) prompt words+overhead; 3 words x 2 choices.
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (10, 6)
    assert completion.usage.total_tokens == 16
    assert completion.usage.completion_tokens_details is not None
    assert completion.usage.completion_tokens_details.reasoning_tokens == 0

    [recorded] = upstream.requests()
    assert recorded["path"] == "/v1/chat/completions"
    assert recorded["method"] == "POST"
    assert recorded["headers"]["authorization"] == "Bearer sk-test-upstream"
    assert recorded["body"]["n"] == 2
    assert json.loads(recorded["raw"]) == recorded["body"]


def test_chat_stream_with_usage(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=HELLO,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: hello world"
    assert chunks[-2].choices[0].finish_reason == "stop"
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None
    assert (usage_chunk.usage.prompt_tokens, usage_chunk.usage.completion_tokens) == (5, 3)
    assert all("usage" in c.model_fields_set and c.usage is None for c in chunks[:-1])


def test_chat_stream_without_usage(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True))
    assert len(chunks) == 5  # role, 3 words, finish
    assert all(c.choices for c in chunks)
    assert all("usage" not in c.model_fields_set for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Echo: hello world"


def test_split_events_reassemble(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="split-events",
            messages=[{"role": "user", "content": "héllo wörld ✓"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "Echo: héllo wörld ✓"
    )
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4


def test_completions(client: openai.OpenAI) -> None:
    completion = client.completions.create(model="gpt-4o-mini", prompt="one two three")
    assert completion.object == "text_completion"
    assert completion.choices[0].text == "Echo: one two three"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (3, 4)
    chunks = list(client.completions.create(model="big-50", prompt="x", stream=True))
    assert len("".join(c.choices[0].text for c in chunks).split()) == 50


def test_embeddings_base64_and_float(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    default = client.embeddings.create(model="text-embedding-3-small", input=["a b", "c"])
    assert [recorded["body"]["encoding_format"] for recorded in upstream.requests()] == ["base64"]
    assert [len(d.embedding) for d in default.data] == [8, 8]
    assert default.usage.prompt_tokens == 3
    floats = client.embeddings.create(
        model="text-embedding-3-small", input=["a b", "c"], encoding_format="float"
    )
    assert [d.embedding for d in floats.data] == [d.embedding for d in default.data]
    # float32-exact values survive the base64 round trip bit for bit
    packed = struct.pack("<8f", *floats.data[0].embedding)
    assert list(struct.unpack("<8f", packed)) == floats.data[0].embedding


def test_rate_limit_error(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as excinfo:
        client.chat.completions.create(model="error-429", messages=HELLO)
    assert excinfo.value.status_code == 429
    assert excinfo.value.response.headers["retry-after"] == "7"
    assert excinfo.value.code == "rate_limit_exceeded"
    assert excinfo.value.type == "requests"


def test_auth(upstream: FakeUpstream) -> None:
    with (
        openai.OpenAI(base_url=upstream.base_url, api_key="sk-wrong", max_retries=0) as bad,
        pytest.raises(openai.AuthenticationError, match=r"sk-wr\*\*\*ng"),
    ):
        bad.models.list()
    with openai.OpenAI(base_url=upstream.base_url, api_key="client-key-42", max_retries=0) as own:
        assert "gpt-4o-mini" in [m.id for m in own.models.list()]


def test_cut_stream(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    received: list[str] = []
    with pytest.raises(Exception):  # noqa: B017 - the transport error type is the SDK's business
        for chunk in client.chat.completions.create(
            model="cut-stream", messages=HELLO, stream=True
        ):
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "Echo: hello world "

    body = json.dumps({"model": "cut-stream", "messages": HELLO, "stream": True}).encode()
    data = raw_post(upstream, "/v1/chat/completions", body)
    assert data.startswith(b"HTTP/1.1 200")
    assert data.count(b"data: ") == 4
    assert b"[DONE]" not in data
    assert not data.endswith(b"0\r\n\r\n")  # no terminating chunk: the body is incomplete


def test_stream_error_event(client: openai.OpenAI) -> None:
    received: list[str] = []
    with pytest.raises(openai.APIError, match="server had an error"):
        for chunk in client.chat.completions.create(
            model="stream-error", messages=HELLO, stream=True
        ):
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "Echo: hello "


def test_tool_call_stream_assembles(client: openai.OpenAI) -> None:
    tools: list[openai.types.chat.ChatCompletionToolParam] = [
        {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    ]
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=HELLO, tools=tools, tool_choice="required", stream=True
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in stream:
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        for delta in choice.delta.tool_calls or []:
            call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            call["id"] += delta.id or ""
            if delta.function:
                call["name"] += delta.function.name or ""
                call["arguments"] += delta.function.arguments or ""
    assert finish == "tool_calls"
    assert list(calls) == [0]
    assert calls[0]["id"] == "call_1" and calls[0]["name"] == "lookup"
    assert json.loads(calls[0]["arguments"]) == {"x": 1}

    completion = client.chat.completions.create(
        model="gpt-4o-mini", messages=HELLO, tools=tools, tool_choice="required"
    )
    message = completion.choices[0].message
    assert message.content is None and completion.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls is not None
    [made] = message.tool_calls
    assert isinstance(made, ChatCompletionMessageFunctionToolCall)
    assert (made.id, made.function.name, made.function.arguments) == (
        "call_1",
        "lookup",
        '{"x": 1}',
    )


def test_client_disconnect_is_counted(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    stream = client.chat.completions.create(model="long-stream", messages=HELLO, stream=True)
    for _, _chunk in zip(range(5), stream, strict=False):
        pass
    assert upstream.stats()["active_streams"] == 1
    started = time.monotonic()
    stream.close()
    stats = upstream.wait_for_stats(lambda s: s["cancelled_streams"] == 1, timeout=2.0)
    assert stats == {"cancelled_streams": 1, "completed_streams": 0, "active_streams": 0}
    assert time.monotonic() - started < 1.0

    stalled = client.chat.completions.create(model="stall-mid-stream", messages=HELLO, stream=True)
    assert len([c for _, c in zip(range(3), stalled, strict=False)]) == 3
    stalled.close()
    upstream.wait_for_stats(lambda s: s["cancelled_streams"] == 2, timeout=2.0)


def test_errors_over_raw_http(upstream: FakeUpstream) -> None:
    data = raw_post(upstream, "/v1/nope", b"{}")
    assert data.startswith(b"HTTP/1.1 404") and b"Invalid URL (POST /v1/nope)" in data
    data = raw_post(upstream, "/v1/chat/completions", b"{not json")
    assert data.startswith(b"HTTP/1.1 400") and b"could not parse the JSON body" in data
    data = raw_post(upstream, "/v1/chat/completions", b'{"model": "error-html", "messages": []}')
    assert data.startswith(b"HTTP/1.1 502") and b"text/html" in data
