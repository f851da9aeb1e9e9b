"""Decode and validate a request body once, for the endpoint it was sent to."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from relay.errors import InvalidRequest
from relay.exchange import Endpoint, Exchange
from relay.wire.openai import ChatRequest, CompletionRequest, EmbeddingRequest

_DECODERS: dict[Endpoint, msgspec.json.Decoder[Any]] = {
    Endpoint.CHAT: msgspec.json.Decoder(ChatRequest),
    Endpoint.COMPLETIONS: msgspec.json.Decoder(CompletionRequest),
    Endpoint.EMBEDDINGS: msgspec.json.Decoder(EmbeddingRequest),
}
_AT = re.compile(r"^(.*?) - at `\$(.*)`$", re.DOTALL)


def parse_into(ex: Exchange) -> None:
    """Validate ``ex.body`` and fill ``model``, ``stream`` and ``client_wants_usage``."""
    body = ex.body
    if not body.strip():
        raise InvalidRequest("request body is empty; expected a JSON object")
    try:
        request = _DECODERS[ex.endpoint].decode(body)
    except msgspec.ValidationError as exc:
        raise schema_error(str(exc)) from None
    except RecursionError:
        raise InvalidRequest("request body nests JSON arrays or objects too deeply") from None
    except UnicodeDecodeError:
        raise InvalidRequest(f"request body is not valid UTF-8: {_utf8_problem(body)}") from None
    except msgspec.DecodeError as exc:
        raise InvalidRequest(
            f"invalid JSON in request body: {_lower_first(_strip_prefix(str(exc)))}"
        ) from None
    if not request.model:
        raise InvalidRequest("model: must not be empty", param="model")
    ex.model = request.model
    if ex.endpoint is not Endpoint.EMBEDDINGS:
        ex.stream = bool(request.stream)
        options = request.stream_options
        ex.client_wants_usage = bool(options and options.include_usage)
        if ex.endpoint is Endpoint.CHAT and not request.messages:
            raise InvalidRequest("messages: must contain at least one message", param="messages")


def schema_error(message: str) -> InvalidRequest:
    """Turn msgspec's ``Expected X, got Y - at `$.a[0].b``` into ``a[0].b: expected X, got Y``."""
    match = _AT.match(message)
    if not match:
        if message.startswith("Object missing required field"):
            field = message.split("`")[1] if "`" in message else ""
            return InvalidRequest(f"{field}: required field is missing", param=field or None)
        return InvalidRequest(f"request body: {_lower_first(message)}")
    what, where = match.group(1), match.group(2).lstrip(".")
    if what.startswith("Object missing required field"):
        field = what.split("`")[1]
        where = f"{where}.{field}" if where else field
        return InvalidRequest(f"{where}: required field is missing", param=where)
    return InvalidRequest(f"{where}: {_lower_first(what)}", param=where or None)


def _utf8_problem(body: bytes) -> str:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"invalid byte 0x{body[exc.start]:02x} at byte {exc.start}"
    return "invalid UTF-8 in a string value"


def _strip_prefix(message: str) -> str:
    return message.removeprefix("JSON is malformed: ")


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]
