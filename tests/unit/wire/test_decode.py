"""Decoding a request body once: whatever a later full decode (a translator, the echo
provider, a native scanner) would choke on is refused here, with a 400 naming where."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from relay.errors import InvalidRequest
from relay.native import splice_top_level
from relay.wire.decode import decode_body, decode_json
from relay.wire.openai import ChatRequest

CHAT = msgspec.json.Decoder(ChatRequest)
BASE = b'{"model":"m","messages":[{"role":"user","content":"hi"%s}]%s}'


def refused(body: bytes, decoder: msgspec.json.Decoder[Any] = CHAT) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        decode_body(decoder, body)
    assert info.value.status == 400
    return info.value


@pytest.mark.parametrize(
    ("inner", "outer", "where"),
    [
        (b"", b',"\xff\xfe":1', "request body"),
        (b',"\xc3":1', b"", "messages[0]"),
        (b"", b',"x":{"a\xed\xa0\x80b":1}', "x"),
        (b"", b',"x":"\xff"', "x"),
        (b"", b',"x":["a","b\x80"]', "x[1]"),
    ],
)
def test_invalid_utf8_in_fields_the_schema_skips_is_refused(
    inner: bytes, outer: bytes, where: str
) -> None:
    # msgspec skips unknown members without checking their bytes: the body would be accepted,
    # then fail every later decode (the native splice, a translator, the stored-responses flush).
    body = BASE % (inner, outer)
    err = refused(body)
    assert "not valid UTF-8" in err.message
    assert err.message.startswith(f"{where}: ")
    assert "at byte" in err.message


def test_valid_non_ascii_is_accepted() -> None:
    body = BASE % (',"ключ":"значение"'.encode(), ',"naïve":"café ☕"'.encode())
    assert decode_body(CHAT, body).model == "m"
    splice_top_level(body, [("model", b'"x"')])  # and the native scanner agrees


@pytest.mark.parametrize(
    "escape", [b"\\ud800", b"\\udfff", b"\\ud800\\u0041", b"\\ud83dx", b"\\udc00\\ud800"]
)
def test_unpaired_surrogate_escapes_are_named(escape: bytes) -> None:
    err = refused(BASE % (b"", b',"x":"' + escape + b'"'))
    assert "unpaired UTF-16 surrogate" in err.message
    assert err.message.startswith("x: ")


def test_escaped_backslash_before_u_is_not_a_surrogate() -> None:
    body = BASE % (b"", b',"x":"\\\\ud800"')
    assert decode_body(CHAT, body).model == "m"


def test_a_paired_surrogate_is_fine() -> None:
    body = BASE % (b"", b',"x":"\\ud83d\\ude00"')
    assert decode_body(CHAT, body).model == "m"


def test_number_out_of_range_in_a_declared_field() -> None:
    err = refused(BASE % (b"", b',"temperature":1e400'))
    assert err.message == "temperature: number out of range"
    assert err.param == "temperature"


def test_number_out_of_range_inside_a_free_form_member_names_the_path() -> None:
    err = refused(BASE % (b',"content":[{"type":"text","text":"a","x":[1,-1e999]}]', b""))
    assert err.message == "messages[0].content[0].x[1]: number out of range"


def test_decode_json_names_an_out_of_range_number_the_schema_skipped() -> None:
    body = BASE % (b',"zz":{"a":[0,1e400]}', b',"frequency_penalty":1.5')
    decode_body(CHAT, body)  # the typed decode skips it ...
    with pytest.raises(InvalidRequest) as info:
        decode_json(body)  # ... the whole-body decode of a translator names it
    assert info.value.message == "messages[0].zz.a[1]: number out of range"
    assert info.value.param == "messages[0].zz.a[1]"


def test_decode_json_of_a_valid_body() -> None:
    assert decode_json(b'{"a":[1,2.5,"x"]}') == {"a": [1, 2.5, "x"]}


def test_deeply_nested_out_of_range_number_does_not_recurse() -> None:
    body = b'{"a":' + b"[" * 500 + b"1e400" + b"]" * 500 + b"}"
    with pytest.raises(InvalidRequest) as info:
        decode_json(body)
    assert info.value.message.endswith("[0]: number out of range")
