"""Decode a request body once into a typed Struct, with errors that say what and where.

A typed decode skips the members its schema does not declare without checking their bytes or
the range of their numbers (msgspec 0.23), yet those bytes travel on: into the native splice,
a translator's or the echo provider's whole-body decode, a stored response. So a body is
accepted only if it is valid UTF-8 throughout (no unpaired ``\\u`` surrogate escapes either,
which msgspec refuses anywhere), and :func:`decode_json`, for code that decodes the whole body
untyped, turns a number out of a float's range into a 400 naming where it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import msgspec

from relay.errors import InvalidRequest

_AT = re.compile(r"^(.*?) - at `\$(.*)`$", re.DOTALL)
# A \u escape of a surrogate (an odd number of backslashes before the "u"), and the pair it
# may be part of.
_SURROGATE = re.compile(rb"(?<!\\)((?:\\\\)*)\\u([dD][89a-fA-F][0-9a-fA-F]{2})")
_HIGH = re.compile(rb"[dD][89abAB]")
_LOW_NEXT = re.compile(rb"\\u[dD][c-fC-F][0-9a-fA-F]{2}")
# Stands in for the bad spot when the body is decoded again to find its path (slow path only).
_MARK = "\x00\x01relay-bad\x01\x00"
_MARK_JSON = b"\\u0000\\u0001relay-bad\\u0001\\u0000"
_ANY = msgspec.json.Decoder()
_FLOATS = msgspec.json.Decoder(float_hook=float)  # 1e400 -> inf instead of an error


def decode_body(decoder: msgspec.json.Decoder[Any], body: bytes) -> Any:
    """Decode ``body`` with ``decoder``; any problem is an :class:`InvalidRequest` (400)."""
    if not body.strip():
        raise InvalidRequest("request body is empty; expected a JSON object")
    try:
        value = decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise _validation_error(str(exc), body) from None
    except RecursionError:
        raise InvalidRequest("request body nests JSON arrays or objects too deeply") from None
    except (UnicodeDecodeError, msgspec.DecodeError) as exc:
        # msgspec < 0.23 raises UnicodeDecodeError for non-UTF-8 input, 0.23 a DecodeError:
        # either way, name the first bad byte when that is the problem.
        problem = _utf8_error(body) or _surrogate_error(body)
        if problem is not None:
            raise problem from None
        if isinstance(exc, UnicodeDecodeError):
            raise InvalidRequest("request body is not valid UTF-8") from None
        raise InvalidRequest(
            f"invalid JSON in request body: {_lower_first(_strip_prefix(str(exc)))}"
        ) from None
    # Valid JSON as far as the schema looked: the bytes it skipped must be text too.
    check_utf8(body)
    return value


def check_utf8(body: bytes) -> None:
    """Refuse a body that is not UTF-8 throughout (a 400 naming the key or string where the
    first bad byte is). ASCII, what most SDKs send, needs no further look."""
    if not body.isascii():
        problem = _utf8_error(body)
        if problem is not None:
            raise problem


def decode_json(body: bytes) -> Any:
    """The whole body decoded untyped, for code that needs every member (a translator, the
    echo provider): a number out of range anywhere is a 400 naming where, not a 500."""
    return decode_body(_ANY, body)


def string_value(raw: bytes, where: str) -> str | None:
    """A JSON value (its raw bytes) that must be a string or null: a ``str`` or None, else a
    400 naming ``where``."""
    try:
        value = _FLOATS.decode(raw)  # a number out of range is "not a string", not an error
    except msgspec.DecodeError:
        what = "unpaired UTF-16 surrogate escape" if _surrogate_error(raw) else "invalid JSON"
        raise InvalidRequest(f"{where}: {what}", param=where) from None
    if value is None or isinstance(value, str):
        return value
    raise InvalidRequest(f"{where}: expected a string", param=where)


def schema_problem(message: str) -> tuple[str, str]:
    """msgspec's ``Expected X, got Y - at `$.a[0].b``` as (``a[0].b``, ``expected X, got Y``);
    a missing or unknown field is named in the path. The one reading of msgspec's schema
    errors, for the API bodies and the admin API alike."""
    match = _AT.match(message)
    what, where = (match.group(1), match.group(2).lstrip(".")) if match else (message, "")
    for prefix, said in _FIELD_PROBLEMS:
        if what.startswith(prefix):
            field = what.split("`")[1] if "`" in what else ""
            return (f"{where}.{field}" if where and field else field or where), said
    return where, _lower_first(what)


_FIELD_PROBLEMS = (
    ("Object missing required field", "required field is missing"),
    ("Object contains unknown field", "unknown field"),
)


def schema_error(message: str) -> InvalidRequest:
    """A 400 naming where the body does not fit its schema (see :func:`schema_problem`)."""
    where, what = schema_problem(message)
    return InvalidRequest(f"{where or 'request body'}: {what}", param=where or None)


def _validation_error(message: str, body: bytes) -> InvalidRequest:
    # msgspec writes a member of a free-form object as `[...]`: find the real path.
    if message.startswith("Number out of range") and "[...]" in message:
        try:
            found = _find(_FLOATS.decode(body), _is_infinite)
        except (msgspec.DecodeError, RecursionError):
            found = None
        if found is not None:
            where = found[0]
            return InvalidRequest(f"{where or 'request body'}: number out of range", param=where)
    return schema_error(message)


def _utf8_error(body: bytes) -> InvalidRequest | None:
    """The first invalid UTF-8 sequence, named by the JSON path where it is (a key or string)."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        detail = f"invalid byte 0x{body[exc.start]:02x} at byte {exc.start}"
        patched = body[: exc.start] + _MARK_JSON + body[exc.end :]
        return _named(patched.decode("utf-8", "replace").encode(), "not valid UTF-8", detail)
    return None


def _surrogate_error(body: bytes) -> InvalidRequest | None:
    """The first ``\\u`` escape of a surrogate that is not half of a pair, if any."""
    bad: list[tuple[int, int]] = []
    skip_until = 0
    for match in _SURROGATE.finditer(body):
        start, end = match.start(2) - 2, match.end()
        if start < skip_until:
            continue
        if _HIGH.match(match.group(2)) and _LOW_NEXT.match(body, end):
            skip_until = end + 6  # a pair: the low half is not checked again
            continue
        bad.append((start, end))
    if not bad:
        return None
    first = bad[0]
    detail = f"{body[first[0] : first[1]].decode()} at byte {first[0]}"
    parts, last = [], 0
    for i, (start, end) in enumerate(bad):
        parts += [body[last:start], _MARK_JSON if i == 0 else b"\\ufffd"]
        last = end
    patched = b"".join(parts) + body[last:]
    return _named(patched, "unpaired UTF-16 surrogate escape", detail)


def _named(patched: bytes, what: str, detail: str) -> InvalidRequest:
    """The error for the spot ``patched`` marks with ``_MARK``, named by its JSON path."""
    try:
        found = _find(_FLOATS.decode(patched), lambda v: isinstance(v, str) and _MARK in v)
    except (msgspec.DecodeError, RecursionError):
        found = None  # the spot is outside any string: the body is not JSON at all
    if found is None:
        return InvalidRequest(f"request body: {what} ({detail})")
    where, in_key = found
    shown = where or "request body"
    if in_key:
        return InvalidRequest(f"{shown}: an object key is {what} ({detail})", param=where or None)
    return InvalidRequest(f"{shown}: {what} ({detail})", param=where or None)


def _find(root: Any, match: Callable[[Any], bool]) -> tuple[str, bool] | None:
    """(path, in a key) of a key or scalar that ``match``es; iterative (no recursion limit)."""
    stack: list[tuple[str, Any]] = [("", root)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, dict):
            children = []
            for key, value in node.items():
                if match(key):
                    return path, True
                children.append((f"{path}.{key}" if path else str(key), value))
            stack.extend(reversed(children))
        elif isinstance(node, list):
            stack.extend((f"{path}[{i}]", v) for i, v in reversed(list(enumerate(node))))
        elif match(node):
            return path, False
    return None


def _is_infinite(value: Any) -> bool:
    return isinstance(value, float) and value in (float("inf"), float("-inf"))


def _strip_prefix(message: str) -> str:
    return message.removeprefix("JSON is malformed: ")


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]
