"""Anthropic Messages API: request schemas used to validate what clients send on /v1/messages,
and probes of what the API answers (messages, stream events, errors).

As with OpenAI, only the fields the gateway checks or translates are declared; the original
bytes are what a pass-through forwards, so undeclared fields travel untouched.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from msgspec import Struct

from relay.wire.usage import Usage

# Anthropic's error type per HTTP status; the other statuses fall back by class.
ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
KNOWN_ERROR_TYPES = frozenset(ERROR_TYPES.values())


def error_type_for(status: int) -> str:
    """Anthropic's ``error.type`` for an HTTP status."""
    known = ERROR_TYPES.get(status)
    if known is not None:
        return known
    return "invalid_request_error" if status < 500 else "api_error"


class MessageParam(Struct, frozen=True):
    """One input message: ``user`` or ``assistant``, a string or an array of content blocks."""

    role: Literal["user", "assistant"]
    content: str | list[dict[str, Any]]


class MessagesRequest(Struct, frozen=True):
    """``POST /v1/messages``."""

    model: str
    messages: list[MessageParam]
    max_tokens: int
    system: str | list[dict[str, Any]] | None = None
    stream: bool | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop_sequences: list[str] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    output_config: dict[str, Any] | None = None


class CountTokensRequest(Struct, frozen=True):
    """``POST /v1/messages/count_tokens``: a message request without ``max_tokens``."""

    model: str
    messages: list[MessageParam]
    system: str | list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    output_config: dict[str, Any] | None = None


class WireUsage(Struct, frozen=True):
    """Anthropic's ``usage``: ``input_tokens`` excludes cache reads and cache writes."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None


def usage_from_wire(wire: WireUsage, base: Usage | None = None) -> Usage:
    """The gateway's usage: every prompt token once, cache reads and writes among them.

    ``base`` is what an earlier event of the same stream reported (``message_start``); the
    counts of ``message_delta`` are cumulative and replace those they carry.
    """
    prev_input = prev_read = prev_write = 0
    completion = 0
    if base is not None:
        prev_read, prev_write = base.cached_tokens, base.cache_write_tokens
        prev_input = base.prompt_tokens - prev_read - prev_write
        completion = base.completion_tokens
    read = prev_read if wire.cache_read_input_tokens is None else wire.cache_read_input_tokens
    write = (
        prev_write if wire.cache_creation_input_tokens is None else wire.cache_creation_input_tokens
    )
    uncached = prev_input if wire.input_tokens is None else wire.input_tokens
    if wire.output_tokens is not None:
        completion = wire.output_tokens
    return Usage(
        prompt_tokens=uncached + read + write,
        completion_tokens=completion,
        cached_tokens=read,
        cache_write_tokens=write,
    )


class Block(Struct, frozen=True):
    """A content block of an answer (text, tool_use, thinking, ...)."""

    type: str
    text: str | None = None
    id: str | None = None
    name: str | None = None
    input: Any = None


class MessageProbe(Struct, frozen=True):
    """A Messages API answer, or the ``message`` of ``message_start``."""

    id: str = ""
    model: str = ""
    content: list[Block] = []
    stop_reason: str | None = None
    stop_sequence: str | None = None
    usage: WireUsage | None = None


class MessageAnswer(MessageProbe, frozen=True, kw_only=True):
    """A non-streamed Messages API answer: ``type`` and ``content`` are required, so that a
    200 with ``{}`` (or any other object) is a bad answer, not an empty completion."""

    type: Literal["message"]
    content: list[Block]


class Delta(Struct, frozen=True):
    """``delta`` of ``content_block_delta`` (text, partial JSON) or ``message_delta`` (stop)."""

    type: str | None = None
    text: str | None = None
    partial_json: str | None = None
    stop_reason: str | None = None
    stop_sequence: str | None = None


class StreamEvent(Struct, frozen=True):
    """Any event of a Messages stream, by its ``type``."""

    type: str
    index: int | None = None
    message: MessageProbe | None = None
    content_block: Block | None = None
    delta: Delta | None = None
    usage: WireUsage | None = None
    # Raw JSON of an ``error`` event's error; empty when absent.
    error: msgspec.Raw = msgspec.Raw()


class ErrorDetail(Struct, frozen=True):
    """``error`` of an Anthropic error envelope."""

    type: str | None = None
    message: str | None = None


class ErrorBody(Struct, frozen=True):
    """``{"type": "error", "error": {"type", "message"}}``."""

    error: ErrorDetail
    type: str | None = None


MESSAGE_DECODER = msgspec.json.Decoder(MessageAnswer)
EVENT_DECODER = msgspec.json.Decoder(StreamEvent)
ERROR_DECODER = msgspec.json.Decoder(ErrorBody)
ERROR_DETAIL_DECODER = msgspec.json.Decoder(ErrorDetail)
