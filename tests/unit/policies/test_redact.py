"""``kind: redact``: its config errors by path, the request redacted on every endpoint with one
table per request, blocks, and restoration of JSON answers and streams (every dialect's shape,
placeholders split at every byte) through the policy's hooks."""

from __future__ import annotations

import json
import textwrap
from typing import Any

import pytest

from relay.config import ConfigError, parse_config
from relay.dialects import ANTHROPIC_DIALECTS, OPENAI_DIALECTS, RESPONSES_DIALECTS
from relay.errors import PolicyBlocked
from relay.exchange import Endpoint, Exchange
from relay.policies.base import PolicySpec
from relay.policies.redact import RedactPolicy, build, redact_text

DIALECTS = {d.endpoint: d for d in (*OPENAI_DIALECTS, *ANTHROPIC_DIALECTS, *RESPONSES_DIALECTS)}

BASE = """
providers: {e: {kind: echo}}
models: {m: {provider: e}}
"""


def policy(**settings: Any) -> RedactPolicy:
    config = parse_config(BASE, "t.yaml", {})
    built = build(PolicySpec("pii", "redact", settings, config))
    assert isinstance(built, RedactPolicy)
    return built


def problems(block: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(BASE + textwrap.dedent(block), "t.yaml", {})
    return info.value.problems


def exchange(endpoint: Endpoint, body: dict[str, Any]) -> Exchange:
    ex = Exchange("req", endpoint, json.dumps(body).encode(), {}, dialect=DIALECTS[endpoint])
    DIALECTS[endpoint].parse(ex)
    return ex


def test_config_errors_name_their_path() -> None:
    text = "\n".join(
        problems(
            """
            policies:
              a: {kind: redact, entities: {fax: mask}}
              b: {kind: redact, entities: {email: hide}}
              c: {kind: redact, custom: {emp: "EMP-("}}
              d: {kind: redact, custom: {emp: 7}}
              e: {kind: redact, restore: maybe}
              f: {kind: redact, colour: red}
            middleware: [a]
            """
        )
    )
    assert "policies.a.entities.fax: unknown kind (built-in: api_key, email" in text
    assert "policies.b.entities.email: unknown action 'hide'" in text
    assert "policies.c.custom.emp: invalid pattern" in text
    assert "policies.d.custom.emp: expected a regular expression" in text
    assert "policies.e.restore: expected true or false" in text
    assert "policies.f.colour: unknown setting of kind 'redact'" in text


def test_defaults_cover_every_builtin_kind() -> None:
    p = policy()
    assert p.redactor.kinds == [
        "api_key",
        "email",
        "iban",
        "card",
        "ssn",
        "ipv4",
        "ipv6",
        "phone",
    ]
    assert p.answer_hook is None and p.stream_hook is None


def test_chat_texts_share_one_table() -> None:
    p = policy(
        entities={"email": "placeholder", "phone": "mask"},
        custom={"employee_id": "EMP-[0-9]{6}"},
    )
    ex = exchange(
        Endpoint.CHAT,
        {
            "model": "m",
            "messages": [
                {"role": "system", "content": "Staff EMP-123456 is ann@x.io"},
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "Mail ann@x.io, +1 415 555 2671"}],
                },
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "c",
                            "type": "function",
                            "function": {"name": "f", "arguments": '{"to": "bo@y.io"}'},
                        }
                    ],
                },
            ],
        },
    )
    p.on_request(ex)
    body = json.loads(ex.body)
    assert body["messages"][0]["content"] == "Staff [EMPLOYEE_ID_1] is [EMAIL_1]"
    assert body["messages"][1]["content"][0]["text"] == "Mail [EMAIL_1], +* *** *** 2671"
    assert json.loads(body["messages"][2]["tool_calls"][0]["function"]["arguments"]) == {
        "to": "[EMAIL_2]"
    }
    assert ex.request.messages[0].content == "Staff [EMPLOYEE_ID_1] is [EMAIL_1]"


def test_a_request_without_pii_keeps_its_bytes() -> None:
    p = policy(restore=True)
    ex = exchange(Endpoint.CHAT, {"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    before = ex.body
    p.on_request(ex)
    assert ex.body is before
    assert not ex.state or p.restoring not in ex.state


@pytest.mark.parametrize(
    ("endpoint", "body"),
    [
        (
            Endpoint.MESSAGES,
            {
                "model": "m",
                "max_tokens": 5,
                "system": "ssn 219-09-9999",
                "messages": [{"role": "user", "content": "hi"}],
            },
        ),
        (Endpoint.RESPONSES, {"model": "m", "input": "ssn 219-09-9999"}),
        (Endpoint.EMBEDDINGS, {"model": "m", "input": ["ok", "ssn 219-09-9999"]}),
        (Endpoint.COMPLETIONS, {"model": "m", "prompt": "ssn 219-09-9999"}),
    ],
)
def test_block_names_the_kind_never_the_value(endpoint: Endpoint, body: dict[str, Any]) -> None:
    p = policy(entities={"ssn": "block"})
    ex = exchange(endpoint, body)
    with pytest.raises(PolicyBlocked) as info:
        p.on_request(ex)
    assert info.value.code == "input_blocked"
    assert "kind ssn" in info.value.message and "219" not in info.value.message
    assert ex.blocked_by == "pii"


def restoring(endpoint: Endpoint, body: dict[str, Any]) -> tuple[RedactPolicy, Exchange]:
    p = policy(entities={"email": "placeholder"}, restore=True)
    ex = exchange(endpoint, body)
    p.on_request(ex)
    return p, ex


def test_cache_is_skipped_when_values_are_restored() -> None:
    _, ex = restoring(
        Endpoint.CHAT, {"model": "m", "messages": [{"role": "user", "content": "a@x.io"}]}
    )
    assert ex.headers.get("cache-control") == "no-cache, no-store"
    assert dict(ex.headers) == {"cache-control": "no-cache, no-store"}


def test_json_answers_in_each_dialect() -> None:
    p, ex = restoring(
        Endpoint.MESSAGES,
        {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "to a@x.io"}]},
    )
    assert b"a@x.io" not in ex.body
    hook = p.answer_hook
    assert hook is not None
    answer = {
        "content": [
            {"type": "text", "text": "Sent to [EMAIL_1]."},
            {"type": "tool_use", "id": "t", "name": "send", "input": {"to": "[EMAIL_1]"}},
        ]
    }
    out = json.loads(hook.on_answer(ex, json.dumps(answer).encode()))
    assert out["content"][0]["text"] == "Sent to a@x.io."
    assert out["content"][1]["input"] == {"to": "a@x.io"}
    untouched = b'{"content": []}'
    assert hook.on_answer(ex, untouched) is untouched


def sse(event: str | None, data: dict[str, Any]) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


def openai_events(text: str, cut: int) -> list[bytes]:
    return [
        sse(None, {"choices": [{"index": 0, "delta": {"content": text[:cut]}}]}),
        sse(None, {"choices": [{"index": 0, "delta": {"content": text[cut:]}}]}),
        sse(None, {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
    ]


def anthropic_events(text: str, cut: int) -> list[bytes]:
    def delta(part: str) -> bytes:
        return sse(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": part},
            },
        )

    return [
        delta(text[:cut]),
        sse("ping", {"type": "ping"}),
        delta(text[cut:]),
        sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
    ]


def responses_events(text: str, cut: int) -> list[bytes]:
    def delta(part: str, seq: int) -> bytes:
        return sse(
            "response.output_text.delta",
            {
                "type": "response.output_text.delta",
                "item_id": "msg_1",
                "output_index": 0,
                "content_index": 0,
                "delta": part,
                "sequence_number": seq,
            },
        )

    done = {
        "type": "response.output_text.done",
        "item_id": "msg_1",
        "output_index": 0,
        "content_index": 0,
        "text": text,
        "sequence_number": 3,
    }
    return [delta(text[:cut], 1), delta(text[cut:], 2), sse("response.output_text.done", done)]


def streamed_text(frames: bytes) -> str:
    """What a client reads from the frames: every delta's text, and the done event's text."""
    out = []
    for frame in frames.split(b"\n\n"):
        data = next((line[6:] for line in frame.split(b"\n") if line.startswith(b"data: ")), None)
        if not data:
            continue
        value = json.loads(data)
        if "choices" in value:
            out.append(value["choices"][0]["delta"].get("content") or "")
        elif value.get("type") == "content_block_delta":
            out.append(value["delta"]["text"])
        elif value.get("type") == "response.output_text.delta":
            out.append(value["delta"])
        elif value.get("type") == "response.output_text.done":
            out.append("|" + value["text"])
    return "".join(out)


@pytest.mark.parametrize(
    ("endpoint", "events"),
    [
        (Endpoint.CHAT, openai_events),
        (Endpoint.MESSAGES, anthropic_events),
        (Endpoint.RESPONSES, responses_events),
    ],
)
def test_streams_restore_a_placeholder_split_at_every_byte(endpoint: Endpoint, events: Any) -> None:
    body: dict[str, Any] = {"model": "m", "stream": True}
    prompt = "write to a@x.io and b@y.io"
    if endpoint is Endpoint.CHAT:
        body["messages"] = [{"role": "user", "content": prompt}]
    elif endpoint is Endpoint.MESSAGES:
        body |= {"max_tokens": 5, "messages": [{"role": "user", "content": prompt}]}
    else:
        body["input"] = prompt
    answer = "Hi [EMAIL_1], cc [EMAIL_2]!"
    want = "Hi a@x.io, cc b@y.io!"
    for cut in range(len(answer) + 1):
        p, ex = restoring(endpoint, body)
        hook = p.stream_hook
        assert hook is not None
        frames = b"".join(hook.on_event(ex, e) for e in events(answer, cut)) + hook.on_end(ex)
        got = streamed_text(frames)
        if endpoint is Endpoint.RESPONSES:
            assert got == want + "|" + want, cut
        else:
            assert got == want, cut


def test_a_stream_of_another_request_is_untouched() -> None:
    p = policy(entities={"email": "placeholder"}, restore=True)
    ex = exchange(Endpoint.CHAT, {"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    p.on_request(ex)
    hook = p.stream_hook
    assert hook is not None
    event = openai_events("[EMAIL_1]", 3)[0]
    assert hook.on_event(ex, event) is event
    assert hook.on_end(ex) == b""


def test_redact_text_for_stored_content() -> None:
    """What ``log_content``'s ``store: redacted`` keeps: every built-in kind as a placeholder."""
    text = "mail a@x.io from 203.0.113.7 with key AKIAIOSFODNN7EXAMPLE, ssn 219-09-9999"
    assert redact_text(text) == "mail [EMAIL_1] from [IPV4_1] with key [API_KEY_1], ssn [SSN_1]"
    assert redact_text("nothing here") == "nothing here"
    parse_config(BASE + "policies: {audit: {kind: log_content, store: redacted}}\n", "t.yaml", {})
