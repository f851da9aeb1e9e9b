"""The Response a translated Responses request answers with, built from a chat completion.

A :class:`Draft` is the Response under construction for one request (``Exchange.translation``):
its id, the request's settings echoed back, the output items, the numbering of stream events,
and what is stored for ``previous_response_id``. :func:`from_completion` fills it from a chat
completion (JSON answers); :mod:`responses_stream` fills it event by event.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import msgspec
from msgspec import Struct

from relay.errors import UpstreamProtocolError
from relay.exchange import Attempt, Exchange, Usage
from relay.ids import new_id as unique_id
from relay.providers.translate.common import encode
from relay.wire.openai import WireUsage, usage_from_wire
from relay.wire.responses import ResponsesRequest, usage_json

_MEMBERS = msgspec.json.Decoder(dict[str, msgspec.Raw])
# Request members a Response echoes back as the client sent them (null when absent).
_ECHOED = ("instructions", "metadata", "temperature", "top_p", "max_output_tokens")
# And those it carries only when sent: OpenAI's schema has them as strings, never null.
_ECHOED_IF_SENT = ("user", "safety_identifier", "prompt_cache_key")
# Chat finish reasons that leave a Response incomplete, and why.
INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def new_id(prefix: str) -> str:
    """An output item's id (``msg_``, ``fc_``): unique, without a system call."""
    return unique_id(prefix)


class Draft:
    """The Response being built for one translated request."""

    __slots__ = (
        "chat",
        "created_at",
        "finish",
        "history",
        "id",
        "output",
        "request",
        "seq",
        "store",
        "translated",
    )

    def __init__(self, request: ResponsesRequest, store: bool) -> None:
        # Unguessable as well as unique: it names a stored conversation.
        self.id = "resp_" + secrets.token_hex(24)
        self.created_at = int(time.time())
        self.request = request
        self.store = store
        # The chat view of the request (an Exchange), once an attempt translates.
        self.chat: Exchange | None = None
        self.translated = False
        # Earlier turns (previous_response_id) and this request's input, as Responses items.
        self.history: list[dict[str, Any]] = []
        self.output: list[dict[str, Any]] = []
        self.finish: str | None = None
        # The sequence number of the next stream event.
        self.seq = 0

    def next_seq(self) -> int:
        """Number one more event."""
        seq = self.seq
        self.seq += 1
        return seq

    @property
    def status(self) -> str:
        """``completed``, or ``incomplete`` when the output was cut short."""
        return "incomplete" if self.finish in INCOMPLETE else "completed"

    def response(self, ex: Exchange, usage: Usage | None, status: str | None = None) -> bytes:
        """The Response object as JSON (``status`` defaults to the outcome)."""
        members = _MEMBERS.decode(ex.body)
        req = self.request
        status = status or self.status
        out: dict[str, Any] = {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "error": None,
            "incomplete_details": (
                {"reason": INCOMPLETE[self.finish or ""]} if status == "incomplete" else None
            ),
            "model": ex.deployment.upstream_model if ex.deployment else ex.model,
            "output": self.output if status != "in_progress" else [],
            "parallel_tool_calls": req.parallel_tool_calls is not False,
            "previous_response_id": req.previous_response_id,
            "store": self.store,
            "text": members.get("text") or {"format": {"type": "text"}},
            "tool_choice": members.get("tool_choice") or "auto",
            "tools": _tools(req.tools),
            "truncation": "disabled",
        }
        if usage is not None and status != "in_progress":  # an object or nothing, never null
            out["usage"] = usage_json(usage)
        for name in _ECHOED:
            out[name] = members.get(name)
        for name in _ECHOED_IF_SENT:
            value = members.get(name)
            if value is not None and bytes(value) != b"null":
                out[name] = value
        out["metadata"] = out["metadata"] or {}
        return encode(out)

    def encoded_conversation(self) -> bytes:
        """Every item of the conversation so far, this answer's output included, as JSON
        (stored for a later ``previous_response_id``)."""
        return encode([*self.history, *self.output])


def _tools(tools: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The request's tools as a Response lists them: a function tool with all its members
    (``strict`` null when the client did not set it: a translated call does not enforce it)."""
    listed = []
    for tool in tools or ():
        if tool.get("type") == "function":
            tool = {
                "type": "function",
                "name": tool.get("name", ""),
                "description": tool.get("description"),
                "parameters": tool.get("parameters"),
                "strict": tool.get("strict"),
            }
        listed.append(tool)
    return listed


# -- a chat completion as output items --------------------------------------------------------


class _Function(Struct, frozen=True):
    name: str | None = None
    arguments: str | None = None


class _ToolCall(Struct, frozen=True):
    id: str | None = None
    function: _Function | None = None


class _Message(Struct, frozen=True):
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[_ToolCall] | None = None


class _Choice(Struct, frozen=True):
    message: _Message | None = None
    finish_reason: str | None = None


class _Completion(Struct, frozen=True):
    choices: list[_Choice] = []
    usage: WireUsage | None = None


_COMPLETION = msgspec.json.Decoder(_Completion)


def message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    """An assistant message output item with one ``output_text`` part."""
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [part] if status == "completed" else [],
    }


def call_item(
    item_id: str, call_id: str, name: str, arguments: str, status: str = "completed"
) -> dict[str, Any]:
    """A ``function_call`` output item."""
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def from_completion(
    ex: Exchange, draft: Draft, provider: str, attempt: Attempt, body: bytes
) -> bytes:
    """The Response for a chat completion; fills ``attempt.usage`` and ``attempt.text``."""
    try:
        completion = _COMPLETION.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        raise UpstreamProtocolError(
            f"provider '{provider}' answered with a body that is not OpenAI JSON"
        ) from None
    attempt.usage = usage_from_wire(completion.usage) if completion.usage is not None else None
    choice = completion.choices[0] if completion.choices else _Choice()
    message = choice.message or _Message()
    output: list[dict[str, Any]] = []
    generated: list[str] = []
    if message.content:
        output.append(message_item(new_id("msg_"), message.content))
        generated.append(message.content)
    if message.refusal:
        part = {"type": "refusal", "refusal": message.refusal}
        item = message_item(new_id("msg_"), "")
        item["content"] = [part]
        output.append(item)
        generated.append(message.refusal)
    for j, call in enumerate(message.tool_calls or ()):
        function = call.function or _Function()
        name, arguments = function.name or "", function.arguments or ""
        output.append(call_item(new_id("fc_"), call.id or f"call_{j}", name, arguments))
        generated += (name, arguments)
    joined = "".join(generated)
    attempt.text = lambda: joined
    draft.output = output
    draft.finish = choice.finish_reason
    return draft.response(ex, attempt.usage)
