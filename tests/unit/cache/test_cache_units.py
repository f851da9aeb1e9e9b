"""The cache's parts in process: key and policy, controls, the memory LRU, what is kept, and
the conversions between a JSON answer and a stream's events."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import msgspec
import pytest

from relay.cache.board import Board, create_board, withdraw_board
from relay.cache.controls import controls
from relay.cache.convert import assemble, events_of, explode
from relay.cache.entry import Entry, decode, encode
from relay.cache.memory import OVERHEAD_BYTES, MemoryBackend
from relay.cache.policy import Policy
from relay.cache.record import Recording, entry_of
from relay.config import Config
from relay.config.load import ConfigError, parse_config
from relay.errors import InvalidRequest
from relay.exchange import Attempt, Deployment, Endpoint, Exchange, Principal, Usage
from relay.wire.openai import ChatRequest

CONFIG = """
providers: {p: {kind: echo}}
models:
  m: {provider: p}
  local: {provider: p, deterministic: true}
  open: {provider: p, cache: {mode: all, ttl_s: 5}}
  shut: {provider: p, cache: {mode: off}}
cache: {mode: deterministic, ignore_fields: [seed_note]}
"""


def config(text: str = CONFIG) -> Config:
    return parse_config(text, "test.yaml", env={})


def exchange(body: dict[str, Any], *, tenant: str = "t", auth: str | None = None) -> Exchange:
    raw = msgspec.json.encode(body)
    ex = Exchange("req_1", Endpoint.CHAT, raw, {}, principal=Principal(tenant=tenant))
    ex.principal.client_authorization = auth
    ex.request = msgspec.json.decode(raw, type=ChatRequest)
    ex.model = body["model"]
    ex.deployment = Deployment("p", body["model"], body["model"])
    return ex


BODY: dict[str, Any] = {
    "model": "m",
    "messages": [{"role": "user", "content": "hi"}],
    "temperature": 0,
}


def test_off_in_yaml_is_the_mode_off_and_models_override() -> None:
    policy = Policy(config())
    assert policy.of("shut").mode == "off"
    assert (policy.of("open").mode, policy.of("open").ttl_s) == ("all", 5)
    assert policy.of("unlisted").mode == "deterministic"
    assert policy.enabled


def test_cache_problems_are_reported() -> None:
    bad = CONFIG.replace(
        "cache: {mode: deterministic, ignore_fields: [seed_note]}",
        "cache: {ttl_s: 0, ignore_fields: [messages], mode: sometimes}",
    )
    with pytest.raises(ConfigError) as caught:
        config(bad)
    problems = "\n".join(caught.value.problems)
    assert "cache.ttl_s: expected more than 0" in problems
    assert "cache.ignore_fields[0]: 'messages' changes the answer" in problems
    assert "cache.mode: expected one of 'off', 'deterministic', 'all'" in problems


def test_the_simple_form_with_redis_caches_deterministic_answers() -> None:
    simple = config("proxy: {target: https://api.openai.com}\nredis: {enabled: true}\n")
    assert simple.cache.mode == "deterministic"
    plain = config("proxy: {target: https://api.openai.com}\n")
    assert plain.cache.mode == "off"


def test_what_is_cacheable_in_deterministic_mode() -> None:
    policy = Policy(config())
    cases = [
        ({**BODY}, True),
        ({**BODY, "temperature": 0.5}, False),
        ({**BODY, "temperature": 0.5, "seed": 3}, True),
        ({**BODY, "n": 2}, False),
        ({**BODY, "model": "local", "temperature": 1}, True),
        ({**BODY, "model": "open", "temperature": 1}, True),
    ]
    for body, expected in cases:
        ex = exchange(body)
        assert policy.cacheable(ex, policy.of(ex.model)) is expected, body


def test_the_key_ignores_what_does_not_change_the_answer() -> None:
    policy = Policy(config())
    base = policy.key(exchange(BODY))
    assert policy.key(exchange({**BODY, "user": "u", "stream": True, "seed_note": "x"})) == base
    reordered = {"temperature": 0, "messages": BODY["messages"], "model": "m"}
    assert policy.key(exchange(reordered)) == base  # canonical JSON: keys sorted
    assert policy.key(exchange({**BODY, "max_tokens": 5})) != base
    assert policy.key(exchange(BODY, tenant="other")) != base
    assert policy.key(exchange(BODY, auth="Bearer a")) != policy.key(
        exchange(BODY, auth="Bearer b")
    )


def test_shared_tenants_share_a_key_but_never_across_credentials() -> None:
    policy = Policy(config(CONFIG.replace("ignore_fields: [seed_note]", "shared: true")))
    assert policy.key(exchange(BODY, tenant="a")) == policy.key(exchange(BODY, tenant="b"))
    assert policy.key(exchange(BODY, auth="x")) != policy.key(exchange(BODY, auth="y"))


def test_controls() -> None:
    assert controls({}, 60) == (True, True, None, 60)
    assert controls({"cache-control": "no-cache"}, 60)[:2] == (False, True)
    assert controls({"cache-control": "No-Store"}, 60)[:2] == (True, False)
    assert controls({"cache-control": "max-age=30"}, 60)[2] == 30
    assert controls({"cache-control": "max-age=soon"}, 60)[2] == 0
    assert controls({"x-relay-cache-ttl": "5"}, 60)[3] == 5
    for bad in ("0", "-1", "soon", "inf", "nan"):
        with pytest.raises(InvalidRequest, match="x-relay-cache-ttl"):
            controls({"x-relay-cache-ttl": bad}, 60)


def entry(body: bytes = b"{}", *, stream: bool = False) -> Entry:
    return Entry(1.0, stream, body, "chatcmpl-1", 7, "m", "p", (1, 2, 0), 0.5)


def test_the_memory_backend_evicts_the_least_recently_used_by_bytes() -> None:
    async def main() -> None:
        size = 1000 + 1 + OVERHEAD_BYTES
        memory = MemoryBackend(size * 2)
        tags = ("t", "m")
        for key in "abc":
            await memory.put(key, entry(b"x" * 1000), 60, tags)
            if key == "b":
                assert await memory.get("a") is not None  # a is now the most recent
        assert await memory.get("b") is None
        assert await memory.get("a") is not None and await memory.get("c") is not None
        assert memory.bytes == size * 2
        assert await memory.purge() == 2 and memory.bytes == 0
        await memory.put("old", entry(), -1, tags)
        assert await memory.get("old") is None
        for key in ("t1", "t2"):
            await memory.put(key, entry(), 60, tags)
        await memory.put("other", entry(), 60, ("u", "m"))
        assert await memory.purge(tenant="t") == 2
        assert len(memory) == 1 and await memory.purge(model="m") == 1

    asyncio.run(main())


def test_entries_round_trip_and_damage_is_a_miss() -> None:
    assert decode(encode(entry(b"abc"))) == entry(b"abc")
    assert decode(b"\x00garbage") is None


def finished(ex: Exchange, *, stream: bool) -> Exchange:
    ex.stream = stream
    ex.status = 200
    ex.answer = Attempt(Deployment("p", "m-up", "m"))
    ex.usage = Usage(3, 4, 0)
    ex.cost_usd = 0.25
    return ex


def chat_answer(message: dict[str, Any], finish: str = "stop") -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-9",
            "object": "chat.completion",
            "created": 11,
            "model": "m-up",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        }
    ).encode()


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


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
    payload = {
        "id": "chatcmpl-5",
        "object": "chat.completion.chunk",
        "created": 12,
        "model": "m-up",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


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


def test_a_purge_posted_on_the_board_reaches_another_reader(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env: dict[str, str] = {}
    path = create_board(env)
    try:
        one, two = Board(path), Board(path)
        seen: list[tuple[str | None, str | None]] = []
        one.post("tenanttag", None)
        one.post(None, "modeltag")
        two.apply(lambda t, m: seen.append((t, m)))
        assert seen == [("tenanttag", None), (None, "modeltag")]
        for _ in range(300):  # more than the ring holds: the reader purges everything
            one.post("x", None)
        seen.clear()
        two.apply(lambda t, m: seen.append((t, m)))
        assert seen == [(None, None)]
    finally:
        monkeypatch.setenv("RELAY_CACHE_SHM", path)
        withdraw_board()
