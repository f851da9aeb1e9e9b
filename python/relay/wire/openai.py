"""OpenAI request schemas used to validate what clients send, and response probes.

Only the fields the gateway must check or act on are declared; every other field passes
through untouched because the original bytes are what is forwarded.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from msgspec import Struct

from relay.exchange import Usage


class StreamOptions(Struct, frozen=True):
    """``stream_options``: the client's wish for a final usage chunk."""

    include_usage: bool | None = None


class ChatMessage(Struct, frozen=True):
    """One chat message: a role and its content (string, array of parts, or null)."""

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None


class ChatRequest(Struct, frozen=True):
    """``POST /v1/chat/completions``."""

    model: str
    messages: list[ChatMessage]
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    n: int | None = None
    temperature: float | None = None
    top_p: float | None = None


class CompletionRequest(Struct, frozen=True):
    """``POST /v1/completions``."""

    model: str
    prompt: str | list[str | int | list[int]]
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    max_tokens: int | None = None


class EmbeddingRequest(Struct, frozen=True):
    """``POST /v1/embeddings``."""

    model: str
    input: str | list[str | int | list[int]]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = None


class UsageDetails(Struct, frozen=True):
    """``prompt_tokens_details``."""

    cached_tokens: int | None = None


class WireUsage(Struct, frozen=True):
    """The ``usage`` object of a response or final chunk."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: UsageDetails | None = None


class ResponseProbe(Struct, frozen=True):
    """What the gateway reads from a response or chunk: usage, and whether it has choices."""

    usage: WireUsage | None = None
    choices: list[msgspec.Raw] | None = None
    error: dict[str, Any] | None = None


class ErrorBody(Struct, frozen=True):
    """An OpenAI error envelope as an upstream sends it."""

    error: dict[str, Any]


def usage_from_wire(wire: WireUsage) -> Usage:
    """The gateway's usage from an OpenAI ``usage`` object."""
    details = wire.prompt_tokens_details
    return Usage(
        prompt_tokens=wire.prompt_tokens,
        completion_tokens=wire.completion_tokens,
        cached_tokens=(details.cached_tokens or 0) if details else 0,
    )


PROBE_DECODER = msgspec.json.Decoder(ResponseProbe)
ERROR_DECODER = msgspec.json.Decoder(ErrorBody)
