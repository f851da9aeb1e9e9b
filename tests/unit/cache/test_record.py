"""What the writer keeps (``relay.cache.record``)."""

from __future__ import annotations

import json

from relay.cache.convert import assemble
from relay.cache.record import Recording, entry_of
from relay.exchange import Endpoint
from tests.unit.cache.cases import (
    BODY,
    chat_answer,
    chunk,
    exchange,
    finished,
)


def test_refusals_tool_calls_and_errors_are_not_kept() -> None:
    rec = Recording("k", 60, ("t", "m"))
    ex = finished(exchange(BODY), stream=False)
    rec.body = chat_answer({"role": "assistant", "content": "hi"})
    kept = entry_of(ex, rec, tool_calls=False)
    assert kept is not None and (kept.answer_id, kept.created, kept.cost_usd) == (
        "chatcmpl-9",
        11,
        0.25,
    )
    rec.body = chat_answer({"role": "assistant", "content": None, "refusal": "no"})
    assert entry_of(ex, rec, tool_calls=False) is None
    calls = [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    rec.body = chat_answer(
        {"role": "assistant", "content": None, "tool_calls": calls}, "tool_calls"
    )
    assert entry_of(ex, rec, tool_calls=False) is None
    assert entry_of(ex, rec, tool_calls=True) is not None
    ex.truncated = True
    assert entry_of(ex, rec, tool_calls=True) is None


def test_a_stream_is_kept_without_its_usage_chunk_and_assembled() -> None:
    events = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hello "}),
        chunk({"content": "there"}),
        chunk({}, "stop"),
        b'data: {"id":"chatcmpl-5","choices":[],"usage":{"prompt_tokens":3}}\n\n',
    ]
    rec = Recording("k", 60, ("t", "m"))
    rec.events = events
    kept = entry_of(finished(exchange(BODY), stream=True), rec, tool_calls=False)
    assert kept is not None and kept.stream and kept.stop == "stop"
    assert kept.body == b"".join(events[:4]) and kept.created == 12
    answer = json.loads(assemble(Endpoint.CHAT, kept.body, "chatcmpl-new", 99, kept.usage))
    assert answer["id"] == "chatcmpl-new" and answer["created"] == 99
    assert answer["choices"][0]["message"]["content"] == "Hello there"
    assert answer["usage"]["total_tokens"] == 7
