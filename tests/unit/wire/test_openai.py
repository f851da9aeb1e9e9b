"""The response probe: usage, generated text and the commit point, from one decode."""

from __future__ import annotations

from relay.wire.openai import PROBE_DECODER, usage_from_wire


def probe(data: bytes):  # type: ignore[no-untyped-def]
    return PROBE_DECODER.decode(data)


def test_chat_response_text_and_usage() -> None:
    p = probe(
        b'{"choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"},'
        b'{"index":1,"message":{"content":null,"tool_calls":[]}}],'
        b'"usage":{"prompt_tokens":7,"completion_tokens":2,"total_tokens":9,'
        b'"prompt_tokens_details":{"cached_tokens":3}}}'
    )
    assert [c.generated_text() for c in p.choices] == ["Hi", ""]
    usage = usage_from_wire(p.usage)
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens) == (7, 2, 3)


def test_role_chunk_is_not_content_but_text_tools_and_finish_are() -> None:
    role = probe(b'{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}')
    assert not role.choices[0].carries_content()
    for chunk in (
        b'{"choices":[{"index":0,"delta":{"content":"a"}}]}',
        b'{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0}]}}]}',
        b'{"choices":[{"index":0,"delta":{"refusal":"no"}}]}',
        b'{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}',
        b'{"choices":[{"index":0,"text":"legacy"}]}',
    ):
        assert probe(chunk).choices[0].carries_content(), chunk


def test_usage_only_chunk_and_error_event() -> None:
    p = probe(b'{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}')
    assert p.choices == [] and p.usage is not None
    assert probe(b'{"error":{"message":"x"}}').error == {"message": "x"}


def test_embeddings_body_has_no_choices() -> None:
    p = probe(b'{"object":"list","data":[{"embedding":[0.1]}],"usage":{"prompt_tokens":2}}')
    assert p.choices is None and p.usage is not None and p.usage.prompt_tokens == 2


def test_unknown_vendor_shapes_pass_as_opaque_content() -> None:
    from relay.wire.openai import probe_response

    odd = probe_response(
        b'{"choices":[{"index":0,"delta":{"content":[{"type":"text","text":"x"}]}}],'
        b'"usage":{"prompt_tokens":4,"completion_tokens":1,"total_tokens":5}}'
    )
    assert odd.choices is not None and odd.choices[0].carries_content()
    assert odd.choices[0].generated_text() == ""
    assert odd.usage is not None and odd.usage.prompt_tokens == 4
    assert probe_response(b"[1, 2]").choices is not None


def test_not_json_is_still_an_error() -> None:
    import msgspec
    import pytest

    from relay.wire.openai import probe_response

    with pytest.raises(msgspec.DecodeError):
        probe_response(b"not json")
