"""relay._native.cache_key: canonical JSON + salted SHA-256."""

from __future__ import annotations

import hashlib
import json
import math
import struct
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay._native import InvalidJson, NativeError, cache_key


def model_key(doc: Any, *, ignore: tuple[str, ...] = (), salt: bytes = b"") -> str:
    """An independent model of the documented canonical form."""
    if isinstance(doc, dict):
        doc = {k: v for k, v in doc.items() if k not in ignore}
    canonical = canon(doc).encode()
    return hashlib.sha256(struct.pack(">Q", len(salt)) + salt + canonical).hexdigest()


def canon(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return json.dumps(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return sci(v)
    if isinstance(v, str):
        # Python's escaping is the documented one: short escapes, lowercase \u00xx.
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ",".join(canon(x) for x in v) + "]"
    # Code point order == UTF-8 byte order.
    items = sorted(v.items())
    return "{" + ",".join(f"{canon(k)}:{canon(x)}" for k, x in items) + "}"


def sci(f: float) -> str:
    """Shortest round-trip digits in scientific form: 1e0, 1.5e-7, -2e300."""
    sign, digits, exp = Decimal(repr(f)).normalize().as_tuple()
    assert isinstance(exp, int)
    ds = "".join(map(str, digits))
    mantissa = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
    return f"{'-' if sign else ''}{mantissa}e{exp + len(ds) - 1}"


def test_shape_of_key() -> None:
    k = cache_key(b'{"model": "gpt-4o"}')
    assert len(k) == 64
    assert k == k.lower()
    int(k, 16)


def test_known_digest() -> None:
    want = hashlib.sha256(b"\0" * 8 + b"{}").hexdigest()
    assert cache_key(b" { } ") == want


def test_order_and_whitespace_independent() -> None:
    a = b'{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"temperature":0.5}'
    b = b"""{
        "temperature": 0.50,
        "messages": [ { "content": "hi", "role": "user" } ],
        "model": "gpt-4o"
    }"""
    assert cache_key(a) == cache_key(b)


def test_content_changes_key() -> None:
    assert cache_key(b'{"a": "x"}') != cache_key(b'{"a": "y"}')
    assert cache_key(b'{"a": 1}') != cache_key(b'{"b": 1}')


def test_nested_arrays_keep_order() -> None:
    assert cache_key(b'{"a": [[1, 2], [3]]}') != cache_key(b'{"a": [[2, 1], [3]]}')
    assert cache_key(b'{"a": [[1, 2], [3]]}') != cache_key(b'{"a": [[3], [1, 2]]}')


def test_strings_are_canonical() -> None:
    assert cache_key(b'"\\u0041\\/"') == cache_key(b'"A/"')
    assert cache_key(b'"\\u00e9"') == cache_key('"é"'.encode())
    assert cache_key(b'"\\ud83e\\udd80"') == cache_key('"🦀"'.encode())
    assert cache_key(b'"\\n"') == cache_key(b'"\\u000a"')


def test_numbers() -> None:
    assert cache_key(b"1.0") == cache_key(b"1.00") == cache_key(b"1e0") == cache_key(b"10e-1")
    # Integers and floats are different values by design.
    assert cache_key(b"1") != cache_key(b"1.0")
    assert cache_key(b'{"n": 100}') != cache_key(b'{"n": 1e2}')
    assert cache_key(b"0.1") == model_key(0.1)


def test_ignore_top_level_keys() -> None:
    a = b'{"model": "m", "user": "alice", "stream": true}'
    b = b'{"model": "m", "user": "bob", "stream": false}'
    assert cache_key(a) != cache_key(b)
    assert cache_key(a, ignore=["user", "stream"]) == cache_key(b, ignore=("user", "stream"))
    assert cache_key(a, ignore=["user", "stream"]) == cache_key(b'{"model": "m"}')
    assert cache_key(a, ignore=["absent"]) == cache_key(a)
    # Nested keys of the same name are kept.
    assert cache_key(b'{"x": {"user": 1}}', ignore=["user"]) != cache_key(b'{"x": {}}')


def test_salt() -> None:
    a = b'{"model": "m"}'
    assert cache_key(a, salt=b"tenant-1") != cache_key(a, salt=b"tenant-2")
    assert cache_key(a, salt=b"") == cache_key(a)
    assert cache_key(a, salt=b"s") == model_key({"model": "m"}, salt=b"s")


def test_keyword_only() -> None:
    with pytest.raises(TypeError):
        cache_key(b"{}", ["x"])  # type: ignore[call-arg]


def test_large_body() -> None:
    doc = {"messages": [{"role": "user", "content": "x" * 20_000}], "n": 1}
    raw = json.dumps(doc, indent=2).encode()
    assert len(raw) > 8192
    assert cache_key(raw) == model_key(doc)


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b'{"a": }', r"line 1 column 7 \(byte offset 6\)"),
        (b'{"a": 1,\n"b" 2}', r"line 2 column 5 \(byte offset 13\)"),
        (b"", "EOF"),
        (b"{} x", "trailing characters"),
        (b'"\xff"', "byte offset"),
        (b"1e400", "out of range"),
    ],
)
def test_invalid(raw: bytes, match: str) -> None:
    with pytest.raises(InvalidJson, match=match):
        cache_key(raw)
    assert issubclass(InvalidJson, NativeError)


json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
)
json_docs = st.recursive(
    json_leaf,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(), inner)),
    max_leaves=20,
)


@settings(max_examples=300)
@given(json_docs, st.binary(max_size=8), st.sampled_from([(), ("a",), ("a", "")]))
def test_matches_model(doc: Any, salt: bytes, ignore: tuple[str, ...]) -> None:
    raw = json.dumps(doc).encode()
    assert cache_key(raw, salt=salt, ignore=ignore) == model_key(doc, salt=salt, ignore=ignore)
    # Any other spelling of the same document gives the same key.
    spelled = json.dumps(doc, indent=1, ensure_ascii=True).encode()
    assert cache_key(spelled, salt=salt, ignore=ignore) == cache_key(raw, salt=salt, ignore=ignore)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_float_spellings_agree(f: float) -> None:
    assert cache_key(repr(f).encode()) == cache_key(f"{f:.17e}".encode())
    assert math.isfinite(f)
