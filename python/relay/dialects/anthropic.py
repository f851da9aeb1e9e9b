"""Anthropic's Messages API as an inbound dialect: ``/v1/messages`` and
``/v1/messages/count_tokens``.

Errors use Anthropic's envelope ``{"type": "error", "error": {"type", "message"}}`` with its
error type per status. Streams are ``event: <type>`` + ``data: <json>`` events; there is no
``[DONE]``: ``message_stop`` ends a stream, and it is written here (a provider's own
``message_stop`` is consumed by its mapper, as OpenAI's ``[DONE]`` is), after the usage
``message_delta`` the gateway counted when the provider reported none, and the cost comment.
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

from relay.dialects.base import Dialect
from relay.errors import GatewayError, InvalidRequest
from relay.exchange import Endpoint, Exchange, Usage
from relay.wire.anthropic import (
    KNOWN_ERROR_TYPES,
    CountTokensRequest,
    MessagesRequest,
    error_type_for,
)
from relay.wire.decode import decode_body
from relay.wire.sse import frame

MESSAGE_STOP = frame(b"message_stop", b'{"type":"message_stop"}')
_encode = msgspec.json.encode


class AnthropicDialect(Dialect):
    """``/v1/messages`` (JSON and SSE) and ``/v1/messages/count_tokens`` (JSON)."""

    wire: ClassVar[str] = "anthropic"

    def __init__(self, endpoint: Endpoint, schema: type[Any]) -> None:
        self.endpoint = endpoint
        self._decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(schema)

    def parse(self, ex: Exchange) -> None:
        request = decode_body(self._decoder, ex.body)
        if not request.model:
            raise InvalidRequest("model: must not be empty", param="model")
        if not request.messages:
            raise InvalidRequest("messages: must contain at least one message", param="messages")
        last = len(request.messages) - 1
        for i, message in enumerate(request.messages):
            # Anthropic refuses empty turns, except a final assistant prefill.
            empty = message.content == "" or message.content == []
            if empty and not (message.role == "assistant" and i == last):
                where = f"messages[{i}].content"
                raise InvalidRequest(f"{where}: must not be empty", param=where)
            if isinstance(message.content, list):
                check_blocks(message.content, f"messages[{i}].content")
        if isinstance(request.system, list):
            check_blocks(request.system, "system")
        for i, tool in enumerate(request.tools or ()):
            _check_str(tool, "name", f"tools[{i}]")
        if isinstance(request, MessagesRequest):
            if request.max_tokens < 1:
                raise InvalidRequest(
                    f"max_tokens: expected at least 1, got {request.max_tokens}",
                    param="max_tokens",
                )
            ex.stream = bool(request.stream)
            # A Messages stream always reports its usage: when the provider reported none,
            # the end frames carry the gateway's count.
            ex.client_wants_usage = ex.stream
        ex.request = request
        ex.model = request.model

    def error_body(self, err: GatewayError) -> bytes:
        return _encode({"type": "error", "error": _error(err)})

    def error_frame(self, err: GatewayError, ex: Exchange | None = None) -> bytes:
        return frame(b"error", self.error_body(err))

    def end_frames(self, ex: Exchange, usage_chunk: Usage | None) -> bytes:
        out = b""
        if usage_chunk is not None:
            attempt = ex.answered_by
            stop = attempt.stop_reason if attempt is not None else None
            delta = {
                "type": "message_delta",
                "delta": {"stop_reason": stop or "end_turn", "stop_sequence": None},
                "usage": {
                    "input_tokens": usage_chunk.prompt_tokens,
                    "output_tokens": usage_chunk.completion_tokens,
                    "counted_locally": True,
                },
            }
            out = frame(b"message_delta", _encode(delta))
        if ex.cost_usd is not None:
            out += f": x-relay-cost-usd {ex.cost_usd:.8f}\n\n".encode()
        return out + MESSAGE_STOP


def check_blocks(blocks: list[dict[str, Any]], where: str) -> None:
    """Content blocks have the types a reader relies on: a string ``type``, a string ``text``
    in text blocks, string ids and names and an object ``input`` in ``tool_use``, a string or
    blocks as ``tool_result`` content. Other members pass through unchecked."""
    for j, block in enumerate(blocks):
        here = f"{where}[{j}]"
        kind = block.get("type")
        if not isinstance(kind, str):
            raise InvalidRequest(f"{here}.type: expected a string", param=f"{here}.type")
        if kind == "text":
            _check_str(block, "text", here, required=True)
        elif kind == "tool_use":
            _check_str(block, "id", here)
            _check_str(block, "name", here)
            if "input" in block and not isinstance(block["input"], dict):
                raise InvalidRequest(f"{here}.input: expected an object", param=f"{here}.input")
        elif kind == "tool_result":
            _check_str(block, "tool_use_id", here)
            content = block.get("content")
            if isinstance(content, list):
                nested = f"{here}.content"
                if not all(isinstance(part, dict) for part in content):
                    raise InvalidRequest(f"{nested}: expected an array of blocks", param=nested)
                check_blocks(content, nested)
            elif content is not None and not isinstance(content, str):
                raise InvalidRequest(
                    f"{here}.content: expected a string or an array of blocks",
                    param=f"{here}.content",
                )


def _check_str(obj: dict[str, Any], name: str, where: str, *, required: bool = False) -> None:
    value = obj.get(name)
    if (value is not None or required) and not isinstance(value, str):
        raise InvalidRequest(f"{where}.{name}: expected a string", param=f"{where}.{name}")


def _error(err: GatewayError) -> dict[str, str]:
    # The status decides, unless a provider named a more specific Anthropic type itself
    # (``overloaded_error`` mid-stream, ``billing_error`` on a 400, ...).
    kind = err.type
    if kind not in KNOWN_ERROR_TYPES or kind == "invalid_request_error":
        kind = error_type_for(err.status)
    return {"type": kind, "message": err.message}


ANTHROPIC_DIALECTS: tuple[AnthropicDialect, ...] = (
    AnthropicDialect(Endpoint.MESSAGES, MessagesRequest),
    AnthropicDialect(Endpoint.COUNT_TOKENS, CountTokensRequest),
)
