"""OpenAI's chat completions, legacy completions and embeddings as inbound dialects."""

from __future__ import annotations

import time
from typing import Any, ClassVar

import msgspec

from relay.dialects.base import Dialect
from relay.errors import GatewayError, InvalidRequest
from relay.exchange import Endpoint, Exchange, Usage
from relay.wire.decode import decode_body
from relay.wire.openai import ChatRequest, CompletionRequest, EmbeddingRequest

DONE_FRAME = b"data: [DONE]\n\n"
_encode = msgspec.json.encode

# Parameters that multiply the work of one request, bounded as OpenAI bounds them: choices
# per request, candidates per legacy completion, inputs per embeddings request.
MAX_CHOICES = 128
MAX_BEST_OF = 20
MAX_EMBEDDING_INPUTS = 2048


class OpenAIDialect(Dialect):
    """``/v1/chat/completions``, ``/v1/completions`` and ``/v1/embeddings``."""

    wire: ClassVar[str] = "openai"

    def __init__(self, endpoint: Endpoint, schema: type[Any]) -> None:
        self.endpoint = endpoint
        self._decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(schema)
        self._chunk_object = (
            "chat.completion.chunk" if endpoint is Endpoint.CHAT else "text_completion"
        )

    def parse(self, ex: Exchange) -> None:
        request = decode_body(self._decoder, ex.body)
        ex.request = request
        # None or "": routing sends it to routing.default_model, or answers 400.
        ex.model = request.model or ""
        if self.endpoint is Endpoint.EMBEDDINGS:
            _check_embedding_input(request.input)
            return
        ex.stream = bool(request.stream)
        options = request.stream_options
        ex.client_wants_usage = bool(options and options.include_usage)
        if self.endpoint is Endpoint.CHAT and not request.messages:
            raise InvalidRequest("messages: must contain at least one message", param="messages")
        _check_range("n", request.n, 1, MAX_CHOICES)
        if self.endpoint is Endpoint.COMPLETIONS:
            _check_range("best_of", request.best_of, 0, MAX_BEST_OF)

    def error_body(self, err: GatewayError) -> bytes:
        return _encode(
            {
                "error": {
                    "message": err.message,
                    "type": err.type,
                    "param": err.param,
                    "code": err.code,
                }
            }
        )

    def error_frame(self, err: GatewayError, ex: Exchange | None = None) -> bytes:
        return b"data: " + self.error_body(err) + b"\n\n"

    def end_frames(self, ex: Exchange, usage_chunk: Usage | None) -> bytes:
        out = b""
        if usage_chunk is not None:
            out = b"data: " + self._usage_chunk(ex, usage_chunk) + b"\n\n"
        if ex.cost_usd is not None:
            out += f": x-relay-cost-usd {ex.cost_usd:.8f}\n\n".encode()
        return out + DONE_FRAME

    def _usage_chunk(self, ex: Exchange, usage: Usage) -> bytes:
        """The usage-only chunk OpenAI sends last, counted by the gateway (and marked so)."""
        model = ex.deployment.upstream_model if ex.deployment else ex.model
        return _encode(
            {
                "id": "chatcmpl-" + ex.request_id,
                "object": self._chunk_object,
                "created": int(time.time()),
                "model": model,
                "choices": [],
                "usage": {
                    "prompt_tokens": usage.prompt_tokens,
                    "completion_tokens": usage.completion_tokens,
                    "total_tokens": usage.total_tokens,
                    "counted_locally": True,
                },
            }
        )


def _check_range(name: str, value: int | None, low: int, high: int) -> None:
    if value is not None and not low <= value <= high:
        raise InvalidRequest(f"{name}: expected {low} to {high}, got {value}", param=name)


def _check_embedding_input(value: str | list[Any]) -> None:
    """``input``: a string, or an array of strings, of token ids, or of token-id arrays (one
    kind throughout, as OpenAI requires), of at most ``MAX_EMBEDDING_INPUTS`` entries."""
    if isinstance(value, str):
        return
    if not value:
        raise InvalidRequest("input: must not be an empty array", param="input")
    if len(value) > MAX_EMBEDDING_INPUTS:
        raise InvalidRequest(
            f"input: at most {MAX_EMBEDDING_INPUTS} entries, got {len(value)}", param="input"
        )
    kind = type(value[0])
    for i, item in enumerate(value):
        if type(item) is not kind:
            expected = {str: "a string", int: "a token id", list: "an array of token ids"}[kind]
            raise InvalidRequest(
                f"input[{i}]: expected {expected} like input[0] (one kind of input per request)",
                param=f"input[{i}]",
            )


OPENAI_DIALECTS: tuple[OpenAIDialect, ...] = (
    OpenAIDialect(Endpoint.CHAT, ChatRequest),
    OpenAIDialect(Endpoint.COMPLETIONS, CompletionRequest),
    OpenAIDialect(Endpoint.EMBEDDINGS, EmbeddingRequest),
)
