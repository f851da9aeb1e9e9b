"""OpenAI's Responses API as an inbound dialect: ``POST /v1/responses``.

Errors use OpenAI's envelope. Streams are ``event: <type>`` + ``data: <json>`` events, each
with a ``sequence_number``; there is no ``[DONE]``. A stream passed through from a provider's
own Responses API ends with that provider's ``response.completed`` (or ``incomplete``/
``failed``), after which only the cost comment is written here. A translated stream ends here:
the cost comment, then ``response.completed`` (``response.incomplete`` when the output was cut
short) carrying the whole Response with the usage the gateway settled. A failure after the
commit point is an ``error`` event numbered after the last event sent, and nothing after it.
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

from relay.dialects.base import Dialect
from relay.dialects.openai import OPENAI_DIALECTS
from relay.errors import GatewayError, InvalidRequest
from relay.exchange import Endpoint, Exchange, Usage
from relay.wire.decode import decode_body
from relay.wire.responses import ResponsesRequest
from relay.wire.sse import frame, frame_parts

_DECODER = msgspec.json.Decoder(ResponsesRequest)
_encode = msgspec.json.encode


class ResponsesDialect(Dialect):
    """``/v1/responses`` (JSON and SSE)."""

    wire: ClassVar[str] = "responses"

    def __init__(self) -> None:
        self.endpoint = Endpoint.RESPONSES

    def parse(self, ex: Exchange) -> None:
        request: ResponsesRequest = decode_body(_DECODER, ex.body)
        if isinstance(request.input, list):
            for i, item in enumerate(request.input):
                _check_item(item, f"input[{i}]")
        for i, tool in enumerate(request.tools or ()):
            _check_strings(tool, ("type", "name"), f"tools[{i}]")
        ex.request = request
        # None or "": routing sends it to routing.default_model, or answers 400.
        ex.model = request.model or ""
        ex.stream = bool(request.stream)

    def error_body(self, err: GatewayError) -> bytes:
        return OPENAI_DIALECTS[0].error_body(err)

    def error_frame(self, err: GatewayError, ex: Exchange | None = None) -> bytes:
        draft = ex.translation if ex is not None else None
        seq = draft.next_seq() if draft is not None else 0
        event = {
            "type": "error",
            "code": err.code or err.type,
            "message": err.message,
            "param": err.param,
            "sequence_number": seq,
        }
        return frame(b"error", _encode(event))

    def end_frames(self, ex: Exchange, usage_chunk: Usage | None) -> bytes:
        out = b""
        if ex.cost_usd is not None:
            out = f": x-relay-cost-usd {ex.cost_usd:.8f}\n\n".encode()
        draft = ex.translation
        if draft is None or not draft.translated:
            return out  # the provider's own response.completed was relayed
        response = draft.response(ex, ex.usage)
        kind = b"response.completed" if draft.status == "completed" else b"response.incomplete"
        seq = str(draft.next_seq()).encode()
        # Joined once: the Response holds the whole answer, and is not copied per piece.
        data = (b'{"type":"', kind, b'","sequence_number":', seq, b',"response":', response, b"}")
        return b"".join((out, *frame_parts(kind, *data)))


def _check_item(item: dict[str, Any], where: str) -> None:
    """An input item's ``type`` and ``role``, and its content parts' ``type``, are strings
    when present (the rest of an item is checked by whoever reads it, a translator naming the
    item, or the provider)."""
    _check_strings(item, ("type", "role"), where)
    content = item.get("content")
    if isinstance(content, list):
        for j, part in enumerate(content):
            here = f"{where}.content[{j}]"
            if not isinstance(part, dict):
                raise InvalidRequest(f"{here}: expected an object", param=here)
            _check_strings(part, ("type",), here)


def _check_strings(obj: dict[str, Any], names: tuple[str, ...], where: str) -> None:
    for name in names:
        value = obj.get(name)
        if value is not None and not isinstance(value, str):
            here = f"{where}.{name}"
            raise InvalidRequest(f"{here}: expected a string, got {_kind(value)}", param=here)


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


RESPONSES_DIALECTS: tuple[ResponsesDialect, ...] = (ResponsesDialect(),)
