"""The stream relay: usage stripping, the commit point, cut streams, re-framing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec
import pytest

from relay.errors import GatewayError, UpstreamUnreachable
from relay.exchange import Attempt, Deployment, Endpoint, Exchange
from relay.stream.relay import StreamRelay, frame


def chunk(
    content: str | None = None,
    *,
    role: bool = False,
    finish: str | None = None,
    usage: dict[str, int] | None = None,
    empty: bool = False,
) -> bytes:
    delta: dict[str, str] = {}
    if role:
        delta = {"role": "assistant", "content": ""}
    if content is not None:
        delta["content"] = content
    choices = [] if empty else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return msgspec.json.encode(
        {"id": "c1", "object": "chat.completion.chunk", "choices": choices, "usage": usage}
    )


USAGE = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}


class Upstream:
    """Bytes as a provider would send them, in the given pieces."""

    status = 200
    headers: dict[str, str] = {}

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces
        self.closed = False

    async def read(self) -> bytes:
        return b"".join(self.pieces)

    async def chunks(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            yield piece

    def close(self) -> None:
        self.closed = True


class Client:
    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.opened = 0

    async def send_bytes(self, data: bytes) -> None:
        self.sent.append(data)


def sse(*datas: bytes) -> bytes:
    return b"".join(b"data: " + d + b"\n\n" for d in datas)


def run(pieces: list[bytes], *, wants_usage: bool) -> tuple[Exchange, Client, Upstream]:
    ex = Exchange(
        "r", Endpoint.CHAT, b"{}", {}, model="m", stream=True, client_wants_usage=wants_usage
    )
    ex.deployment = Deployment("p", "m", "m")
    attempt = Attempt("p", "m")
    upstream, client = Upstream(pieces), Client()

    async def open_client() -> Client:
        client.opened += 1
        return client

    finished: list[Exchange] = []
    relay = StreamRelay(ex, attempt, upstream, open_client, finished.append)
    asyncio.run(relay.run())
    return ex, client, upstream


def test_usage_chunk_is_stripped_when_not_asked_but_recorded() -> None:
    body = sse(
        chunk(role=True),
        chunk("Hi"),
        chunk(finish="stop"),
        chunk(empty=True, usage=USAGE),
        b"[DONE]",
    )
    ex, client, _ = run([body], wants_usage=False)
    out = b"".join(client.sent)
    assert b'"prompt_tokens"' not in out
    assert out.endswith(b"data: [DONE]\n\n")
    assert ex.usage is not None and ex.usage.prompt_tokens == 5 and ex.usage.completion_tokens == 2


def test_usage_chunk_is_kept_when_asked() -> None:
    body = sse(chunk("Hi"), chunk(empty=True, usage=USAGE), b"[DONE]")
    _, client, _ = run([body], wants_usage=True)
    assert b'"prompt_tokens":5' in b"".join(client.sent)


def test_events_split_at_every_byte_are_relayed_whole() -> None:
    body = sse(chunk(role=True), chunk("Hello"), chunk(" world"), b"[DONE]")
    ex, client, _ = run([body[i : i + 1] for i in range(len(body))], wants_usage=True)
    out = b"".join(client.sent)
    assert out == body
    assert client.opened == 1
    assert "".join(ex.completion_parts or ()) == "Hello world"


def test_nothing_is_committed_before_content() -> None:
    """A stream that dies after only the role chunk is a plain error (retryable later)."""
    ex = Exchange("r", Endpoint.CHAT, b"{}", {}, model="m", stream=True)
    upstream, client = Upstream([sse(chunk(role=True))]), Client()

    async def open_client() -> Client:
        client.opened += 1
        return client

    relay = StreamRelay(ex, Attempt("p", "m"), upstream, open_client, lambda _: None)
    with pytest.raises(UpstreamUnreachable):
        asyncio.run(relay.run())
    assert client.opened == 0 and upstream.closed


def test_cut_after_content_ends_with_error_event_and_no_done() -> None:
    ex, client, upstream = run([sse(chunk(role=True), chunk("partial"))], wants_usage=False)
    out = b"".join(client.sent)
    assert b"partial" in out
    assert b"data: [DONE]" not in out
    last = out.rstrip(b"\n").split(b"\n\n")[-1]
    error = msgspec.json.decode(last.removeprefix(b"data: "))["error"]
    assert error["code"] == "upstream_unreachable"
    assert "before it was complete" in error["message"]
    assert ex.truncated and upstream.closed


def test_error_event_from_provider_mid_stream() -> None:
    err = b'{"error":{"message":"overloaded","type":"server_error","param":null,"code":null}}'
    ex, client, _ = run([sse(chunk("a"), err)], wants_usage=False)
    out = b"".join(client.sent)
    assert b"overloaded" in out and b"data: [DONE]" not in out and ex.truncated


def test_cost_comment_precedes_done() -> None:
    ex = Exchange("r", Endpoint.CHAT, b"{}", {}, model="m", stream=True)
    upstream, client = (
        Upstream([sse(chunk("x"), chunk(empty=True, usage=USAGE), b"[DONE]")]),
        Client(),
    )

    async def open_client() -> Client:
        return client

    def finish(e: Exchange) -> None:
        e.cost_usd = 0.5

    asyncio.run(StreamRelay(ex, Attempt("p", "m"), upstream, open_client, finish).run())
    assert b"".join(client.sent).endswith(b": x-relay-cost-usd 0.50000000\n\ndata: [DONE]\n\n")


def test_frame_keeps_event_names_and_multiline_data() -> None:
    assert frame("ping", b"a\nb") == b"event: ping\ndata: a\ndata: b\n\n"


def test_gateway_error_type_is_exported() -> None:
    assert issubclass(UpstreamUnreachable, GatewayError)
