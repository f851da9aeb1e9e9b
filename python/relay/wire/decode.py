"""Decode a request body once into a typed Struct, with errors that say what and where."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from relay.errors import InvalidRequest

_AT = re.compile(r"^(.*?) - at `\$(.*)`$", re.DOTALL)


def decode_body(decoder: msgspec.json.Decoder[Any], body: bytes) -> Any:
    """Decode ``body`` with ``decoder``; any problem is an :class:`InvalidRequest` (400)."""
    if not body.strip():
        raise InvalidRequest("request body is empty; expected a JSON object")
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise schema_error(str(exc)) from None
    except RecursionError:
        raise InvalidRequest("request body nests JSON arrays or objects too deeply") from None
    except (UnicodeDecodeError, msgspec.DecodeError) as exc:
        # msgspec < 0.23 raises UnicodeDecodeError for non-UTF-8 input, 0.23 a DecodeError:
        # either way, name the first bad byte when that is the problem.
        bad_utf8 = _utf8_problem(body)
        if bad_utf8 is not None or isinstance(exc, UnicodeDecodeError):
            where = bad_utf8 or "invalid UTF-8 in a string value"
            raise InvalidRequest(f"request body is not valid UTF-8: {where}") from None
        raise InvalidRequest(
            f"invalid JSON in request body: {_lower_first(_strip_prefix(str(exc)))}"
        ) from None


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


def _utf8_problem(body: bytes) -> str | None:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"invalid byte 0x{body[exc.start]:02x} at byte {exc.start}"
    return None


def _strip_prefix(message: str) -> str:
    return message.removeprefix("JSON is malformed: ")


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]
