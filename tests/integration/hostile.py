"""A small seeded generator of hostile request bodies: a valid body with one member replaced,
added or appended at a random place by a value no schema expects (numbers out of range, bytes
that are not UTF-8 in keys and strings, unpaired surrogate escapes, wrong types, objects where
strings belong, deep nesting).

Bodies are serialised here, not by ``json``, so that they can hold what ``json`` cannot write
(``1e400``, raw ``\\xff`` bytes). The same seed gives the same bodies: a failure names its seed.
"""

from __future__ import annotations

import random
from typing import Any


class Raw(bytes):
    """Bytes written into the body as they are (a number or string ``json`` cannot write)."""


class Key(bytes):
    """A member name written as is between quotes (may be invalid UTF-8)."""


HOSTILE_VALUES: list[Any] = [
    Raw(b"1e400"),
    Raw(b"-1e999"),
    Raw(b"18446744073709551616"),
    Raw(b"1" + b"0" * 400 + b".5"),
    Raw(b'"\\ud800"'),
    Raw(b'"a\\udfffb"'),
    Raw(b'"\xff\xfe"'),
    Raw(b'"caf\xc3"'),
    Raw(b'"\xed\xa0\x80"'),
    Raw(b"[" * 64 + b"]" * 64),
    "x",
    "",
    5,
    -1,
    0,
    2.5,
    True,
    None,
    [],
    {},
    ["a", 5],
    [{"a": 1}, "b"],
    {"a": {"b": "c"}},
    {"role": {"nested": 1}},
    {"type": {"x": 1}},
    {"type": "function", "function": "x"},
    {"type": "text", "text": 5},
    [None],
]
HOSTILE_KEYS: list[bytes] = [b"\xff", b"k\xc3", b"\xed\xa0\x80", b"\\ud800", b"zz"]


def dumps(node: Any) -> bytes:
    """Compact JSON of ``node``, with :class:`Raw` values and :class:`Key` names as they are."""
    if isinstance(node, Raw):
        return bytes(node)
    if isinstance(node, dict):
        members = []
        for key, value in node.items():
            name = bytes(key) if isinstance(key, Key) else _string(key)[1:-1]
            members.append(b'"' + name + b'":' + dumps(value))
        return b"{" + b",".join(members) + b"}"
    if isinstance(node, list):
        return b"[" + b",".join(dumps(v) for v in node) + b"]"
    if node is None:
        return b"null"
    if node is True:
        return b"true"
    if node is False:
        return b"false"
    if isinstance(node, (int, float)):
        return repr(node).encode()
    return _string(str(node))


def _string(text: str) -> bytes:
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out).encode()


def _places(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value of ``node`` (the root included)."""
    out = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _places(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _places(value, (*path, i))
    return out


def _copy(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _copy(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_copy(v) for v in node]
    return node


def mutate(base: dict[str, Any], rng: random.Random, keep: frozenset[str]) -> bytes:
    """``base`` with one hostile change; top-level members in ``keep`` are left alone."""
    body = _copy(base)
    places = [p for p in _places(body) if not (p and p[0] in keep)]
    path = rng.choice(places)
    parent: Any = body
    for step in path[:-1]:
        parent = parent[step]
    target = parent[path[-1]] if path else body
    action = rng.random()
    if isinstance(target, dict) and action < 0.4:
        target[Key(rng.choice(HOSTILE_KEYS))] = _copy(rng.choice(HOSTILE_VALUES))
    elif isinstance(target, list) and action < 0.4:
        target.append(_copy(rng.choice(HOSTILE_VALUES)))
    elif path:
        parent[path[-1]] = _copy(rng.choice(HOSTILE_VALUES))
    else:
        body[Key(rng.choice(HOSTILE_KEYS))] = _copy(rng.choice(HOSTILE_VALUES))
    return dumps(body)


def variants(base: dict[str, Any], seed: int, count: int, keep: frozenset[str]) -> list[bytes]:
    """``count`` hostile variants of ``base``, the same for the same seed."""
    rng = random.Random(seed)
    return [mutate(base, rng, keep) for _ in range(count)]
