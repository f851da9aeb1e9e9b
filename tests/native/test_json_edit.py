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
    """``key`` as a JSON string with every UTF-16 code unit \\u-escaped (characters
    outside the BMP as surrogate pairs)."""
    units = key.encode("utf-16-be")
    return (
        '"' + "".join(f"\\u{units[i]:02x}{units[i + 1]:02x}" for i in range(0, len(units), 2)) + '"'
    )


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


# --- adversarial bodies -------------------------------------------------------------------

# Keys and strings that trip a scanner: escaped quotes and backslashes, brackets and
# braces inside strings, surrogate pairs, control characters, non-ASCII.
TRICKY_TEXT = st.text(
    alphabet=st.sampled_from(list('"\\/[]{},:\n\t\x00\x1f é日😀')),
    max_size=12,
)
TRICKY_KEYS = KEYS | TRICKY_TEXT
TRICKY_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | TRICKY_TEXT,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(TRICKY_TEXT, kids, max_size=3),
    max_leaves=10,
)


def spaced(draw: st.DrawFn, text: str) -> str:
    """``text`` (compact JSON) with random JSON whitespace after structural characters
    outside strings."""
    out = []
    in_string = escaped_next = False
    for c in text:
        out.append(c)
        if in_string:
            if escaped_next:
                escaped_next = False
            elif c == "\\":
                escaped_next = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "[]{},:":
            out.append(draw(WS))
    return "".join(out)


def write_key(draw: st.DrawFn, key: str) -> str:
    how = draw(st.integers(0, 3))
    if how == 0:
        return escaped(key)  # every UTF-16 code unit \u-escaped (pairs for astral)
    return json.dumps(key, ensure_ascii=how == 1)


@st.composite
def tricky_object(draw: st.DrawFn) -> tuple[str, list[tuple[str, str]]]:
    """A valid JSON object text with hostile keys and values, whitespace everywhere,
    and its (key, raw value text) members in order."""
    members = []
    parts = []
    for key, value in draw(st.lists(st.tuples(TRICKY_KEYS, TRICKY_VALUES), max_size=6)):
        compact = json.dumps(value, ensure_ascii=draw(st.booleans()), separators=(",", ":"))
        raw = spaced(draw, compact).rstrip(" \t\r\n")  # a value ends at its last character
        members.append((key, raw))
        parts.append(draw(WS) + write_key(draw, key) + draw(WS) + ":" + draw(WS) + raw + draw(WS))
    body = draw(WS) + "{" + ",".join(parts) + (draw(WS) if not parts else "") + "}" + draw(WS)
    return body, members


@settings(max_examples=400)
@given(tricky_object(), st.lists(st.tuples(TRICKY_KEYS, TRICKY_VALUES.map(json.dumps)), max_size=3))
def test_adversarial_bodies_agree_with_json(obj: Any, edits: list[tuple[str, str]]) -> None:
    text, members = obj
    body = text.encode()
    want = json.loads(text)
    for key in {k for k, _ in members} | {"absent"}:
        raw = [v for k, v in members if k == key]
        got = top_level_value(body, key)
        assert got == (raw[-1].encode() if raw else None)
        if got is not None:
            assert json.loads(got) == want[key]
    out = splice_top_level(body, [(k, v.encode()) for k, v in edits])
    want.update({k: json.loads(v) for k, v in edits})
    assert json.loads(out) == want


def test_adversarial_examples() -> None:
    body = (
        b' \r\n{ "a\\"]}" :"\\"}]\\\\" ,\t"\\ud83d\\ude00":[{"x":"]["},"\\\\\\""] ,'
        b'"mod\\u0065l" : -1.5E+3 , "\\u00e9":{"\\"":{}} }\n'
    )
    assert json.loads(body)  # valid
    assert top_level_value(body, 'a"]}') == b'"\\"}]\\\\"'
    assert top_level_value(body, "😀") == b'[{"x":"]["},"\\\\\\""]'
    assert top_level_value(body, "model") == b"-1.5E+3"
    assert top_level_value(body, "é") == b'{"\\"":{}}'
    out = splice_top_level(body, [("model", b'"m"'), ("😀", b"0"), ("new", b"[]")])
    assert json.loads(out) == {'a"]}': '"}]\\', "😀": 0, "model": "m", "é": {'"': {}}, "new": []}
    # A lone surrogate key is legal JSON; no str can name it, so it is left alone.
    lone = b'{"\\ud800":1,"\\ud83dA":2,"A":3}'
    assert top_level_value(lone, "A") == b"3"
    assert splice_top_level(lone, [("A", b"4")]) == b'{"\\ud800":1,"\\ud83dA":2,"A":4}'
    # Deep nesting is skipped without recursion, brackets inside strings ignored.
    deep = b'{"d":' + b'[{"k":"]}","v":' * 50_000 + b"0" + b"}]" * 50_000 + b',"model":"a"}'
    assert top_level_value(deep, "model") == b'"a"'


@pytest.mark.parametrize(
    ("body", "offset"),
    [
        (b'{"a":[1,2}', 9),  # `}` closes `[`
        (b'{"a":[[1]', 5),  # the body ends inside the array that starts at 5
        (b'{"a" 1}', 5),  # missing colon
        (b'{"a":1 "b":2}', 7),  # missing comma
        (b'{"a":1,}', 7),  # trailing comma
        (b'{"a":"x', 5),  # unterminated string
        (b'{"a":["x\\"]}', 6),  # the quote is escaped: the string never ends
        (b'{"a":1}\n[', 8),  # trailing garbage
        (b'\n\n  {"a":\n x}', 11),  # not a value
    ],
)
def test_structural_errors_give_the_byte_offset(body: bytes, offset: int) -> None:
    with pytest.raises(InvalidJson, match=rf"\(byte offset {offset}\)$"):
        top_level_value(body, "a")
    with pytest.raises(InvalidJson, match=rf"\(byte offset {offset}\)$"):
        splice_top_level(body, [("a", b"1")])


def test_nested_values_are_not_validated() -> None:
    """Documented leniency: inside arrays and objects only brackets and string ends."""
    body = b'{"a":[1,,"\\x",tru,{"k" 1}],"b":2}'
    assert top_level_value(body, "b") == b"2"
    assert splice_top_level(body, [("b", b"3")]) == b'{"a":[1,,"\\x",tru,{"k" 1}],"b":3}'


# --- random bytes -------------------------------------------------------------------------


def reject_constant(name: str) -> Any:
    raise ValueError(name)  # NaN and Infinity: Python's json accepts them, JSON does not


def json_object(body: bytes) -> dict[str, Any] | None:
    """``body`` as a JSON object by Python's json module (strict UTF-8, no NaN), or None
    if it is not valid JSON at all; a valid non-object is returned as is."""
    try:
        return json.loads(body.decode("utf-8"), parse_constant=reject_constant)  # type: ignore[no-any-return]
    except (UnicodeDecodeError, ValueError):
        return None


FRAGMENTS = st.sampled_from(
    [b"{", b"}", b"[", b"]", b'"', b"\\", b":", b",", b" ", b"\n", b"a", b'"a"', b'"model"',
     b"1", b"-", b"0.5e1", b"true", b"null", b"\\u0061", b"\\ud83d", b"\\ude00", b"\xff",
     b"\xc3\xa9", b"\x00", b'"a":', b'"a":1', b'"model":"m"', b',"a":[', b'{"x":"]"}', b'"\\""',
     b'"\\\\"', b'"mod\\u0065l":']
)  # fmt: skip
FUZZ = (
    st.binary(max_size=40)
    | st.lists(FRAGMENTS, max_size=24).map(b"".join)
    | st.lists(FRAGMENTS, max_size=8).map(lambda parts: b"{" + b"".join(parts) + b"}")
    | st.lists(  # members of a likely object, each part now and then wrong
        st.tuples(
            st.sampled_from(
                [b'"a"', b'"model"', b'"\\u00e9"', b'"\\ud83d\\ude00"', b'"\\ud83d"', b"a"]
            ),
            st.sampled_from([b":", b" : ", b"", b"::"]),
            st.sampled_from(
                [b"1", b'"x"', b'"]\\""', b"[1,[2]]", b'{"a":{}}', b"[", b"}", b"-", b"tru"]
            ),
        ).map(b"".join),
        max_size=4,
    ).map(lambda members: b"{" + b",".join(members) + b"}")
)


def check_contract(body: bytes, key: str) -> None:
    """Any bytes: either InvalidJson or, when json.loads accepts the body, its answers."""
    want = json_object(body)
    try:
        value = top_level_value(body, key)
        out = splice_top_level(body, [(key, b'"new"'), ("inserted", b"0")])
    except InvalidJson:
        assert not isinstance(want, dict), "a valid object was refused"
        return
    if want is None:
        return  # invalid JSON where the scanner does not look (inside an array or object)
    assert isinstance(want, dict), "a valid non-object was accepted"
    if value is None:
        assert key not in want
    else:
        assert json.loads(value) == want[key]
    assert json.loads(out) == {**want, key: "new", "inserted": 0}


@settings(max_examples=3000)
@given(FUZZ, st.sampled_from(["a", "model", "é", "😀"]))
def test_random_bytes_never_crash(body: bytes, key: str) -> None:
    check_contract(body, key)


@settings(max_examples=300)
@given(tricky_object(), st.data())
def test_mutated_bodies_never_crash(obj: Any, data: st.DataObject) -> None:
    """A valid body with one byte changed, inserted or removed: the same contract."""
    body = bytearray(obj[0].encode())
    i = data.draw(st.integers(0, len(body)))
    how = data.draw(st.sampled_from(["set", "insert", "delete"]))
    byte = data.draw(st.sampled_from(list(b'{}[]",:\\ 0a\xff')))
    if how == "insert":
        body.insert(i, byte)
    elif i < len(body):
        if how == "set":
            body[i] = byte
        else:
            del body[i]
    for key in ["a", "model", *(k for k, _ in obj[1][:2])]:
        check_contract(bytes(body), key)
