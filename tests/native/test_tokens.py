"""relay._native.TokenCounter and encoding_for_model."""

from __future__ import annotations

import json
import threading

import pytest

from relay._native import (
    InvalidJson,
    NativeError,
    TokenCounter,
    UnknownEncoding,
    encoding_for_model,
)


@pytest.fixture(scope="module")
def o200k() -> TokenCounter:
    return TokenCounter("o200k_base")


@pytest.fixture(scope="module")
def cl100k() -> TokenCounter:
    return TokenCounter("cl100k_base")


def test_encoding_names(o200k: TokenCounter, cl100k: TokenCounter) -> None:
    assert o200k.encoding == "o200k_base"
    assert cl100k.encoding == "cl100k_base"
    assert repr(cl100k) == "TokenCounter('cl100k_base')"


def test_unknown_encoding() -> None:
    with pytest.raises(UnknownEncoding, match="p50k_base"):
        TokenCounter("p50k_base")
    assert issubclass(UnknownEncoding, NativeError)


# Counts published by OpenAI (tiktoken README and the cookbook notebook
# "How to count tokens with tiktoken").
KNOWN = [
    ("hello world", 2, 2),
    ("tiktoken is great!", 6, 6),
    ("antidisestablishmentarianism", 6, 6),
    ("2 + 2 = 4", 7, 7),
    ("お誕生日おめでとう", 9, 8),
    ("", 0, 0),
]


@pytest.mark.parametrize(("text", "cl100k_n", "o200k_n"), KNOWN)
def test_known_counts(
    o200k: TokenCounter, cl100k: TokenCounter, text: str, cl100k_n: int, o200k_n: int
) -> None:
    assert cl100k.count(text) == cl100k_n
    assert o200k.count(text) == o200k_n


def test_special_tokens_are_text(cl100k: TokenCounter) -> None:
    assert cl100k.count("<|endoftext|>") > 1


def test_instances_share_one_encoding() -> None:
    a, b = TokenCounter("o200k_base"), TokenCounter("o200k_base")
    assert a.count("shared ranks") == b.count("shared ranks")


def test_long_text_and_threads(o200k: TokenCounter) -> None:
    # Texts of 8 KiB and more are counted with the GIL released.
    text = "The quick brown fox jumps over the lazy dog. " * 2000
    want = o200k.count(text)
    assert 9 * 2000 <= want <= 11 * 2000
    results: list[int] = []

    def work() -> None:
        results.append(o200k.count(text))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [want] * 4


def test_pathological_inputs(o200k: TokenCounter, cl100k: TokenCounter) -> None:
    for text in [" " * 100_000, "\n" * 50_000, "1" * 30_000, "a" * 100_000]:
        assert 0 < o200k.count(text) <= len(text)
        assert 0 < cl100k.count(text) <= len(text)


@pytest.mark.parametrize("ws", [" ", "\t", "\u3000", " \t"])
def test_million_character_whitespace_runs(o200k: TokenCounter, ws: str) -> None:
    # The regex engine overflows on ~1M-character whitespace runs; long runs
    # are cut into pieces, so this is counted (approximately) instead.
    text = "start" + ws * (1_200_000 // len(ws)) + "end"
    n = o200k.count(text)
    assert 0 < n < len(text) // 2
    per_piece = o200k.count(ws * (65536 // len(ws)))
    assert abs(n - per_piece * len(text) / 65536) < 0.1 * n + 10


# The OpenAI cookbook example: 129 prompt tokens for gpt-3.5-turbo-0613 / gpt-4-0613.
COOKBOOK_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates "
        "corporate jargon into plain English.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "New synergies will help drive top-line growth.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on "
        "opportunities for increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the "
        "client deliverable.",
    },
]


def body(**kw: object) -> bytes:
    return json.dumps(kw).encode()


def cookbook_count(counter: TokenCounter, messages: list[dict[str, str]]) -> int:
    """The cookbook's num_tokens_from_messages, over TokenCounter.count."""
    n = 3
    for m in messages:
        n += 3
        for key, value in m.items():
            n += counter.count(value)
            if key == "name":
                n += 1
    return n


def test_count_chat_cookbook(cl100k: TokenCounter, o200k: TokenCounter) -> None:
    assert cl100k.count_chat(body(model="gpt-4-0613", messages=COOKBOOK_MESSAGES)) == 129
    b = body(messages=COOKBOOK_MESSAGES)
    assert o200k.count_chat(b) == cookbook_count(o200k, COOKBOOK_MESSAGES)


def test_count_chat_parts_and_tool_calls(o200k: TokenCounter) -> None:
    c = o200k.count
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                {"type": "text", "text": "this picture?"},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"q": "cat"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "a cat"},
    ]
    want = (
        3
        + (3 + c("user") + c("What is in") + c("this picture?"))
        + (3 + c("assistant") + c("lookup") + c('{"q": "cat"}'))
        + (3 + c("tool") + c("call_1") + c("a cat"))
    )
    assert o200k.count_chat(body(model="gpt-4o", messages=messages)) == want


def test_count_chat_tools_counted_as_compact_json(o200k: TokenCounter) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    base = o200k.count_chat(body(messages=[{"role": "user", "content": "hi"}]))
    with_tools = o200k.count_chat(body(messages=[{"role": "user", "content": "hi"}], tools=tools))
    compact = json.dumps(tools, separators=(",", ":"), sort_keys=True)
    assert with_tools - base == o200k.count(compact)


def test_count_chat_large_body(o200k: TokenCounter) -> None:
    messages = [{"role": "user", "content": "lorem ipsum " * 1000}] * 3
    b = body(messages=messages)
    assert len(b) > 8192
    assert o200k.count_chat(b) == cookbook_count(o200k, messages)


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b'{"messages": [', r"line 1 column 14 \(byte offset 13\)"),
        (b'{\n "messages": x}', r"line 2 column 14 \(byte offset 15\)"),
        (b"", "byte offset 0"),
        (b"{}", "messages"),
        (b'{"messages": {}}', "messages"),
        (b'{"messages": ["hi"]}', r"messages\[0\]"),
        (b"[]", "object"),
    ],
)
def test_count_chat_invalid(o200k: TokenCounter, raw: bytes, match: str) -> None:
    with pytest.raises(InvalidJson, match=match):
        o200k.count_chat(raw)


def messages_body() -> tuple[bytes, dict[str, object]]:
    """An agent's Messages request: system blocks, thinking, tool use and results, tools."""
    request: dict[str, object] = {
        "model": "claude",
        "max_tokens": 100,
        "system": [
            {"type": "text", "text": "You are a careful agent. " * 40},
            {"type": "text", "text": "Cite sources.", "cache_control": {"type": "ephemeral"}},
        ],
        "messages": [
            {"role": "user", "content": "Find the weather in Paris."},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "I need the tool.", "signature": "c2ln"},
                    {"type": "text", "text": "Looking it up."},
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "get_weather",
                        "input": {"units": "metric", "city": "Paris"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": [
                            {"type": "text", "text": "Sunny, 21 degrees. " * 50},
                            {
                                "type": "image",
                                "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
                            },
                        ],
                    },
                    {"type": "tool_result", "tool_use_id": "toolu_2", "content": "No rain today."},
                    {
                        "type": "document",
                        "source": {"type": "text", "media_type": "text/plain", "data": "A memo."},
                    },
                    {"type": "text", "text": "Summarise."},
                ],
            },
        ],
        "tools": [
            {
                "name": "get_weather",
                "description": "Weather for a city",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
            }
        ],
    }  # fmt: skip
    return json.dumps(request).encode(), request


def test_count_messages_by_hand(o200k: TokenCounter) -> None:
    c = o200k.count
    raw, request = messages_body()
    want = (
        3
        + (3 + c("system") + c("You are a careful agent. " * 40) + c("Cite sources."))
        + (3 + c("user") + c("Find the weather in Paris."))
        + (
            3
            + c("assistant")
            + c("I need the tool.")
            + c("Looking it up.")
            + c("get_weather")
            + c('{"city":"Paris","units":"metric"}')
        )
        + (
            3
            + c("user")
            + c("Sunny, 21 degrees. " * 50)
            + c("No rain today.")
            + c("A memo.")
            + c("Summarise.")
        )
        + c(json.dumps(request["tools"], separators=(",", ":"), sort_keys=True))
    )
    assert o200k.count_messages(raw) == want
    # The chat count misses the system prompt, the blocks and the tool results.
    assert o200k.count_chat(raw) < want // 4


def test_count_messages_string_system_and_invalid(o200k: TokenCounter) -> None:
    c = o200k.count
    raw = body(system="be brief", messages=[{"role": "user", "content": "hi"}])
    assert o200k.count_messages(raw) == 3 + (3 + c("system") + c("be brief")) + (
        3 + c("user") + c("hi")
    )
    with pytest.raises(InvalidJson, match="messages"):
        o200k.count_messages(b'{"system": "x"}')
    with pytest.raises(InvalidJson, match=r"messages\[0\]"):
        o200k.count_messages(b'{"messages": ["hi"]}')


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini-2024-07-18", "o200k_base"),
        ("gpt-4.1", "o200k_base"),
        ("gpt-4.1-nano", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("gpt-5-mini", "o200k_base"),
        ("o1", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("o4-mini", "o200k_base"),
        ("chatgpt-4o-latest", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-0613", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
        ("text-embedding-ada-002", "cl100k_base"),
        ("ft:gpt-3.5-turbo:acme::abc", "cl100k_base"),
        ("llama-3.1-70b", "o200k_base"),
        ("", "o200k_base"),
    ],
)
def test_encoding_for_model(model: str, encoding: str) -> None:
    assert encoding_for_model(model) == encoding


def test_count_chat_counts_refusal_and_assistant_tool_calls(o200k: TokenCounter) -> None:
    c = o200k.count
    call = {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": '{"q":1}'}}
    messages = [{"role": "assistant", "refusal": "I can't help", "tool_calls": [call]}]
    want = 3 + 3 + c("assistant") + c("I can't help") + c("lookup") + c('{"q":1}')
    assert o200k.count_chat(body(messages=messages)) == want


def deep(n: int) -> str:
    return "[" * n + "]" * n


def test_count_chat_beyond_the_recursion_limit_is_approximated(o200k: TokenCounter) -> None:
    """Valid JSON too deep for the parser must still be priced, never at 0."""
    hi = {"role": "user", "content": "hi"}
    base = o200k.count_chat(body(messages=[hi]))
    deep_msg = '{"role":"user","content":"what is this?","extra":' + deep(300) + "}"
    raw = b'{"messages":[' + json.dumps(hi).encode() + b"," + deep_msg.encode() + b"]}"
    assert o200k.count_chat(raw) == base + 3 + o200k.count(deep_msg)
    # Deep content parts, deep tools: never an error, never 0.
    parts = (
        '{"messages":[{"role":"user","content":[{"type":"text","text":"x","y":'
        + deep(500)
        + "}]}]}"
    )
    assert o200k.count_chat(parts.encode()) > 3
    tools = '{"messages":[],"tools":[{"type":"function","function":' + deep(1000) + "}]}"
    assert o200k.count_chat(tools.encode()) > 3 + o200k.count(deep(1000)) // 2
    # Shallower than the limit: exact, as before.
    ok = '{"messages":[{"role":"user","content":"hi","extra":' + deep(100) + "}]}"
    assert o200k.count_chat(ok.encode()) == base
    # Invalid JSON is still an error.
    with pytest.raises(InvalidJson):
        o200k.count_chat(raw[:-1])
