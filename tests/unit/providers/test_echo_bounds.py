"""The offline echo provider: what one request can make it do is bounded."""

from __future__ import annotations

import asyncio
import types

import msgspec

from relay.config.model import ProviderConfig
from relay.exchange import Attempt, Deployment, Endpoint, Exchange
from relay.providers.echo import MAX_REPLY_CHARS, EchoProvider

ECHO = EchoProvider("echo", ProviderConfig(kind="echo"))
ATTEMPT = Attempt(Deployment("echo", "echo", "echo"))


def send(body: bytes, *, stream: bool = False) -> object:
    ex = Exchange("req_1", Endpoint.CHAT, body, {}, stream=stream)
    return asyncio.run(ECHO.prepare(ex, ATTEMPT))


def chat(text: str, extra: str = "") -> bytes:
    return (
        msgspec.json.encode({"model": "echo", "messages": [{"role": "user", "content": text}]})[:-1]
        + extra.encode()
        + b"}"
    )


def test_a_long_prompt_is_echoed_up_to_the_reply_limit() -> None:
    response = send(chat("word " * 100_000, ',"n":128'))
    answer = msgspec.json.decode(asyncio.run(response.read()))  # type: ignore[attr-defined]
    assert len(answer["choices"]) == 128
    content = answer["choices"][0]["message"]["content"]
    assert len(content) <= len("You said: ") + MAX_REPLY_CHARS
    assert answer["choices"][0]["finish_reason"] == "length"


def test_short_prompts_are_echoed_whole() -> None:
    answer = msgspec.json.decode(asyncio.run(send(chat("hello there")).read()))  # type: ignore[attr-defined]
    assert answer["choices"][0]["message"]["content"] == "You said: hello there"
    assert answer["choices"][0]["finish_reason"] == "stop"


def test_stream_frames_are_made_as_they_are_sent() -> None:
    response = send(chat("word " * 100_000), stream=True)
    frames = response._frames  # type: ignore[attr-defined]
    assert isinstance(frames, types.GeneratorType)  # not a list of every frame at once

    async def collect() -> list[bytes]:
        return [frame async for frame in response.chunks()]  # type: ignore[attr-defined]

    out = asyncio.run(collect())
    assert out[-1] == b"data: [DONE]\n\n"
    assert len(out) < MAX_REPLY_CHARS  # one frame per echoed word, at most
