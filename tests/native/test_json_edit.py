"""relay._native.splice_top_level and top_level_value: edits of a JSON object's
top-level members that leave every other byte as it was."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay._native import InvalidJson, NativeError, splice_top_level, top_level_value

KEYS = st.sampled_from(["model", "stream", "stream_options", "messages", "x", "é", 'q"\\'])
VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=3), kids, max_size=3)
    ),
    max_leaves=8,
)
WS = st.sampled_from(["", " ", "\n  ", "\t", "\r\n"])


def escaped(key: str) -> str:
    """``key`` as a JSON string with every character \\u-escaped."""
    return '"' + "".join(f"\\u{ord(c):04x}" for c in key) + '"'


@st.composite
def object_text(draw: st.DrawFn) -> tuple[str, list[tuple[str, str, str, str]], str]:
    """A JSON object written by hand: (head, members, tail) where each member is
    (key, text before the value, value text, text after the value). Keys may
    repeat and may be written with escapes."""
    members = []
    for key, value in draw(st.lists(st.tuples(KEYS, VALUES), max_size=6)):
        key_text = escaped(key) if draw(st.integers(0, 4)) == 0 else json.dumps(key)
        before = draw(WS) + key_text + draw(WS) + ":" + draw(WS)
        value_text = json.dumps(
            value, ensure_ascii=draw(st.booleans()), indent=draw(st.sampled_from([None, 2]))
        )
        members.append((key, before, value_text, draw(WS)))
    return draw(WS) + "{", members, draw(WS) + "}" + draw(WS)


def render(head: str, members: list[tuple[str, str, str, str]], tail: str) -> str:
    return head + ",".join(b + v + a for _, b, v, a in members) + (tail if members else " " + tail)


@settings(max_examples=300)
@given(
    object_text(),
    st.lists(st.tuples(KEYS, VALUES.map(json.dumps)), max_size=3),
)
def test_splice_matches_a_byte_exact_model(obj: Any, edits: list[tuple[str, str]]) -> None:
    head, members, tail = obj
    body = render(head, members, tail)
    last = dict(edits)  # the last edit of a key wins
    present = {key for key, *_ in members}
    # Absent keys are inserted in the order of their last edit.
    inserted = [
        key
        for i, (key, _) in enumerate(edits)
        if key not in present and all(k != key for k, _ in edits[i + 1 :])
    ]
    # Expected bytes: edited values replaced in place, inserted members first.
    new_members = [(k, b, last.get(k, v), a) for k, b, v, a in members]
    front = ",".join(json.dumps(k, ensure_ascii=False) + ":" + last[k] for k in inserted)
    want = render(head, new_members, tail)
    if front:
        brace = len(head)
        want = want[:brace] + front + ("," if members else "") + want[brace:]
    got = splice_top_level(body.encode(), [(k, v.encode()) for k, v in edits])
    assert got == want.encode()
    expected = json.loads(body)
    expected.update({k: json.loads(v) for k, v in last.items()})
    assert json.loads(got) == expected
    # top_level_value: the raw text of the last member of a key.
    for key in {k for k, *_ in members}:
        raw = [v for k, _, v, _ in members if k == key][-1]
        assert top_level_value(body.encode(), key) == raw.encode()
    assert top_level_value(body.encode(), "absent") is None


def test_examples() -> None:
    body = b'{ "model" : "gpt-4o",\n  "messages": [{"role":"user","content":"hi \\u00e9"}] }'
    got = splice_top_level(
        body, [("model", b'"real-model"'), ("stream_options", b'{"include_usage":true}')]
    )
    assert got == (
        b'{"stream_options":{"include_usage":true}, "model" : "real-model",\n'
        b'  "messages": [{"role":"user","content":"hi \\u00e9"}] }'
    )
    assert splice_top_level(b"{}", [("a", b" 1 ")]) == b'{"a": 1 }'
    assert top_level_value(b'{"mod\\u0065l": "m"}', "model") == b'"m"'
    assert top_level_value(b'{"a": {"model": 1}}', "model") is None
    assert splice_top_level(b'{"a":1}', []) == b'{"a":1}'
    assert splice_top_level(b'{"a":1}', ()) == b'{"a":1}'


@pytest.mark.parametrize(
    "body", [b"[]", b'"s"', b"1", b"", b"{", b'{"a":1} x', b'{"a":}', b'{"a":"\xff"}', b"{'a':1}"]
)
def test_not_a_json_object(body: bytes) -> None:
    with pytest.raises(InvalidJson) as e:
        splice_top_level(body, [("a", b"1")])
    assert isinstance(e.value, NativeError)
    with pytest.raises(InvalidJson):
        top_level_value(body, "a")


def test_bad_edit_value() -> None:
    with pytest.raises(InvalidJson, match='new value of "model" is not JSON'):
        splice_top_level(b"{}", [("model", b"gpt-4o")])
    with pytest.raises(TypeError):
        splice_top_level(b"{}", [("model", '"str, not bytes"')])  # type: ignore[list-item]


def test_deep_and_large_bodies() -> None:
    deep = b'{"d":' + b"[" * 5000 + b"]" * 5000 + b',"model":"a"}'
    assert top_level_value(deep, "model") == b'"a"'
    big = json.dumps({"model": "a", "messages": [{"role": "user", "content": "x" * 50_000}]})
    out = splice_top_level(big.encode(), [("model", b'"b"')])
    assert json.loads(out)["model"] == "b"
    assert len(out) == len(big)
