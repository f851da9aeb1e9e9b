"""Request validation: what and where, for every kind of bad body."""

from __future__ import annotations

import pytest

from relay.errors import InvalidRequest
from relay.exchange import Endpoint, Exchange
from relay.ingress.parse import parse_into


def parsed(body: bytes, endpoint: Endpoint = Endpoint.CHAT) -> Exchange:
    ex = Exchange("req_1", endpoint, body, {})
    parse_into(ex)
    return ex


def refused(body: bytes, endpoint: Endpoint = Endpoint.CHAT) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        parsed(body, endpoint)
    assert info.value.status == 400
    return info.value


def test_valid_chat_sets_model_and_stream_flags() -> None:
    ex = parsed(
        b'{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,'
        b'"stream_options":{"include_usage":true},"future_field":{"x":1}}'
    )
    assert (ex.model, ex.stream, ex.client_wants_usage) == ("m", True, True)


def test_stream_without_options_does_not_want_usage() -> None:
    ex = parsed(b'{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}')
    assert ex.stream and not ex.client_wants_usage


def test_content_parts_and_null_content_are_accepted() -> None:
    parsed(
        b'{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"}]},'
        b'{"role":"assistant","content":null,"tool_calls":[]}]}'
    )


def test_wrong_content_type_names_the_field() -> None:
    err = refused(
        b'{"model":"m","messages":[{"role":"user","content":"a"},'
        b'{"role":"user","content":"b"},{"role":"user","content":5}]}'
    )
    assert err.message == "messages[2].content: expected `str | array | null`, got `int`"
    assert err.param == "messages[2].content"


def test_missing_model() -> None:
    err = refused(b'{"messages":[{"role":"user","content":"a"}]}')
    assert err.message == "model: required field is missing"


def test_missing_role_in_nested_message() -> None:
    err = refused(b'{"model":"m","messages":[{"content":"a"}]}')
    assert err.message == "messages[0].role: required field is missing"


def test_unknown_role() -> None:
    err = refused(b'{"model":"m","messages":[{"role":"robot","content":"a"}]}')
    assert err.message.startswith("messages[0].role: invalid enum value 'robot'")


def test_malformed_json_says_where() -> None:
    err = refused(b'{"model": "m", "messages": [}')
    assert err.message.startswith("invalid JSON in request body:")
    assert "byte" in err.message


def test_non_utf8_bytes_say_which_byte() -> None:
    err = refused(b'{"model":"\xff\xfe","messages":[]}')
    assert err.message == "request body is not valid UTF-8: invalid byte 0xff at byte 10"


def test_not_an_object() -> None:
    err = refused(b"[1,2]")
    assert err.message == "request body: expected `object`, got `array`"


def test_empty_body_and_empty_messages() -> None:
    assert refused(b"").message == "request body is empty; expected a JSON object"
    assert refused(b'{"model":"m","messages":[]}').param == "messages"


def test_stream_must_be_boolean() -> None:
    err = refused(b'{"model":"m","messages":[{"role":"user","content":"a"}],"stream":"yes"}')
    assert err.param == "stream"


def test_embeddings_input_types() -> None:
    ex = parsed(b'{"model":"e","input":["a","b"]}', Endpoint.EMBEDDINGS)
    assert ex.model == "e" and not ex.stream
    err = refused(b'{"model":"e","input":{"a":1}}', Endpoint.EMBEDDINGS)
    assert err.param == "input"


def test_completions_prompt() -> None:
    assert parsed(b'{"model":"c","prompt":"hi","stream":true}', Endpoint.COMPLETIONS).stream
    assert (
        refused(b'{"model":"c"}', Endpoint.COMPLETIONS).message
        == "prompt: required field is missing"
    )
