"""A JSON answer from a stream's events and back (``relay.cache.convert``)."""

from __future__ import annotations

import json

from relay.cache.convert import assemble, events_of, explode
from relay.exchange import Endpoint
from tests.unit.cache.cases import (
    chat_answer,
)


def test_a_json_answer_exploded_into_events_assembles_back() -> None:
    body = chat_answer({"role": "assistant", "content": "One two"})
    blob = explode(Endpoint.CHAT, body)
    assert [k for k, _ in events_of(blob)] == [b""] * 3
    again = json.loads(assemble(Endpoint.CHAT, blob, "chatcmpl-9", 11, (1, 2, 0)))
    assert again["choices"][0]["message"]["content"] == "One two"
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude",
        "content": [
            {"type": "text", "text": "Hi"},
            {"type": "tool_use", "id": "t1", "name": "f", "input": {"x": 1}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": 3},
    }
    blob = explode(Endpoint.MESSAGES, json.dumps(message).encode())
    kinds = [k for k, _ in events_of(blob)]
    assert kinds[0] == b"message_start" and kinds[-1] == b"message_delta"
    back = json.loads(assemble(Endpoint.MESSAGES, blob, "msg_2", 0, (5, 3, 0)))
    assert back["content"] == message["content"] and back["stop_reason"] == "tool_use"
    assert back["id"] == "msg_2" and back["usage"]["output_tokens"] == 3
