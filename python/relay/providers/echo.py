"""The offline ``echo`` provider: deterministic answers in OpenAI's exact wire format.

It exists so anyone can try the gateway without a key, and so tests and benches have a provider
that needs no network. It answers ``You said: <last user text>``, streams one word per chunk as
real SSE (role chunk, content chunks, finish chunk, usage chunk, ``[DONE]``), and reports usage
counted with the real tokenizer.

What one request can cost is bounded: the echoed text is cut at ``MAX_REPLY_CHARS`` (finish
reason ``length``, as a model stops at its output limit), the dialects bound ``n`` and the
number of embedding inputs, and stream frames are built as they are sent, not all at once.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import struct
import time
from collections.abc import AsyncGenerator, Iterable, Iterator, Mapping
from typing import Any

import msgspec

from relay.exchange import Attempt, Endpoint, Exchange
from relay.native import count_off_loop, counter_for
from relay.providers.openai_wire import OpenAIWire
from relay.providers.translate import anthropic_to_openai
from relay.upstream import UpstreamResponse
from relay.wire.decode import decode_json

_ENCODING = "o200k_base"
_EMBEDDING_DIMENSIONS = 16
# The longest text echoed back; the rest is cut as a model's output limit would cut it.
MAX_REPLY_CHARS = 4096
_JSON = {"content-type": "application/json"}
_SSE = {"content-type": "text/event-stream"}
_encode = msgspec.json.encode


class EchoResponse:
    """An in-memory response with the same interface as an HTTP one."""

    __slots__ = ("_body", "_delay", "_frames", "headers", "status")

    def __init__(
        self, body: bytes = b"", frames: Iterable[bytes] | None = None, delay_s: float = 0.0
    ) -> None:
        self.status = 200
        self.headers: Mapping[str, str] = _SSE if frames is not None else _JSON
        self._body = body
        self._frames: Iterable[bytes] = frames if frames is not None else ()
        self._delay = delay_s

    async def read(self) -> bytes:
        return self._body

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        for frame in self._frames:
            if self._delay:
                await asyncio.sleep(self._delay)
            yield frame

    def close(self) -> None:
        self._frames = ()

    def release(self) -> None:
        self._frames = ()


class EchoProvider(OpenAIWire):
    """Answers locally; see the module docstring."""

    kind = "echo"

    async def prepare(self, ex: Exchange, attempt: Attempt) -> UpstreamResponse:
        endpoint, body = ex.endpoint, ex.body
        if endpoint is Endpoint.COUNT_TOKENS:
            return await anthropic_to_openai.count_tokens(ex, attempt)
        if endpoint is Endpoint.MESSAGES:  # an Anthropic client: answer its chat translation
            body = anthropic_to_openai.request(ex, attempt, provider=self.name, kind=self.kind)
            endpoint = Endpoint.CHAT
        request: dict[str, Any] = decode_json(body)
        model = attempt.deployment.upstream_model
        if endpoint is Endpoint.EMBEDDINGS:
            return EchoResponse(await count_off_loop(len(body), _embeddings, request, model))
        counter = counter_for(_ENCODING)
        # Counted off the loop when large, like every local count (``native.count_off_loop``).
        if endpoint is Endpoint.CHAT:
            prompt_tokens = await count_off_loop(len(body), counter.count_chat, body)
            echoed = _last_user_text(request.get("messages"))
            if ex.endpoint is Endpoint.MESSAGES:  # for the translated stream's message_start
                attempt.prompt_tokens = prompt_tokens
        else:
            prompt = request.get("prompt")
            echoed = prompt if isinstance(prompt, str) else " ".join(map(str, prompt or []))
            prompt_tokens = await count_off_loop(len(echoed), counter.count, echoed)
        finish = "stop"
        if len(echoed) > MAX_REPLY_CHARS:
            echoed, finish = echoed[:MAX_REPLY_CHARS], "length"
        words = ("You said: " + (echoed or "nothing")).split(" ")
        limit = request.get("max_completion_tokens") or request.get("max_tokens")
        if isinstance(limit, int) and 0 < limit < len(words):
            words, finish = words[:limit], "length"
        requested_n = request.get("n")
        n = requested_n if isinstance(requested_n, int) and requested_n > 0 else 1
        created = int(time.time())
        ident = ("chatcmpl-" if endpoint is Endpoint.CHAT else "cmpl-") + ex.request_id[-24:]
        text = " ".join(words)
        completion_tokens = await count_off_loop(len(text), counter.count, text) * n
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        shape = _Shape(endpoint is Endpoint.CHAT, ident, created, model)
        if not ex.stream:
            return EchoResponse(shape.whole(text, finish, n, usage))
        delay = self.config.chunk_delay_ms / 1000.0
        return EchoResponse(frames=shape.frames(words, finish, n, usage), delay_s=delay)


class _Shape:
    """Builds chat or legacy-completion objects and chunks."""

    def __init__(self, chat: bool, ident: str, created: int, model: str) -> None:
        self.chat, self.ident, self.created, self.model = chat, ident, created, model

    def whole(self, text: str, finish: str, n: int, usage: dict[str, int]) -> bytes:
        if self.chat:
            choices: list[dict[str, Any]] = [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": finish,
                }
                for i in range(n)
            ]
            obj = "chat.completion"
        else:
            choices = [
                {"index": i, "text": text, "logprobs": None, "finish_reason": finish}
                for i in range(n)
            ]
            obj = "text_completion"
        return self._object(obj, choices, usage)

    def frames(
        self, words: list[str], finish: str, n: int, usage: dict[str, int]
    ) -> Iterator[bytes]:
        """The stream's frames, each built when it is sent."""
        if self.chat:
            yield self._chunk(
                [self._choice(i, {"role": "assistant", "content": ""}) for i in range(n)]
            )
        for position, word in enumerate(words):
            piece = word if position == 0 else " " + word
            yield self._chunk([self._choice(i, {"content": piece}, text=piece) for i in range(n)])
        yield self._chunk([self._choice(i, {}, finish=finish) for i in range(n)])
        yield self._chunk([], usage)
        yield b"data: [DONE]\n\n"

    def _choice(
        self, index: int, delta: dict[str, Any], *, text: str = "", finish: str | None = None
    ) -> dict[str, Any]:
        if self.chat:
            return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {"index": index, "text": text, "logprobs": None, "finish_reason": finish}

    def _chunk(self, choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> bytes:
        obj = "chat.completion.chunk" if self.chat else "text_completion"
        return b"data: " + self._object(obj, choices, usage) + b"\n\n"

    def _object(
        self, obj: str, choices: list[dict[str, Any]], usage: dict[str, int] | None
    ) -> bytes:
        return _encode(
            {
                "id": self.ident,
                "object": obj,
                "created": self.created,
                "model": self.model,
                "system_fingerprint": "relay-echo",
                "choices": choices,
                "usage": usage,
            }
        )


def _last_user_text(messages: Any) -> str:
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return " ".join(
                part["text"]
                for part in content
                if isinstance(part, dict) and isinstance(part.get("text"), str)
            )
    return ""


def _embeddings(request: dict[str, Any], model: str) -> bytes:
    raw = request.get("input")
    inputs: list[Any] = (
        raw if isinstance(raw, list) and raw and not isinstance(raw[0], int) else [raw]
    )
    counter = counter_for(_ENCODING)
    data, tokens = [], 0
    for index, item in enumerate(inputs):
        text = item if isinstance(item, str) else " ".join(map(str, item or []))
        tokens += counter.count(text) if isinstance(item, str) else len(item or [])
        vector = _vector(text)
        embedding: Any = vector
        if request.get("encoding_format") == "base64":
            # What the openai SDK asks for by default: little-endian float32, base64.
            embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    return _encode(
        {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


def _vector(text: str) -> list[float]:
    """A deterministic unit vector derived from the text's hash."""
    digest = hashlib.sha256(text.encode()).digest()
    values = [v / 32768.0 for v in struct.unpack(f"<{_EMBEDDING_DIMENSIONS}h", digest)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]
