"""The Anthropic translators and pass-through on the contract fixtures (tests/contracts): JSON
answers, streams fed whole and split at every byte, usage with cache reads and writes, error
types, and the request rules that need no server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from relay.accounting.usage import cost_usd
from relay.config.model import Pricing, ProviderConfig
from relay.dialects import ANTHROPIC_DIALECTS, OPENAI_DIALECTS
from relay.errors import GatewayError, InvalidRequest, ModelNotFound, UpstreamUnreachable
from relay.exchange import Attempt, Deployment, Endpoint, Exchange, Usage
from relay.providers.anthropic import AnthropicProvider, EventRelay
from relay.providers.translate import anthropic_to_openai, openai_to_anthropic
from relay.wire.anthropic import WireUsage, usage_from_wire

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"
CHAT, MESSAGES = OPENAI_DIALECTS[0], ANTHROPIC_DIALECTS[0]
PROVIDER = AnthropicProvider(
    "claude",
    ProviderConfig(kind="anthropic", base_url="http://h/v1", api_key="sk-ant-secret-1"),
)


def fixture(name: str) -> bytes:
    return (CONTRACTS / name).read_bytes()


def attempt() -> Attempt:
    return Attempt(Deployment("claude", "claude-up", "claude"))


def exchange(body: dict[str, Any], dialect: Any = CHAT) -> Exchange:
    ex = Exchange("req_1", dialect.endpoint, msgspec.json.encode(body), {}, dialect=dialect)
    dialect.parse(ex)
    return ex


def feed_all(mapper: Any, data: bytes, size: int | None = None) -> tuple[bytes, Any]:
    """Feed ``data`` in pieces of ``size`` (whole when None); the frames and the last step."""
    pieces = [data] if size is None else [data[i : i + size] for i in range(0, len(data), size)]
    out, step = b"", None
    for piece in pieces:
        step = mapper.feed(piece)
        out += step.out
        if step.error is not None or step.done:
            break
    return out, step


def text_of(mapper: Any, data: bytes, size: int | None = None) -> str:
    """The generated text of each read (what the relay counts), joined."""
    pieces = [data] if size is None else [data[i : i + size] for i in range(0, len(data), size)]
    return "".join(mapper.feed(piece).text for piece in pieces)


def sse_json(out: bytes) -> list[Any]:
    return [
        json.loads(line[6:])
        for line in out.decode().split("\n")
        if line.startswith("data: ") and line != "data: [DONE]"
    ]


# -- Anthropic answers for OpenAI clients ---------------------------------------------------


def test_message_with_tool_use_and_cache_usage_as_chat_completion() -> None:
    a = attempt()
    body = json.loads(
        openai_to_anthropic.response("claude", a, fixture("anthropic_message_tool_use.json"))
    )
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "I'll check the weather."
    call = choice["message"]["tool_calls"][0]
    assert call["id"] == "toolu_01A09q90qw90lq917835lq9"
    assert json.loads(call["function"]["arguments"]) == {
        "location": "San Francisco, CA",
        "unit": "celsius",
    }
    # 2095 uncached + 1000 written + 3000 read: each prompt token once
    assert body["usage"] == {
        "prompt_tokens": 6095,
        "completion_tokens": 503,
        "total_tokens": 6598,
        "prompt_tokens_details": {"cached_tokens": 3000},
    }
    assert a.usage == Usage(6095, 503, 3000, 1000)


@pytest.mark.parametrize("size", [None, 1, 7, 64])
def test_anthropic_stream_as_chat_chunks_split_anywhere(size: int | None) -> None:
    data = fixture("anthropic_stream_tool_use.sse")
    mapper = openai_to_anthropic.ChunkStream("claude", attempt(), include_usage=True)
    out, step = feed_all(mapper, data, size)
    assert step.done
    chunks = sse_json(out)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "".join(
        c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]
    ) == ("Okay, let me check.")
    calls = [
        tc for c in chunks if c["choices"] for tc in c["choices"][0]["delta"].get("tool_calls", [])
    ]
    assert calls[0] == {
        "index": 0,
        "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    assert json.loads("".join(c["function"]["arguments"] for c in calls)) == {
        "location": "San Francisco, CA",
        "unit": "fahrenheit",
    }
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "tool_calls"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["prompt_tokens"] == 2572
    assert chunks[-1]["usage"]["prompt_tokens_details"] == {"cached_tokens": 2000}
    assert step.usage == (2572, 89, 2000, 100)
    text = text_of(
        openai_to_anthropic.ChunkStream("claude", attempt(), include_usage=True),
        fixture("anthropic_stream_tool_use.sse"),
    )
    assert "get_weather" in text and "San Fra" in text


def test_stream_without_include_usage_has_no_usage_chunk_and_commits_at_first_text() -> None:
    mapper = openai_to_anthropic.ChunkStream("claude", attempt(), include_usage=False)
    data = fixture("anthropic_stream_text.sse")
    first = data.index(b"event: content_block_delta")
    head = mapper.feed(data[:first])
    assert not head.content and b'"role":"assistant"' in head.out
    rest, step = feed_all(mapper, data[first:])
    assert step.done and b'"usage"' not in rest
    assert len(sse_json(rest)) == 21  # 20 text chunks + the finish chunk


def test_anthropic_error_event_mid_stream() -> None:
    data = fixture("anthropic_stream_text.sse")
    cut = data.index(b"event: content_block_stop")
    error = b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    mapper = openai_to_anthropic.ChunkStream("claude", attempt(), include_usage=False)
    _, step = feed_all(mapper, data[:cut] + error)
    assert step.error is not None
    err = PROVIDER.stream_error(step.error)
    assert (err.status, err.type, err.message) == (529, "overloaded_error", "Overloaded")


# -- Anthropic to Anthropic: the pass-through relay ---------------------------------------


@pytest.mark.parametrize("size", [None, 1, 5, 100])
def test_pass_through_relays_every_event_but_message_stop(size: int | None) -> None:
    data = fixture("anthropic_stream_tool_use.sse")
    a = attempt()
    out, step = feed_all(EventRelay("claude", a), data, size)
    assert step.done
    assert out == data.replace(b'event: message_stop\ndata: {"type":"message_stop"}\n\n', b"")
    assert step.usage == (2572, 89, 2000, 100)
    assert a.stop_reason == "tool_use"
    assert a.text is None  # the relay counts each read's text: the mapper keeps none
    assert (
        text_of(EventRelay("claude", a), data, size)
        == 'Okay, let me check.get_weather{"location": "San Francisco, CA", "unit": "fahrenheit"}'
    )


def test_pass_through_commit_point_is_the_first_delta() -> None:
    data = fixture("anthropic_stream_text.sse")
    relay = EventRelay("claude", attempt())
    first = data.index(b"event: content_block_delta")
    assert not relay.feed(data[:first]).content  # message_start, block start, ping: held
    assert relay.feed(data[first : first + 10]).out == b""
    assert relay.feed(data[first + 10 :]).content


# -- OpenAI answers for Anthropic clients ---------------------------------------------------


def test_chat_completion_as_message() -> None:
    a = attempt()
    body = json.loads(
        anthropic_to_openai.response("gpt", a, fixture("openai_chat_completion.json"))
    )
    assert body["type"] == "message" and body["role"] == "assistant"
    assert body["content"][0]["type"] == "text" and body["stop_reason"] == "end_turn"
    assert body["usage"] == {
        "input_tokens": 25,
        "output_tokens": 20,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


@pytest.mark.parametrize("size", [None, 1, 9])
def test_chat_tool_stream_as_messages_events(size: int | None) -> None:
    a = attempt()
    out, step = feed_all(
        anthropic_to_openai.EventStream("gpt", a), fixture("openai_stream_tool_calls.sse"), size
    )
    assert step.done
    kinds = [line[7:] for line in out.decode().split("\n") if line.startswith("event: ")]
    assert kinds == [
        "message_start", "content_block_start", *["content_block_delta"] * 5,
        "content_block_stop", "message_delta",
    ]  # fmt: skip
    events = sse_json(out)
    assert events[1]["content_block"] == {
        "type": "tool_use", "id": "call_DdmO9pD3xa9XTPNJ32zg2hcA", "name": "get_weather", "input": {},
    }  # fmt: skip
    assert json.loads("".join(e["delta"]["partial_json"] for e in events[2:7])) == {
        "location": "Paris"
    }
    assert events[-1]["delta"]["stop_reason"] == "tool_use"
    assert events[-1]["usage"] == {
        "input_tokens": 50,
        "output_tokens": 15,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 10,
    }
    assert a.stop_reason == "tool_use"


def test_message_start_reports_the_prompt_counted_by_the_gateway() -> None:
    """Anthropic reports the prompt's tokens in ``message_start``; an OpenAI provider reports
    none before the end, so the gateway's count of the request sent is used (not 0)."""
    a = attempt()
    a.prompt_tokens = 1234  # counted while the request was on its way (OpenAIWire.send)
    out, _ = feed_all(anthropic_to_openai.EventStream("gpt", a), fixture("openai_stream_text.sse"))
    start = sse_json(out)[0]
    assert start["type"] == "message_start"
    assert start["message"]["usage"] == {"input_tokens": 1234, "output_tokens": 0}


def test_count_tokens_counts_a_large_request_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``count_tokens`` for an OpenAI-shaped provider is the gateway's own work: a 4 MB
    request must not stall the worker while it is counted."""
    import threading

    from relay.native import counter_for

    threads: list[int] = []

    class Spy:
        def __init__(self, encoding: str) -> None:
            self._counter = counter_for(encoding)

        def count_chat(self, body: bytes) -> int:
            threads.append(threading.get_ident())
            return self._counter.count_chat(body)

    monkeypatch.setattr(anthropic_to_openai, "counter_for", Spy)
    big = "lorem ipsum dolor sit amet " * (4 * 1024 * 1024 // 27)
    ex = exchange(
        {"model": "m", "messages": [{"role": "user", "content": big}]}, ANTHROPIC_DIALECTS[1]
    )

    async def count(ex: Exchange) -> Any:
        return json.loads(await (await anthropic_to_openai.count_tokens(ex, attempt())).read())

    assert asyncio.run(count(ex))["input_tokens"] > 500_000
    small = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert asyncio.run(count(exchange(small, ANTHROPIC_DIALECTS[1])))["input_tokens"] > 0
    loop_thread = threading.get_ident()  # asyncio.run's loop runs on this thread
    assert [t == loop_thread for t in threads] == [False, True]  # the small one in place


def test_chat_stream_without_usage_leaves_the_message_delta_to_the_dialect() -> None:
    data = fixture("openai_stream_text.sse")
    usage_chunk = data[data.rindex(b"data: {") : data.index(b"data: [DONE]")]
    a = attempt()
    out, step = feed_all(anthropic_to_openai.EventStream("gpt", a), data.replace(usage_chunk, b""))
    assert step.done and step.usage is None and b"message_delta" not in out
    ex = exchange(
        {
            "model": "m",
            "max_tokens": 5,
            "stream": True,
            "messages": [{"role": "user", "content": "x"}],
        },
        MESSAGES,
    )
    ex.attempts.append(a)
    ex.answer = a
    ex.cost_usd = 0.5
    tail = MESSAGES.end_frames(ex, Usage(7, 20, counted_locally=True))
    delta = sse_json(tail)[0]
    assert delta["delta"]["stop_reason"] == "end_turn"
    assert delta["usage"] == {"input_tokens": 7, "output_tokens": 20, "counted_locally": True}
    assert tail.endswith(
        b': x-relay-cost-usd 0.50000000\n\nevent: message_stop\ndata: {"type":"message_stop"}\n\n'
    )


# -- requests --------------------------------------------------------------------------------


def test_requests_refused_with_the_field_named() -> None:
    def refused(body: dict[str, Any]) -> InvalidRequest:
        with pytest.raises(InvalidRequest) as info:
            openai_to_anthropic.request(exchange(body), attempt(), 100)
        return info.value

    bad_args = {
        "model": "m",
        "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]},
        ],
    }  # fmt: skip
    assert refused(bad_args).param == "messages[1].tool_calls[0].function.arguments"
    image = {
        "model": "m",
        "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}
        ],
    }
    assert refused(image).param == "messages[0].content[0].image_url.url"
    assert (
        refused({"model": "m", "n": 2, "messages": [{"role": "user", "content": "x"}]}).param == "n"
    )
    only_system = {"model": "m", "messages": [{"role": "system", "content": "x"}]}
    assert refused(only_system).param == "messages"


def test_messages_request_as_chat_request() -> None:
    ex = exchange(
        {
            "model": "claude",
            "max_tokens": 9,
            "system": [{"type": "text", "text": "be brief"}],
            "stop_sequences": ["X"],
            "metadata": {"user_id": "u1"},
            "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
            "tools": [{"name": "f", "input_schema": {"type": "object"}}],
            "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}},
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "see"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
                ]},
            ],
        },
        MESSAGES,
    )  # fmt: skip
    chat = json.loads(anthropic_to_openai.request(ex, attempt()))
    assert chat["model"] == "claude-up" and chat["max_tokens"] == 9
    assert chat["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [
            {"type": "text", "text": "see"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        ]},
    ]  # fmt: skip
    assert (chat["stop"], chat["user"], chat["tool_choice"]) == (["X"], "u1", "auto")
    assert chat["parallel_tool_calls"] is False
    assert chat["response_format"]["json_schema"]["schema"] == {"type": "object"}


# -- usage, cost, errors ----------------------------------------------------------------------


def test_message_delta_usage_is_cumulative_over_message_start() -> None:
    start = usage_from_wire(WireUsage(input_tokens=10, output_tokens=1, cache_read_input_tokens=5))
    end = usage_from_wire(WireUsage(output_tokens=30), start)
    assert end == Usage(15, 30, 5, 0)


def test_cache_writes_priced_at_cache_write() -> None:
    usage = Usage(
        prompt_tokens=1150, completion_tokens=100, cached_tokens=1000, cache_write_tokens=100
    )
    pricing = Pricing(input=3.0, output=15.0, cached=0.3, cache_write=3.75)
    assert cost_usd(usage, pricing) == pytest.approx(
        (50 * 3 + 1000 * 0.3 + 100 * 3.75 + 100 * 15) / 1e6
    )
    assert cost_usd(usage, Pricing(input=1.0)) == pytest.approx(1150 / 1e6)


@pytest.mark.parametrize(
    ("err", "kind"),
    [
        (InvalidRequest("x"), "invalid_request_error"),
        (ModelNotFound("x"), "not_found_error"),
        (UpstreamUnreachable("x"), "api_error"),
        (GatewayError("x", status=529), "overloaded_error"),
        (GatewayError("x", status=401), "authentication_error"),
        (GatewayError("x", status=413), "request_too_large"),
        (GatewayError("x", status=429), "rate_limit_error"),
        (GatewayError("x", status=504), "timeout_error"),
    ],
)
def test_dialect_error_types_per_status(err: GatewayError, kind: str) -> None:
    assert json.loads(MESSAGES.error_body(err)) == {
        "type": "error",
        "error": {"type": kind, "message": "x"},
    }
    assert MESSAGES.error_frame(err).startswith(b"event: error\ndata: {")


def test_provider_error_keeps_its_type_and_status_and_scrubs_the_key() -> None:
    body = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded sk-ant-secret-1"}}'
    err = PROVIDER.error_from(attempt(), 529, body, {})
    assert (err.status, err.type) == (529, "overloaded_error")
    assert "sk-ant-secret-1" not in err.message
    assert json.loads(MESSAGES.error_body(err))["error"]["type"] == "overloaded_error"
    assert PROVIDER.error_from(attempt(), 401, body, {}).status == 502
    assert Endpoint.MESSAGES.value == "/messages"


@pytest.mark.parametrize("which", ["chunks", "relay", "events"])
def test_a_bad_event_keeps_what_the_read_carried_before_it(which: str) -> None:
    from relay.errors import StreamProtocolError
    from relay.stage import StreamStep

    if which == "events":
        mapper: Any = anthropic_to_openai.EventStream("gpt", attempt())
        good = fixture("openai_stream_text.sse").split(b"\n\n")[1] + b"\n\n"
    else:
        mapper = (
            openai_to_anthropic.ChunkStream("claude", attempt(), include_usage=False)
            if which == "chunks"
            else EventRelay("claude", attempt())
        )
        data = fixture("anthropic_stream_text.sse")
        good = data[: data.index(b"event: content_block_stop")]
    with pytest.raises(StreamProtocolError) as info:
        mapper.feed(good + b"event: content_block_delta\ndata: not json\n\n")
    partial = info.value.partial
    assert isinstance(partial, StreamStep) and partial.content and partial.out
    assert mapper.feed(b"data: more\n\n").out == b""  # the stream is over


def test_openai_shaped_kinds_serve_messages_through_chat_completions() -> None:
    from relay.providers.azure import AzureOpenAI
    from relay.providers.vendors import Mistral

    azure = AzureOpenAI(
        "az",
        ProviderConfig(
            kind="azure", base_url="https://r.openai.azure.com", api_version="2024-10-21"
        ),
    )
    ex = exchange(
        {"model": "claude", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
        MESSAGES,
    )
    azure.check(ex)
    assert azure.url_for(ex, attempt()) == (
        "https://r.openai.azure.com/openai/deployments/claude-up/chat/completions?api-version=2024-10-21"
    )
    Mistral("m", ProviderConfig(kind="mistral", api_key="k")).check(ex)


# -- parameters by allow-list ------------------------------------------------------------------

HI = [{"role": "user", "content": "x"}]


def lenient() -> Attempt:
    return Attempt(Deployment("claude", "claude-up", "claude", drop_unsupported_params=True))


def to_messages(body: dict[str, Any], a: Attempt | None = None) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(
        openai_to_anthropic.request(
            exchange({"model": "m", "messages": HI, **body}), a or attempt(), 100
        )
    )
    return out


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("web_search_options", {}),
        ("verbosity", "low"),
        ("prompt_cache_key", "k"),
        ("store", True),
        ("seed", 0),
        ("functions", [{"name": "f"}]),
        ("service_tier", "flex"),
        ("some_future_parameter", 1),
    ],
)
def test_chat_parameters_without_an_equivalent_are_refused_or_dropped(
    name: str, value: Any
) -> None:
    with pytest.raises(InvalidRequest) as info:
        to_messages({name: value})
    assert info.value.param == name and info.value.code == "unsupported_parameter"
    assert info.value.message.startswith(f"{name}: ")
    assert "models.claude.drop_unsupported_params" in info.value.message
    dropped = to_messages({name: value}, lenient())
    assert name not in dropped and "service_tier" not in dropped


def test_chat_parameters_with_an_equivalent_are_mapped() -> None:
    out = to_messages(
        {
            "safety_identifier": "hashed-user",
            "user": "older-field",
            "service_tier": "default",
            "store": False,
            "logprobs": False,
            "presence_penalty": 0,
            "modalities": ["text"],
            "top_k": 5,
        }
    )
    assert out["metadata"] == {"user_id": "hashed-user"}
    assert out["service_tier"] == "standard_only" and out["top_k"] == 5
    assert to_messages({"service_tier": "auto"})["service_tier"] == "auto"
    assert "thinking" not in out


@pytest.mark.parametrize(
    ("effort", "limit", "max_tokens", "budget"),
    [
        ("minimal", None, 100 + 1024, 1024),
        ("low", None, 100 + 2048, 2048),
        ("medium", None, 100 + 8192, 8192),
        ("high", None, 100 + 16384, 16384),
        ("high", 5000, 5000, 4999),  # the budget fits under the client's limit
        ("low", 30000, 30000, 2048),
    ],
)
def test_reasoning_effort_is_thinking_with_a_budget(
    effort: str, limit: int | None, max_tokens: int, budget: int
) -> None:
    body: dict[str, Any] = {"reasoning_effort": effort}
    if limit is not None:
        body["max_completion_tokens"] = limit
    out = to_messages(body)
    assert out["max_tokens"] == max_tokens
    assert out["thinking"] == {"type": "enabled", "budget_tokens": budget}


def test_reasoning_effort_none_bad_or_too_small() -> None:
    assert "thinking" not in to_messages({"reasoning_effort": "none"})
    thinking = {"type": "enabled", "budget_tokens": 3000}
    assert to_messages({"reasoning_effort": "high", "thinking": thinking})["thinking"] == thinking
    with pytest.raises(InvalidRequest) as info:
        to_messages({"reasoning_effort": "extreme"})
    assert info.value.param == "reasoning_effort" and "expected one of none, minimal" in str(
        info.value
    )
    with pytest.raises(InvalidRequest) as small:
        to_messages({"reasoning_effort": "low", "max_tokens": 1000})
    assert small.value.param == "reasoning_effort" and "at least 1024" in small.value.message


def to_chat(body: dict[str, Any], a: Attempt | None = None, **kw: Any) -> dict[str, Any]:
    ex = exchange({"model": "claude", "max_tokens": 50, "messages": HI, **body}, MESSAGES)
    out: dict[str, Any] = json.loads(anthropic_to_openai.request(ex, a or attempt(), **kw))
    return out


@pytest.mark.parametrize(
    ("thinking", "effort"),
    [
        ({"type": "enabled", "budget_tokens": 1024}, "low"),
        ({"type": "enabled", "budget_tokens": 8191}, "low"),
        ({"type": "enabled", "budget_tokens": 8192}, "medium"),
        ({"type": "enabled", "budget_tokens": 16384}, "high"),
        ({"type": "enabled", "budget_tokens": 60000}, "high"),
        ({"type": "disabled"}, None),
        ({"type": "adaptive"}, None),
    ],
)
def test_thinking_is_reasoning_effort(thinking: dict[str, Any], effort: str | None) -> None:
    assert to_chat({"thinking": thinking}).get("reasoning_effort") == effort


def test_messages_parameters_mapped_refused_or_dropped() -> None:
    out = to_chat(
        {
            "service_tier": "standard_only",
            "cache_control": {"type": "ephemeral"},
            "thinking": {"type": "enabled", "budget_tokens": 2000},
            "output_config": {"effort": "xhigh"},
        }
    )
    assert out["service_tier"] == "default"
    assert out["reasoning_effort"] == "xhigh"  # the explicit effort wins over the budget
    assert "cache_control" not in out and "thinking" not in out
    for body, param in (
        ({"top_k": 5}, "top_k"),
        ({"container": "c_1"}, "container"),
        ({"mcp_servers": [{"type": "url"}]}, "mcp_servers"),
        ({"output_config": {"task_budget": 1}}, "output_config.task_budget"),
        ({"service_tier": "priority"}, "service_tier"),
    ):
        with pytest.raises(InvalidRequest) as info:
            to_chat(body, provider="gpt", kind="openai")
        assert info.value.param == param and "provider 'gpt' (kind openai)" in info.value.message
        assert param.split(".")[0] not in to_chat(body, lenient())
    with pytest.raises(InvalidRequest, match=r"thinking\.type"):
        to_chat({"thinking": {"type": "sometimes"}})


def test_messages_to_a_vendor_with_its_rules() -> None:
    from relay.providers.vendors import VLLM, Mistral

    vllm = VLLM.params[Endpoint.CHAT]
    out = to_chat({"top_k": 7, "metadata": {"user_id": "u"}}, rules=vllm, kind="vllm")
    assert out["top_k"] == 7 and "user" not in out  # vLLM takes top_k; attribution stripped
    mistral = Mistral.params[Endpoint.CHAT]
    ex_stream = to_chat({"stream": True}, rules=mistral, kind="mistral")
    assert "stream_options" not in ex_stream  # Mistral reports stream usage on its own
    with pytest.raises(InvalidRequest) as info:
        to_chat({"service_tier": "auto"}, rules=mistral, provider="m", kind="mistral")
    assert info.value.param == "service_tier"
