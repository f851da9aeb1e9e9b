"""The texts every policy kind shares: what the caller wrote on each endpoint, in order, and
rewrites that re-encode the body once and refresh what later stages read."""

from __future__ import annotations

import json
from typing import Any

import pytest

from relay.dialects import ANTHROPIC_DIALECTS, OPENAI_DIALECTS, RESPONSES_DIALECTS
from relay.exchange import Endpoint, Exchange
from relay.policies.texts import (
    answer_texts,
    edit_request,
    event_text,
    prompt_texts,
    rewrite_texts,
)

DIALECTS = {d.endpoint: d for d in (*OPENAI_DIALECTS, *ANTHROPIC_DIALECTS, *RESPONSES_DIALECTS)}


def exchange(endpoint: Endpoint, body: dict[str, Any] | bytes) -> Exchange:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    ex = Exchange("req", endpoint, raw, {}, dialect=DIALECTS[endpoint])
    DIALECTS[endpoint].parse(ex)
    return ex


CASES: list[tuple[Endpoint, dict[str, Any], list[str]]] = [
    (
        Endpoint.CHAT,
        {
            "model": "m",
            "messages": [
                {"role": "system", "content": "sys"},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "part"},
                        {"type": "image_url", "image_url": {"url": "u"}},
                    ],
                },
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c",
                            "type": "function",
                            "function": {"name": "f", "arguments": '{"a": "args"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c", "content": "result"},
            ],
        },
        ["sys", "part", '{"a": "args"}', "result"],
    ),
    (Endpoint.COMPLETIONS, {"model": "m", "prompt": ["one", "two"]}, ["one", "two"]),
    (Endpoint.COMPLETIONS, {"model": "m", "prompt": [1, 2, 3]}, []),
    (Endpoint.EMBEDDINGS, {"model": "m", "input": "embed me"}, ["embed me"]),
    (
        Endpoint.MESSAGES,
        {
            "model": "m",
            "max_tokens": 5,
            "system": [{"type": "text", "text": "sys"}],
            "messages": [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "content": [
                        {
                            "type": "tool_use",
                            "id": "t",
                            "name": "f",
                            "input": {"q": "look", "n": [1, "deep"]},
                        }
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "t",
                            "content": [{"type": "text", "text": "found"}],
                        }
                    ],
                },
            ],
        },
        ["sys", "hi", "look", "deep", "found"],
    ),
    (
        Endpoint.RESPONSES,
        {
            "model": "m",
            "instructions": "be brief",
            "input": [
                {"role": "user", "content": "q"},
                {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "q2"}],
                },
                {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c", "output": "out"},
            ],
        },
        ["be brief", "q", "q2", "{}", "out"],
    ),
]


@pytest.mark.parametrize(("endpoint", "body", "texts"), CASES)
def test_prompt_texts_on_every_endpoint(
    endpoint: Endpoint, body: dict[str, Any], texts: list[str]
) -> None:
    assert prompt_texts(exchange(endpoint, body)) == texts


@pytest.mark.parametrize(("endpoint", "body", "texts"), CASES)
def test_rewrite_reencodes_once_and_reparses(
    endpoint: Endpoint, body: dict[str, Any], texts: list[str]
) -> None:
    ex = exchange(endpoint, body)
    changed = rewrite_texts(ex, lambda t: t.upper())
    assert changed == bool(texts)
    assert prompt_texts(ex) == [t.upper() for t in texts]
    # The body and the typed request describe the same rewritten request.
    again = exchange(endpoint, ex.body)
    assert again.request == ex.request


def test_unchanged_request_keeps_its_bytes() -> None:
    raw = b'{"model":"m",  "messages":[{"role":"user","content":"hi"}]}'
    ex = exchange(Endpoint.CHAT, raw)
    assert not rewrite_texts(ex, lambda t: None)
    assert not rewrite_texts(ex, lambda t: t)
    assert ex.body is raw


def test_rewrite_refreshes_model_and_request() -> None:
    ex = exchange(Endpoint.CHAT, {"model": "a", "messages": [{"role": "user", "content": "x"}]})

    def rename(tree: dict[str, Any]) -> bool:
        tree["model"] = "b"
        return True

    assert edit_request(ex, rename)
    assert ex.model == "b" and ex.request.model == "b"
    assert json.loads(ex.body)["model"] == "b"


def test_passthrough_is_not_read() -> None:
    ex = Exchange("r", Endpoint.PASSTHROUGH, b'{"prompt": "x"}', {})
    assert prompt_texts(ex) == []
    assert not rewrite_texts(ex, str.upper)


def test_answer_texts_in_each_dialect() -> None:
    chat = exchange(Endpoint.CHAT, {"model": "m", "messages": [{"role": "user", "content": "x"}]})
    body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}}]}
    assert answer_texts(chat, json.dumps(body).encode()) == ["hello"]
    msgs = exchange(
        Endpoint.MESSAGES,
        {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}]},
    )
    body2 = {
        "content": [
            {"type": "text", "text": "hi"},
            {"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}},
        ]
    }
    assert answer_texts(msgs, json.dumps(body2).encode()) == ["hi", '{"a":1}']
    resp = exchange(Endpoint.RESPONSES, {"model": "m", "input": "x"})
    body3 = {
        "output": [
            {"type": "message", "content": [{"type": "output_text", "text": "out"}]},
            {"type": "function_call", "arguments": "{}"},
        ]
    }
    assert answer_texts(resp, json.dumps(body3).encode()) == ["out", "{}"]


def test_event_text_in_each_dialect() -> None:
    chat = exchange(Endpoint.CHAT, {"model": "m", "messages": [{"role": "user", "content": "x"}]})
    chunk = {"choices": [{"index": 0, "delta": {"content": "tok"}}]}
    assert event_text(chat, b"data: " + json.dumps(chunk).encode() + b"\n\n") == "tok"
    assert event_text(chat, b"data: [DONE]\n\n") == ""
    msgs = exchange(
        Endpoint.MESSAGES,
        {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}]},
    )
    ev = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"ab"}}\n\n'
    assert event_text(msgs, ev) == "ab"
    resp = exchange(Endpoint.RESPONSES, {"model": "m", "input": "x"})
    ev2 = b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":"cd"}\n\n'
    assert event_text(resp, ev2) == "cd"
