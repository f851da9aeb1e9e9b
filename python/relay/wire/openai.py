"""OpenAI request schemas used to validate what clients send, and response probes.

Only the fields the gateway must check or act on are declared; every other field passes
through untouched because the original bytes are what is forwarded.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from msgspec import Struct

from relay.wire.usage import Usage


class StreamOptions(Struct, frozen=True):
    """``stream_options``: the client's wish for a final usage chunk."""

    include_usage: bool | None = None


class RequestMetadata(Struct, frozen=True):
    """``metadata``: a map of strings; the gateway reads ``tenant`` and ``use_case`` (auth
    modes ``none`` and ``keys`` attribute requests by them), the rest passes through."""

    tenant: str | None = None
    use_case: str | None = None


class FunctionCallParam(Struct, frozen=True):
    """``function`` of an assistant message's tool call: a name and JSON arguments as text."""

    name: str | None = None
    arguments: str | None = None


class ToolCallParam(Struct, frozen=True):
    """One tool call of an assistant message (``function``; other kinds pass through)."""

    id: str | None = None
    type: str | None = None
    function: FunctionCallParam | None = None


class ChatMessage(Struct, frozen=True):
    """One chat message: a role and its content (string, array of parts, or null)."""

    # Vendors add roles of their own (Mistral, Ollama, ...): any role passes through.
    role: str
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[ToolCallParam] | None = None


# The shapes below are declared so that a translator (or the echo provider), which reads the
# whole body, never meets a string where OpenAI's API requires an object or an array: such a
# request is the client's error (a 400 naming the field) on every provider alike.


class FunctionName(Struct, frozen=True):
    """A tool's ``function``: only its name is checked (its schema passes through)."""

    name: str


class ToolParam(Struct, frozen=True):
    """One entry of ``tools`` (``function``; other kinds, such as ``custom``, pass through)."""

    type: str | None = None
    function: FunctionName | None = None


class ToolChoiceParam(Struct, frozen=True):
    """``tool_choice`` as an object (``{"type": "function", "function": {"name": ...}}``)."""

    type: str | None = None
    function: FunctionName | None = None


class ResponseFormatParam(Struct, frozen=True):
    """``response_format``: ``text``, ``json_object`` or ``json_schema``."""

    type: str
    json_schema: dict[str, Any] | None = None


class ChatRequest(Struct, frozen=True, kw_only=True):
    """``POST /v1/chat/completions``."""

    # Optional: a request without one goes to routing.default_model.
    model: str | None = None
    messages: list[ChatMessage]
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    n: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    # Sampling made repeatable: a request with a seed may be cached (``cache.mode``).
    seed: int | None = None
    metadata: RequestMetadata | None = None
    tools: list[ToolParam] | None = None
    tool_choice: str | ToolChoiceParam | None = None
    stop: str | list[str] | None = None
    response_format: ResponseFormatParam | None = None


class CompletionRequest(Struct, frozen=True, kw_only=True):
    """``POST /v1/completions``."""

    # Optional: a request without one goes to routing.default_model.
    model: str | None = None
    prompt: str | list[str | int | list[int]]
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    max_tokens: int | None = None
    n: int | None = None
    best_of: int | None = None
    temperature: float | None = None
    seed: int | None = None
    metadata: RequestMetadata | None = None


class EmbeddingRequest(Struct, frozen=True, kw_only=True):
    """``POST /v1/embeddings``."""

    # Optional: a request without one goes to routing.default_model.
    model: str | None = None
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


class FunctionProbe(Struct, frozen=True):
    """A tool call's function: its name and JSON arguments count as generated text."""

    name: str | None = None
    arguments: str | None = None


class ToolCallProbe(Struct, frozen=True):
    """One tool call of a message or delta (``index`` and ``id`` for translators)."""

    index: int = 0
    id: str | None = None
    function: FunctionProbe | None = None


class DeltaProbe(Struct, frozen=True):
    """A stream chunk's ``delta`` or a response's ``message``: its generated text."""

    content: str | None = None
    tool_calls: list[ToolCallProbe] | None = None
    function_call: FunctionProbe | None = None
    refusal: str | None = None

    def generated_text(self) -> str:
        """Content, refusal, and the names and arguments of tool calls, as the model wrote them."""
        parts = [self.content or "", self.refusal or ""]
        calls = list(self.tool_calls or ())
        if self.function_call is not None:
            calls.append(ToolCallProbe(function=self.function_call))
        for call in calls:
            if call.function is not None:
                parts.append(call.function.name or "")
                parts.append(call.function.arguments or "")
        return "".join(parts)


class ChoiceProbe(Struct, frozen=True):
    """One choice of a response or chunk (chat or legacy completion)."""

    index: int = 0
    delta: DeltaProbe | None = None
    message: DeltaProbe | None = None
    text: str | None = None
    finish_reason: str | None = None

    def generated_text(self) -> str:
        """The text this choice adds to the completion ("" if none)."""
        if self.delta is not None:
            return self.delta.generated_text()
        if self.message is not None:
            return self.message.generated_text()
        return self.text or ""

    def carries_content(self) -> bool:
        """Does the client have to see this (text, tool call, refusal, finish)? The commit point."""
        if self.finish_reason or self.text:
            return True
        delta = self.delta
        return delta is not None and bool(
            delta.content or delta.tool_calls or delta.function_call or delta.refusal
        )


class ResponseProbe(Struct, frozen=True):
    """What the gateway reads from a response or chunk: usage, choices' text, an error."""

    usage: WireUsage | None = None
    choices: list[ChoiceProbe] | None = None
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


class _OpaqueChoice(ChoiceProbe, frozen=True):
    """A choice whose shape the probe does not know: relayed as is, counted as content."""

    def carries_content(self) -> bool:
        return True


class _LooseProbe(Struct, frozen=True):
    usage: WireUsage | None = None
    choices: list[msgspec.Raw] | None = None
    error: dict[str, Any] | None = None


PROBE_DECODER = msgspec.json.Decoder(ResponseProbe)
_LOOSE_DECODER = msgspec.json.Decoder(_LooseProbe)
_ANY_DECODER = msgspec.json.Decoder()
_OPAQUE = _OpaqueChoice()


def probe_response(data: bytes) -> ResponseProbe:
    """Read usage, choices' text and errors from a response body or stream chunk.

    A vendor's extension of the documented shapes (say, content as an array) must not break
    the relay: fields the probe cannot type are treated as opaque content and passed through.
    Raises :class:`msgspec.DecodeError` only when ``data`` is not JSON at all.
    """
    try:
        return PROBE_DECODER.decode(data)
    except msgspec.ValidationError:
        pass
    try:
        loose = _LOOSE_DECODER.decode(data)
    except msgspec.ValidationError:
        _ANY_DECODER.decode(data)
        return ResponseProbe(choices=[_OPAQUE])
    choices: list[ChoiceProbe] | None = (
        None if loose.choices is None else [_OPAQUE] * len(loose.choices)
    )
    return ResponseProbe(usage=loose.usage, choices=choices, error=loose.error)


ERROR_DECODER = msgspec.json.Decoder(ErrorBody)
