"""The OpenAI dialects: request validation (what and where, for every kind of bad body),
error envelopes and stream framing."""

from __future__ import annotations

import msgspec
import pytest

from relay.dialects import OPENAI_DIALECTS
from relay.errors import InvalidRequest, ModelNotFound, UpstreamUnreachable
from relay.exchange import Endpoint, Exchange, Usage

DIALECTS = {dialect.endpoint: dialect for dialect in OPENAI_DIALECTS}


def parsed(body: bytes, endpoint: Endpoint = Endpoint.CHAT) -> Exchange:
    dialect = DIALECTS[endpoint]
    ex = Exchange("req_1", endpoint, body, {}, dialect=dialect)
    dialect.parse(ex)
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


def test_missing_model_is_left_to_routing() -> None:
    # Some clients send only messages and metadata: routing applies routing.default_model.
    assert parsed(b'{"messages":[{"role":"user","content":"a"}],"metadata":{"k":"v"}}').model == ""
    assert parsed(b'{"model":null,"messages":[{"role":"user","content":"a"}]}').model == ""


def test_missing_role_in_nested_message() -> None:
    err = refused(b'{"model":"m","messages":[{"content":"a"}]}')
    assert err.message == "messages[0].role: required field is missing"


def test_vendor_roles_pass_but_a_role_must_be_a_string() -> None:
    assert parsed(b'{"model":"m","messages":[{"role":"ipython","content":"a"}]}').model == "m"
    err = refused(b'{"model":"m","messages":[{"role":7,"content":"a"}]}')
    assert err.message.startswith("messages[0].role: expected `str`, got `int`")


def test_malformed_json_says_where() -> None:
    err = refused(b'{"model": "m", "messages": [}')
    assert err.message.startswith("invalid JSON in request body:")
    assert "byte" in err.message


def test_non_utf8_bytes_say_which_field_and_byte() -> None:
    err = refused(b'{"model":"\xff\xfe","messages":[]}')
    assert err.message == "model: not valid UTF-8 (invalid byte 0xff at byte 10)"
    assert err.param == "model"


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


def test_request_is_decoded_once_and_kept() -> None:
    ex = parsed(b'{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0}')
    assert ex.request.temperature == 0 and ex.request.messages[0].content == "hi"


def test_error_envelope_shape() -> None:
    body = DIALECTS[Endpoint.CHAT].error_body(
        ModelNotFound("model 'x' is not configured", param="model")
    )
    assert msgspec.json.decode(body) == {
        "error": {
            "message": "model 'x' is not configured",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }
    }


def test_error_frame_is_a_data_event_without_done() -> None:
    frame = DIALECTS[Endpoint.CHAT].error_frame(UpstreamUnreachable("cut"))
    assert frame.startswith(b"data: {") and frame.endswith(b"\n\n") and b"[DONE]" not in frame
    assert msgspec.json.decode(frame[6:])["error"]["code"] == "upstream_unreachable"


def test_end_frames_carry_local_usage_cost_and_done() -> None:
    ex = parsed(b'{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}')
    ex.cost_usd = 0.5
    tail = DIALECTS[Endpoint.CHAT].end_frames(ex, Usage(3, 4, counted_locally=True))
    usage_frame, cost, done = tail.split(b"\n\n")[:3]
    chunk = msgspec.json.decode(usage_frame[6:])
    assert chunk["object"] == "chat.completion.chunk" and chunk["choices"] == []
    assert chunk["usage"] == {
        "prompt_tokens": 3,
        "completion_tokens": 4,
        "total_tokens": 7,
        "counted_locally": True,
    }
    assert cost == b": x-relay-cost-usd 0.50000000" and done == b"data: [DONE]"


CHAT_HI = b'{"model":"m","messages":[{"role":"user","content":"hi"}]%s}'


@pytest.mark.parametrize(("value", "ok"), [(b"1", True), (b"128", True), (b"0", False), (b"129", False), (b"200000", False)])  # fmt: skip
def test_n_is_bounded_as_openai_bounds_it(value: bytes, ok: bool) -> None:
    body = CHAT_HI % (b',"n":' + value)
    if ok:
        parsed(body)
    else:
        err = refused(body)
        assert err.message == f"n: expected 1 to 128, got {int(value)}"
        assert err.param == "n"


def test_legacy_completions_bound_n_and_best_of() -> None:
    base = b'{"model":"m","prompt":"hi"%s}'
    assert refused(base % b',"n":1000', Endpoint.COMPLETIONS).param == "n"
    assert refused(base % b',"best_of":21', Endpoint.COMPLETIONS).param == "best_of"
    parsed(base % b',"n":2,"best_of":20', Endpoint.COMPLETIONS)


def test_embedding_inputs_are_one_kind_and_bounded() -> None:
    base = b'{"model":"m","input":%s}'
    err = refused(base % b'["a",5]', Endpoint.EMBEDDINGS)
    assert err.message.startswith("input[1]: expected a string like input[0]")
    assert refused(base % b"[[1,2],3]", Endpoint.EMBEDDINGS).param == "input[1]"
    assert refused(base % b"[]", Endpoint.EMBEDDINGS).param == "input"
    many = b"[" + b",".join([b'"a"'] * 2049) + b"]"
    assert "at most 2048" in refused(base % many, Endpoint.EMBEDDINGS).message
    for good in (b'"a"', b'["a","b"]', b"[1,2]", b"[[1],[2,3]]"):
        parsed(base % good, Endpoint.EMBEDDINGS)


@pytest.mark.parametrize(
    ("member", "param"),
    [
        (b'"tools":"x"', "tools"),
        (b'"tools":[5]', "tools[0]"),
        (b'"tools":[{"type":"function","function":"x"}]', "tools[0].function"),
        (b'"tool_choice":{"type":"function","function":"f"}', "tool_choice.function"),
        (b'"stop":5', "stop"),
        (b'"response_format":"json"', "response_format"),
    ],
)
def test_shapes_a_translator_reads_are_checked(member: bytes, param: str) -> None:
    # Sent to an Anthropic model, these crashed the translation (a 500): a 400 for everyone.
    err = refused(CHAT_HI % (b"," + member))
    assert err.param == param


def test_tool_calls_of_assistant_messages_are_checked() -> None:
    body = (
        b'{"model":"m","messages":[{"role":"user","content":"hi"},'
        b'{"role":"assistant","tool_calls":[{"id":"c","function":{"name":"f","arguments":{}}}]}]}'
    )
    assert refused(body).param == "messages[1].tool_calls[0].function.arguments"


def test_documented_tool_shapes_pass() -> None:
    parsed(
        CHAT_HI
        % (
            b',"tools":[{"type":"function","function":{"name":"f","parameters":{}}},'
            b'{"type":"custom","custom":{"name":"g"}}],'
            b'"tool_choice":{"type":"allowed_tools","allowed_tools":{"mode":"auto","tools":[]}},'
            b'"stop":["a"],"response_format":{"type":"json_schema","json_schema":{"name":"s"}}'
        )
    )
