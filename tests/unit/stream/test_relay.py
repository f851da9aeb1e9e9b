"""The stream relay: usage stripping, the commit point, cut streams, re-framing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import msgspec
import pytest

from relay.dialects import OPENAI_DIALECTS
from relay.errors import GatewayError, UpstreamStatusError, UpstreamUnreachable
from relay.exchange import Attempt, Deployment, Endpoint, Exchange
from relay.providers.openai_wire import OpenAIStreamMapper
from relay.stream.relay import StreamRelay

CHAT = OPENAI_DIALECTS[0]
DEPLOYMENT = Deployment("p", "m", "m")


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

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        for piece in self.pieces:
            yield piece

    def close(self) -> None:
        self.closed = True

    def release(self) -> None:  # the stream ended: for these fakes, as closed
        self.closed = True


class Client:
    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.opened = 0

    async def send_bytes(self, data: bytes) -> None:
        self.sent.append(data)


def sse(*datas: bytes) -> bytes:
    return b"".join(b"data: " + d + b"\n\n" for d in datas)


def relay_for(
    pieces: list[bytes],
    client: Client,
    *,
    wants_usage: bool = False,
    settle: Any = None,
    hooks: tuple[Any, ...] = (),
) -> tuple[Exchange, Upstream, StreamRelay]:
    ex = Exchange(
        "r",
        Endpoint.CHAT,
        b"{}",
        {},
        dialect=CHAT,
        model="m",
        stream=True,
        client_wants_usage=wants_usage,
    )
    attempt = Attempt(DEPLOYMENT)
    ex.attempts.append(attempt)
    upstream = Upstream(pieces)
    mapper = OpenAIStreamMapper("p", strip_usage=not wants_usage)

    async def open_client() -> Client:
        client.opened += 1
        return client

    async def no_settle(e: Exchange) -> None:
        if attempt.usage is not None:
            e.usage = attempt.usage

    def stream_error(raw: bytes) -> GatewayError:
        return UpstreamStatusError(502, msgspec.json.decode(raw)["message"])

    relay = StreamRelay(
        ex, attempt, upstream, mapper, stream_error, open_client, settle or no_settle, hooks
    )
    return ex, upstream, relay


def run(pieces: list[bytes], *, wants_usage: bool) -> tuple[Exchange, Client, Upstream]:
    client = Client()
    ex, upstream, relay = relay_for(pieces, client, wants_usage=wants_usage)
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
    assert ex.attempts[0].text is not None and ex.attempts[0].text() == "Hello world"


def test_nothing_is_committed_before_content() -> None:
    """A stream that dies after only the role chunk is a plain error (retryable)."""
    client = Client()
    _, upstream, relay = relay_for([sse(chunk(role=True))], client)
    with pytest.raises(UpstreamUnreachable):
        asyncio.run(relay.run())
    assert client.opened == 0 and upstream.closed and not relay.committed


def test_frames_held_before_content_are_bounded() -> None:
    """A provider that sends only empty chunks cannot make the gateway hold them without end:
    past HELD_LIMIT bytes the stream commits and they go to the client."""
    from relay.stream.relay import HELD_LIMIT

    empty = sse(chunk(role=True))
    reads = [empty] * (2 * HELD_LIMIT // len(empty))
    client = Client()
    _, _, relay = relay_for(reads, client)
    asyncio.run(relay.run())  # committed, so the cut ends with an error event, not a raise
    assert relay.committed and client.opened == 1
    out = b"".join(client.sent)
    assert out.startswith(empty * 10) and out.count(empty) == len(reads)
    assert b'"code":"upstream_unreachable"' in out.rsplit(b"\n\n", 2)[-2]


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


def test_non_utf8_event_after_commit_ends_with_error_event() -> None:
    ex, client, _ = run(
        [sse(chunk("a")), b'data: {"choices":[{"delta":{"content":"\xff"}}]}\n\n'],
        wants_usage=False,
    )
    out = b"".join(client.sent)
    assert b"data: [DONE]" not in out and ex.truncated
    error = msgspec.json.decode(out.rstrip(b"\n").split(b"\n\n")[-1][6:])["error"]
    assert error["code"] == "upstream_bad_response"


def test_a_failing_hook_ends_the_stream_with_the_error_event() -> None:
    class Exploding:
        def on_event(self, ex: Exchange, event: bytes) -> bytes:
            if b"second" in event:
                raise RuntimeError("hook bug")
            return event

        def on_end(self, ex: Exchange) -> bytes:
            return b""

    client = Client()
    body = [sse(chunk("first")), sse(chunk("second")), sse(b"[DONE]")]
    ex, _, relay = relay_for(body, client, hooks=(Exploding(),))
    asyncio.run(relay.run())
    out = b"".join(client.sent)
    assert b"first" in out and b"second" not in out and b"[DONE]" not in out
    assert ex.truncated and b"stream_failed" in out


def test_a_failing_settle_ends_the_stream_with_the_error_event() -> None:
    async def broken(e: Exchange) -> None:
        raise KeyError("accounting bug")

    client = Client()
    ex, _, relay = relay_for([sse(chunk("x"), b"[DONE]")], client, settle=broken)
    asyncio.run(relay.run())
    out = b"".join(client.sent)
    assert b"[DONE]" not in out and b"stream_failed" in out and ex.truncated


class Upper:
    def on_event(self, ex: Exchange, event: bytes) -> bytes:
        return event.replace(b"hello", b"HELLO")

    def on_end(self, ex: Exchange) -> bytes:
        return b""


def test_hooks_can_transform_frames() -> None:
    client = Client()
    _, _, relay = relay_for([sse(chunk("hello"), b"[DONE]")], client, hooks=(Upper(),))
    asyncio.run(relay.run())
    assert b"HELLO" in b"".join(client.sent)


class Recorder:
    """Keeps every event it sees in the exchange's state for this hook."""

    def on_event(self, ex: Exchange, event: bytes) -> bytes:
        ex.state_of(self, list).append(event)
        return event

    def on_end(self, ex: Exchange) -> bytes:
        ex.state_of(self, list).append(b"<end>")
        return b""


def test_hooks_see_each_event_whole_however_the_network_splits_them() -> None:
    """Three events in one read, then one event split across three reads: the hook sees four
    whole frames, each once, in order, then the end."""
    one_read = sse(chunk("a"), chunk("b"), chunk("c"))
    split = sse(chunk("d"))
    reads = [one_read, split[:7], split[7:20], split[20:], sse(b"[DONE]")]
    client, recorder = Client(), Recorder()
    ex, _, relay = relay_for(reads, client, hooks=(recorder,))
    asyncio.run(relay.run())
    seen = ex.state_of(recorder, list)
    assert seen[-1] == b"<end>"
    texts = [
        msgspec.json.decode(e[len(b"data: ") : -2])["choices"][0]["delta"]["content"]
        for e in seen[:-1]
    ]
    assert texts == ["a", "b", "c", "d"]
    assert all(e.startswith(b"data: ") and e.endswith(b"\n\n") for e in seen[:-1])


class HoldUntilEnd:
    """Holds every event back and releases them all at the end (a restorer waiting for the
    rest of a placeholder holds like this)."""

    def on_event(self, ex: Exchange, event: bytes) -> bytes:
        ex.state_of(self, list).append(event)
        return b""

    def on_end(self, ex: Exchange) -> bytes:
        return b"".join(ex.state_of(self, list))


def test_held_events_are_flushed_before_the_end_frames_and_pass_later_hooks() -> None:
    client = Client()
    reads = [sse(chunk("hello"), chunk(" world"), b"[DONE]")]
    _, _, relay = relay_for(reads, client, hooks=(HoldUntilEnd(), Upper()))
    asyncio.run(relay.run())
    out = b"".join(client.sent)
    assert out.index(b"HELLO") < out.index(b" world") < out.index(b"data: [DONE]")
    assert b"hello" not in out


def test_held_events_are_flushed_before_the_error_event_of_a_cut_stream() -> None:
    client = Client()
    reads = [sse(chunk("kept")), b'data: {"choices":[{"delta":{"content":"\xff"}}]}\n\n']
    ex, _, relay = relay_for(reads, client, hooks=(HoldUntilEnd(),), wants_usage=False)
    asyncio.run(relay.run())
    out = b"".join(client.sent)
    assert ex.truncated and out.index(b"kept") < out.index(b"upstream_bad_response")


def test_the_attempt_answers_at_the_commit_point() -> None:
    client = Client()
    ex, _, relay = relay_for([sse(chunk("x"), b"[DONE]")], client)
    attempt = ex.attempts[0]
    assert ex.answer is None
    asyncio.run(relay.run())
    assert ex.answer is attempt


def test_cost_comment_precedes_done() -> None:
    async def settle(e: Exchange) -> None:
        e.cost_usd = 0.5

    client = Client()
    _, _, relay = relay_for(
        [sse(chunk("x"), chunk(empty=True, usage=USAGE), b"[DONE]")], client, settle=settle
    )
    asyncio.run(relay.run())
    assert b"".join(client.sent).endswith(b": x-relay-cost-usd 0.50000000\n\ndata: [DONE]\n\n")


def test_gateway_error_type_is_exported() -> None:
    assert issubclass(UpstreamUnreachable, GatewayError)


def test_events_before_a_bad_one_in_the_same_read_still_reach_the_client() -> None:
    bad = b'data: {"choices":[{"delta":{"content":"\xff"}}]}\n\n'
    ex, client, _ = run([sse(chunk("before")) + bad], wants_usage=False)
    out = b"".join(client.sent)
    assert b"before" in out and ex.truncated and b"[DONE]" not in out
    assert b"upstream_bad_response" in out


def test_a_long_streams_text_is_counted_as_it_arrives_not_kept() -> None:
    """The relay keeps at most a block of text, whatever the stream's length; what it dropped
    was counted, and the counts add up to the whole text's."""
    from relay.native import counter_for
    from relay.stream.tally import BLOCK_CHARS

    piece = " the quick brown fox jumps over the lazy dog" * 90  # ~4 KB per event
    events = 3 * BLOCK_CHARS // len(piece)
    reads = [sse(chunk(role=True))] + [sse(chunk(piece))] * events + [sse(b"[DONE]")]
    ex, _, _ = run(reads, wants_usage=False)
    attempt = ex.attempts[0]
    assert attempt.text is not None and len(attempt.text()) <= BLOCK_CHARS
    counter = counter_for("o200k_base")
    assert attempt.text_tokens > 0
    assert attempt.text_tokens + counter.count(attempt.text()) == counter.count(piece * events)
