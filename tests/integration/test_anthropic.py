"""Anthropic both ways, through the real gateway process and real SDKs.

* the ``openai`` SDK on /v1/chat/completions for models served by the fake Anthropic server
  (translated both ways);
* the ``anthropic`` SDK on /v1/messages: passed through to the fake Anthropic server, and
  translated to the fake OpenAI server and to the offline echo provider.

The fake Anthropic server refuses any request that breaks the documented Messages format, so
every successful call here is also a check of the translated request.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from tests.fakes.anthropic_upstream import start_fake_anthropic
from tests.fakes.openai_upstream import FakeUpstream
from tests.integration.conftest import UPSTREAM_KEY
from tests.integration.gateway import Gateway

pytestmark = pytest.mark.integration

ANTHROPIC_KEY = "sk-ant-test-upstream"
PRICES = {"input": 3.0, "output": 15.0, "cached": 0.3, "cache_write": 3.75}
SCENARIOS = [
    "cache-usage", "error-400", "error-429", "error-500", "error-529", "stream-error",
    "early-error", "cut-stream", "split-events", "empty-object", "no-type", "no-content",
]  # fmt: skip


@pytest.fixture(scope="module")
def fake_anthropic() -> Iterator[FakeUpstream]:
    with start_fake_anthropic(ANTHROPIC_KEY) as fake:
        yield fake


@pytest.fixture
def claude_up(fake_anthropic: FakeUpstream) -> FakeUpstream:
    fake_anthropic.reset()
    return fake_anthropic


@pytest.fixture(scope="module")
def gw(
    fake_anthropic: FakeUpstream,
    fake_upstream: FakeUpstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Gateway]:
    claude = {
        "kind": "anthropic",
        "base_url": fake_anthropic.base_url,
        "api_key": ANTHROPIC_KEY,
        "max_tokens_default": 256,
    }
    models: dict[str, Any] = {
        "claude": {"provider": "claude", "model": "claude-fake-1", "pricing": PRICES},
        "claude-wrong-key": {"provider": "claude-badkey", "model": "claude-fake-1"},
        "claude-own-key": {"provider": "claude-own", "model": "claude-fake-1"},
        "claude-lenient": {
            "provider": "claude",
            "model": "claude-fake-1",
            "drop_unsupported_params": True,
        },
        "gpt": {"provider": "openai", "model": "gpt-4o-mini", "pricing": {"input": 1, "output": 2}},
        "gpt-no-usage": {"provider": "openai", "model": "no-usage"},
        "echo": {"provider": "echo"},
        "claude-slow": {"provider": "claude", "model": "slow-3000"},
        "claude-slow-capped": {
            "provider": "claude",
            "model": "slow-3000",
            "timeouts": {"read_s": 0.3},
        },
    }
    models |= {name: {"provider": "claude", "pricing": PRICES} for name in SCENARIOS}
    config = {
        "providers": {
            "claude": claude,
            "claude-badkey": {**claude, "api_key": "sk-ant-wrong-key-123"},
            "claude-own": {**claude, "api_key": None, "forward_client_auth": True},
            "openai": {
                "kind": "openai",
                "base_url": fake_upstream.base_url,
                "api_key": UPSTREAM_KEY,
            },
            "echo": {"kind": "echo"},
        },
        "models": models,
    }
    gateway = Gateway(config, tmp_path_factory.mktemp("anthropic"))
    yield gateway
    gateway.stop()


def oai(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0, timeout=20)


def ant(gw: Gateway, key: str = "unused") -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0, timeout=20)


def sent_to(up: FakeUpstream) -> list[dict[str, Any]]:
    return [r for r in up.requests() if r["path"].startswith("/v1/")]


def last(up: FakeUpstream) -> dict[str, Any]:
    calls = [r for r in up.requests() if r["path"].startswith("/v1/")]
    assert calls, "the provider received no request"
    return calls[-1]


def post(
    gw: Gateway, path: str, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=20)
    conn.request(
        "POST", path, body=body, headers={"content-type": "application/json", **(headers or {})}
    )
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data


# -- the openai SDK, served by Anthropic ---------------------------------------------------


def test_openai_chat_translated_to_messages_and_back(gw: Gateway, claude_up: FakeUpstream) -> None:
    raw = oai(gw).chat.completions.with_raw_response.create(
        model="claude",
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "developer", "content": "and kind"},
            {"role": "user", "content": "hello world"},
        ],
        temperature=0.5,
        stop=["END"],
        user="user-7",
    )
    reply = raw.parse()
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.content == "Echo: hello world"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    # words of system + user text = 2 + 2 + 2; "Echo: hello world" = 3
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (6, 3)
    assert raw.headers["x-relay-provider"] == "claude"
    assert float(raw.headers["x-relay-cost-usd"]) == pytest.approx((6 * 3.0 + 3 * 15.0) / 1e6)
    sent = last(claude_up)
    assert sent["path"] == "/v1/messages"
    assert sent["headers"]["x-api-key"] == ANTHROPIC_KEY
    assert sent["headers"]["anthropic-version"] == "2023-06-01"
    assert "authorization" not in sent["headers"]
    assert sent["body"] == {
        "model": "claude-fake-1",
        "max_tokens": 256,
        "system": "be brief\n\nand kind",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hello world"}]}],
        "temperature": 0.5,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "user-7"},
    }


def test_turns_merged_tools_results_and_images(gw: Gateway, claude_up: FakeUpstream) -> None:
    png = "data:image/png;base64,iVBORw0KGgo="
    reply = oai(gw).chat.completions.create(
        model="claude",
        max_completion_tokens=50,
        messages=[
            {"role": "user", "content": "first"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": png}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}},
                ],
            },
            {
                "role": "assistant",
                "content": "calling",
                "tool_calls": [
                    {
                        "id": "toolu_a",
                        "type": "function",
                        "function": {"name": "f", "arguments": '{"q": 1}'},
                    },
                    {
                        "id": "toolu_b",
                        "type": "function",
                        "function": {"name": "g", "arguments": "{}"},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_a", "content": "one"},
            {
                "role": "tool",
                "tool_call_id": "toolu_b",
                "content": [{"type": "text", "text": "two"}],
            },
            {"role": "user", "content": "and then?"},
        ],
    )
    assert reply.choices[0].message.content == "Result: one two"
    body = last(claude_up)["body"]
    assert body["max_tokens"] == 50
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "first"},
        {"type": "text", "text": "look"},
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
        },
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}},
    ]
    assert body["messages"][1]["content"][1] == {
        "type": "tool_use", "id": "toolu_a", "name": "f", "input": {"q": 1},
    }  # fmt: skip
    assert body["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_a", "content": "one"},
        {"type": "tool_result", "tool_use_id": "toolu_b", "content": "two"},
        {"type": "text", "text": "and then?"},
    ]


TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "look something up",
            "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}},
        },
    }
]


def test_openai_tools_become_tool_calls(gw: Gateway, claude_up: FakeUpstream) -> None:
    reply = oai(gw).chat.completions.create(
        model="claude",
        messages=[{"role": "user", "content": "use it"}],
        tools=TOOLS,
        tool_choice="required",
        parallel_tool_calls=False,
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Calling."
    calls = choice.message.tool_calls or []
    assert len(calls) == 1 and calls[0].type == "function"
    assert (calls[0].id, calls[0].function.name) == ("toolu_fake1", "lookup")
    assert json.loads(calls[0].function.arguments) == {"x": 1}
    body = last(claude_up)["body"]
    assert body["tools"] == [
        {
            "name": "lookup",
            "description": "look something up",
            "input_schema": {"type": "object", "properties": {"x": {"type": "integer"}}},
        }
    ]
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}


def test_response_format_json_schema_and_json_object(gw: Gateway, claude_up: FakeUpstream) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    oai(gw).chat.completions.create(
        model="claude",
        messages=[{"role": "user", "content": "hi"}],
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
    )
    assert last(claude_up)["body"]["output_config"] == {
        "format": {"type": "json_schema", "schema": schema}
    }
    oai(gw).chat.completions.create(
        model="claude",
        messages=[{"role": "user", "content": "hi"}],
        response_format={"type": "json_object"},
    )
    assert "JSON object" in last(claude_up)["body"]["system"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("web_search_options", {}),
        ("verbosity", "low"),
        ("prompt_cache_key", "k-1"),
        ("store", True),
        ("service_tier", "flex"),
    ],
)
def test_chat_parameters_without_an_equivalent_are_a_400_unless_dropped(
    gw: Gateway, claude_up: FakeUpstream, name: str, value: Any
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        oai(gw).chat.completions.create(model="claude", messages=HELLO, extra_body={name: value})
    assert info.value.param == name and info.value.code == "unsupported_parameter"
    assert "claude-fake-1" not in info.value.message and not sent_to(claude_up)
    reply = oai(gw).chat.completions.create(
        model="claude-lenient", messages=HELLO, extra_body={name: value}
    )
    assert reply.choices[0].message.content == "Echo: hello world"
    assert name not in last(claude_up)["body"]


def test_chat_parameters_with_an_equivalent_are_mapped(
    gw: Gateway, claude_up: FakeUpstream
) -> None:
    oai(gw).chat.completions.create(
        model="claude",
        messages=HELLO,
        extra_body={
            "reasoning_effort": "low",
            "safety_identifier": "u-1",
            "service_tier": "default",
        },
    )
    body = last(claude_up)["body"]
    # the budget comes on top of max_tokens_default (256), which stays for the answer
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert body["max_tokens"] == 256 + 2048
    assert body["metadata"] == {"user_id": "u-1"} and body["service_tier"] == "standard_only"
    oai(gw).chat.completions.create(
        model="claude",
        messages=HELLO,
        max_completion_tokens=3000,
        extra_body={"reasoning_effort": "high"},
    )
    body = last(claude_up)["body"]
    assert (body["max_tokens"], body["thinking"]["budget_tokens"]) == (3000, 2999)


def test_openai_stream_from_anthropic_events(gw: Gateway, claude_up: FakeUpstream) -> None:
    chunks = list(
        oai(gw).chat.completions.create(
            model="claude",
            messages=[{"role": "user", "content": "hello world"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: hello world"
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (2, 3)
    assert last(claude_up)["body"]["stream"] is True


def test_openai_stream_ends_with_done_and_cost_and_strips_unasked_usage(
    gw: Gateway, claude_up: FakeUpstream
) -> None:
    body = {
        "model": "split-events",
        "stream": True,
        "messages": [{"role": "user", "content": "a b c"}],
    }
    status, headers, data = post(gw, "/v1/chat/completions", json.dumps(body).encode())
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    events = [e for e in data.split(b"\n\n") if e.strip()]
    assert events[-1] == b"data: [DONE]"
    assert events[-2].startswith(b": x-relay-cost-usd ")
    chunks = [json.loads(e[6:]) for e in events[:-2]]
    assert all(c["choices"] for c in chunks)  # no usage chunk: the client did not ask
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "Echo: a b c"


def test_openai_stream_of_tool_calls(gw: Gateway, claude_up: FakeUpstream) -> None:
    chunks = list(
        oai(gw).chat.completions.create(
            model="claude",
            messages=[{"role": "user", "content": "use it"}],
            tools=TOOLS,
            tool_choice={"type": "function", "function": {"name": "lookup"}},
            stream=True,
        )
    )
    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or ()]
    assert calls[0].index == 0 and calls[0].id == "toolu_fake1"
    assert calls[0].function is not None and calls[0].function.name == "lookup"
    assert {c.index for c in calls} == {0}
    assert json.loads("".join(c.function.arguments or "" for c in calls if c.function)) == {"x": 1}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert last(claude_up)["body"]["tool_choice"] == {"type": "tool", "name": "lookup"}


def test_cache_reads_and_writes_counted_once_and_priced(
    gw: Gateway, claude_up: FakeUpstream
) -> None:
    raw = oai(gw).chat.completions.with_raw_response.create(
        model="cache-usage", messages=[{"role": "user", "content": "hello world"}]
    )
    usage = raw.parse().usage
    assert usage is not None and usage.prompt_tokens_details is not None
    # 2 uncached + 100 read + 50 written
    assert (usage.prompt_tokens, usage.prompt_tokens_details.cached_tokens) == (152, 100)
    assert usage.total_tokens == 152 + 3
    expected = (2 * 3.0 + 100 * 0.3 + 50 * 3.75 + 3 * 15.0) / 1e6
    assert float(raw.headers["x-relay-cost-usd"]) == pytest.approx(expected)
    chunks = list(
        oai(gw).chat.completions.create(
            model="cache-usage",
            messages=[{"role": "user", "content": "hello world"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    streamed = chunks[-1].usage
    assert streamed is not None and streamed.prompt_tokens == 152
    assert streamed.prompt_tokens_details is not None
    assert streamed.prompt_tokens_details.cached_tokens == 100


@pytest.mark.parametrize(
    ("model", "status", "kind"),
    [
        ("error-400", 400, openai.BadRequestError),
        ("error-429", 429, openai.RateLimitError),
        ("error-500", 500, openai.InternalServerError),
        ("error-529", 529, openai.InternalServerError),
        ("claude-wrong-key", 502, openai.InternalServerError),
    ],
)
def test_anthropic_errors_in_openai_envelopes(
    gw: Gateway, claude_up: FakeUpstream, model: str, status: int, kind: type[Exception]
) -> None:
    with pytest.raises(kind) as info:
        oai(gw).chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
    err = info.value
    assert isinstance(err, openai.APIStatusError) and err.status_code == status
    body = err.response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    if status == 429:
        assert err.response.headers["retry-after"] == "7"
    if status == 529:
        assert body["error"]["type"] == "overloaded_error"
    if model == "claude-wrong-key":
        assert body["error"]["code"] == "upstream_auth_failed"
        assert "sk-ant-wrong" not in err.response.text


def test_openai_stream_error_event_and_cut_stream(gw: Gateway, claude_up: FakeUpstream) -> None:
    for model in ("stream-error", "cut-stream"):
        body = {
            "model": model,
            "stream": True,
            "messages": [{"role": "user", "content": "a b c d e"}],
        }
        status, _, data = post(gw, "/v1/chat/completions", json.dumps(body).encode())
        assert status == 200
        events = [e for e in data.split(b"\n\n") if e.strip()]
        assert b"[DONE]" not in data
        error = json.loads(events[-1][6:])["error"]
        assert set(error) == {"message", "type", "param", "code"}
        if model == "stream-error":
            assert error["type"] == "overloaded_error" and error["message"] == "Overloaded"
    # before any content: an ordinary JSON error with the provider's status
    body = {"model": "early-error", "stream": True, "messages": [{"role": "user", "content": "a"}]}
    status, _, data = post(gw, "/v1/chat/completions", json.dumps(body).encode())
    assert status == 529 and json.loads(data)["error"]["type"] == "overloaded_error"


# -- the anthropic SDK on /v1/messages, passed through to Anthropic -------------------------

HELLO: Any = [{"role": "user", "content": "hello world"}]


def test_messages_passed_through(
    gw: Gateway, claude_up: FakeUpstream, fake_anthropic: FakeUpstream
) -> None:
    direct = anthropic.Anthropic(
        base_url=fake_anthropic.url,
        api_key="unused",
        default_headers={"x-api-key": ANTHROPIC_KEY},
        max_retries=0,
    )
    expected = direct.messages.create(
        model="claude-fake-1", max_tokens=100, messages=HELLO, system="be brief"
    )
    raw = ant(gw).messages.with_raw_response.create(
        model="claude",
        max_tokens=100,
        messages=HELLO,
        system="be brief",
        extra_headers={"anthropic-beta": "some-beta-2025-01-01"},
    )
    got = raw.parse()
    assert got.model_dump(exclude={"id"}) == expected.model_dump(exclude={"id"})
    assert float(raw.headers["x-relay-cost-usd"]) == pytest.approx((4 * 3.0 + 3 * 15.0) / 1e6)
    sent = last(claude_up)
    assert sent["headers"]["anthropic-beta"] == "some-beta-2025-01-01"
    assert sent["headers"]["anthropic-version"] == anthropic._constants.ANTHROPIC_API_VERSION
    assert sent["headers"]["x-api-key"] == ANTHROPIC_KEY
    # the client's bytes, with only the model name changed
    client_body = json.loads(sent["raw"])
    assert client_body == {
        "model": "claude-fake-1",
        "max_tokens": 100,
        "messages": HELLO,
        "system": "be brief",
    }


def test_messages_stream_passed_through_event_by_event(
    gw: Gateway, claude_up: FakeUpstream
) -> None:
    body = {"model": "claude", "max_tokens": 100, "stream": True, "messages": HELLO}
    status, headers, data = post(gw, "/v1/messages", json.dumps(body).encode())
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    events = [e for e in data.split(b"\n\n") if e.strip()]
    kinds = [e.split(b"\n")[0] for e in events]
    assert kinds[:3] == [b"event: message_start", b"event: ping", b"event: content_block_start"]
    assert kinds[-3:] == [
        b"event: message_delta",
        b": x-relay-cost-usd 0.00005100",
        b"event: message_stop",
    ]
    assert b"[DONE]" not in data
    with ant(gw).messages.stream(model="claude", max_tokens=100, messages=HELLO) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Echo: hello world"
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (2, 3)


def test_messages_stream_of_tools_passed_through(gw: Gateway, claude_up: FakeUpstream) -> None:
    tools: Any = [{"name": "lookup", "input_schema": {"type": "object"}}]
    with ant(gw).messages.stream(
        model="split-events",
        max_tokens=100,
        messages=HELLO,
        tools=tools,
        tool_choice={"type": "any"},
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    block = final.content[-1]
    assert block.type == "tool_use" and block.input == {"x": 1}


def test_count_tokens_passed_through(gw: Gateway, claude_up: FakeUpstream) -> None:
    counted = ant(gw).messages.count_tokens(model="claude", messages=HELLO, system="be brief")
    assert counted.input_tokens == 4
    sent = last(claude_up)
    assert sent["path"] == "/v1/messages/count_tokens" and sent["body"]["model"] == "claude-fake-1"


def test_caller_key_forwarded_as_x_api_key(gw: Gateway, claude_up: FakeUpstream) -> None:
    ant(gw, key="client-key-9").messages.create(
        model="claude-own-key", max_tokens=10, messages=HELLO
    )
    assert last(claude_up)["headers"]["x-api-key"] == "client-key-9"


@pytest.mark.parametrize(
    ("model", "status", "kind", "error_type"),
    [
        ("error-400", 400, anthropic.BadRequestError, "invalid_request_error"),
        ("error-429", 429, anthropic.RateLimitError, "rate_limit_error"),
        ("error-500", 500, anthropic.InternalServerError, "api_error"),
        ("error-529", 529, anthropic.OverloadedError, "overloaded_error"),
        ("claude-wrong-key", 502, anthropic.InternalServerError, "api_error"),
    ],
)
def test_anthropic_errors_in_anthropic_envelopes(
    gw: Gateway,
    claude_up: FakeUpstream,
    model: str,
    status: int,
    kind: type[Exception],
    error_type: str,
) -> None:
    with pytest.raises(kind) as info:
        ant(gw).messages.create(model=model, max_tokens=10, messages=HELLO)
    err = info.value
    assert isinstance(err, anthropic.APIStatusError) and err.status_code == status
    body = err.response.json()
    assert body["type"] == "error" and body["error"]["type"] == error_type
    assert set(body["error"]) == {"type", "message"}


@pytest.mark.parametrize(
    ("model", "missing"),
    [("empty-object", "field `"), ("no-type", "field `type`"), ("no-content", "field `content`")],
)
def test_a_200_that_is_not_a_message_is_a_502(
    gw: Gateway, claude_up: FakeUpstream, model: str, missing: str
) -> None:
    with pytest.raises(anthropic.InternalServerError) as passed:
        ant(gw).messages.create(model=model, max_tokens=10, messages=HELLO)
    assert f"not an Anthropic message: Object missing required {missing}" in passed.value.message
    with pytest.raises(openai.InternalServerError) as translated:
        oai(gw).chat.completions.create(model=model, messages=HELLO)
    assert "not an Anthropic message" in translated.value.message
    assert translated.value.code == "upstream_bad_response"
    assert passed.value.status_code == translated.value.status_code == 502


def test_messages_mid_stream_error_event(gw: Gateway, claude_up: FakeUpstream) -> None:
    with pytest.raises(anthropic.APIStatusError) as info:  # noqa: SIM117
        with ant(gw).messages.stream(
            model="stream-error", max_tokens=100, messages=HELLO
        ) as stream:
            for _ in stream.text_stream:
                pass
    assert "overloaded_error" in str(info.value)
    body = {"model": "cut-stream", "max_tokens": 100, "stream": True, "messages": HELLO}
    _, _, data = post(gw, "/v1/messages", json.dumps(body).encode())
    events = [e for e in data.split(b"\n\n") if e.strip()]
    assert events[-1].startswith(b"event: error\ndata: ")
    error = json.loads(events[-1].split(b"data: ", 1)[1])
    assert error["type"] == "error" and error["error"]["type"] == "api_error"
    assert b"message_stop" not in data


def test_request_ids_reach_the_anthropic_sdk(gw: Gateway, claude_up: FakeUpstream) -> None:
    """``request-id`` (what the SDK reads) is the gateway's id, on answers, streams and errors;
    Anthropic's own id comes back as ``x-upstream-request-id``."""
    raw = ant(gw).messages.with_raw_response.create(model="claude", max_tokens=10, messages=HELLO)
    message = raw.parse()
    assert message._request_id is not None
    assert message._request_id == raw.headers["x-request-id"]
    assert raw.headers["x-upstream-request-id"].startswith("req_fake")
    with ant(gw).messages.stream(model="claude", max_tokens=10, messages=HELLO) as stream:
        assert stream.request_id is not None and stream.request_id.startswith("req_")
        assert stream.response.headers["x-upstream-request-id"].startswith("req_fake")
        stream.get_final_message()
    with pytest.raises(anthropic.RateLimitError) as info:
        ant(gw).messages.create(model="error-429", max_tokens=10, messages=HELLO)
    assert info.value.request_id == info.value.response.headers["x-request-id"]
    translated = ant(gw).messages.create(model="echo", max_tokens=10, messages=HELLO)
    assert translated._request_id is not None and translated._request_id.startswith("req_")
    # an OpenAI client served by Anthropic: Anthropic's id under the gateway's usual name
    chat = oai(gw).chat.completions.with_raw_response.create(model="claude", messages=HELLO)
    assert chat.headers["x-upstream-request-id"].startswith("req_fake")
    assert "request-id" not in chat.headers  # OpenAI's SDK reads x-request-id


def test_models_list_in_anthropic_shape_for_the_anthropic_sdk(gw: Gateway) -> None:
    """An Anthropic client (it sends anthropic-version) gets Anthropic's list, paged."""
    configured = [m.id for m in oai(gw).models.list()]
    assert len(configured) > 5
    page = ant(gw).models.list(limit=5)
    assert [m.id for m in page.data] == configured[:5]
    assert page.has_more and page.first_id == configured[0] and page.last_id == configured[4]
    assert [m.id for m in page] == configured  # the SDK follows after_id to the end
    model = ant(gw).models.retrieve("claude")
    assert (model.type, model.id, model.display_name) == ("model", "claude", "claude")
    assert model.created_at.tzinfo is not None
    back = ant(gw).models.list(before_id=configured[3], limit=2)
    assert [m.id for m in back.data] == configured[1:3] and back.has_more
    raw = ant(gw).models.with_raw_response.list()
    assert raw.headers["request-id"] == raw.headers["x-request-id"]
    assert set(raw.http_response.json()) == {"data", "has_more", "first_id", "last_id"}
    with pytest.raises(anthropic.NotFoundError) as missing:
        ant(gw).models.retrieve("nope")
    assert missing.value.body == {
        "type": "error",
        "error": {
            "type": "not_found_error",
            "message": "model 'nope' is not configured on this gateway",
        },
    }
    with pytest.raises(anthropic.BadRequestError) as bad:
        ant(gw).models.list(limit=0)
    assert "limit: expected an integer from 1 to 1000" in bad.value.message


# -- the anthropic SDK on /v1/messages, translated to OpenAI-shaped providers ----------------


@pytest.mark.parametrize("model", ["gpt", "echo"])
def test_messages_translated_to_openai_providers(
    gw: Gateway, fake_upstream: FakeUpstream, model: str
) -> None:
    fake_upstream.reset()
    reply = ant(gw).messages.create(model=model, max_tokens=100, messages=HELLO, system="be brief")
    assert reply.type == "message" and reply.role == "assistant"
    assert reply.content[0].type == "text"
    assert reply.content[0].text == (
        "Echo: hello world" if model == "gpt" else "You said: hello world"
    )
    assert reply.stop_reason == "end_turn"
    assert reply.usage.input_tokens > 0 and reply.usage.output_tokens > 0
    with ant(gw).messages.stream(model=model, max_tokens=100, messages=HELLO) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == reply.content[0].text
    assert final.usage.output_tokens == reply.usage.output_tokens
    counted = ant(gw).messages.count_tokens(model=model, messages=HELLO)
    assert counted.input_tokens > 0
    if model == "gpt":
        sent = [r for r in fake_upstream.requests() if r["path"].startswith("/v1/")]
        assert [r["path"] for r in sent] == ["/v1/chat/completions"] * 2  # counting is local
        assert sent[0]["body"]["messages"][0] == {"role": "system", "content": "be brief"}
        assert sent[1]["body"]["stream_options"] == {"include_usage": True}


def test_messages_parameters_translated_or_refused(
    gw: Gateway, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.reset()
    ant(gw).messages.create(
        model="gpt",
        max_tokens=100,
        messages=HELLO,
        thinking={"type": "enabled", "budget_tokens": 8192},
        service_tier="standard_only",
    )
    body = last(fake_upstream)["body"]
    assert (body["reasoning_effort"], body["service_tier"]) == ("medium", "default")
    assert "thinking" not in body
    for model in ("gpt", "echo"):
        with pytest.raises(anthropic.BadRequestError) as info:
            ant(gw).messages.create(
                model=model, max_tokens=100, messages=HELLO, extra_body={"top_k": 5}
            )
        assert info.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
        assert f"top_k: not supported by provider '{'openai' if model == 'gpt' else 'echo'}'" in (
            info.value.message
        )
    with pytest.raises(anthropic.BadRequestError, match="container"):
        ant(gw).messages.create(
            model="gpt", max_tokens=100, messages=HELLO, extra_body={"container": "c-1"}
        )
    assert len(sent_to(fake_upstream)) == 1  # refused before anything was sent


@pytest.mark.parametrize("model", ["gpt", "gpt-no-usage", "echo"])
def test_translated_message_start_reports_the_prompt_tokens(gw: Gateway, model: str) -> None:
    """As Anthropic's own stream does: ``message_start`` carries the prompt's tokens (counted
    by the gateway, as ``count_tokens`` counts them), not 0."""
    system = "You answer in one short sentence, in plain English, and never use lists."
    with ant(gw).messages.stream(
        model=model, max_tokens=100, messages=HELLO, system=system
    ) as stream:
        starts = [e for e in stream if e.type == "message_start"]
        final = stream.get_final_message()
    counted = ant(gw).messages.count_tokens(model=model, messages=HELLO, system=system)
    assert counted.input_tokens > 20
    assert starts[0].message.usage.input_tokens == counted.input_tokens
    if model == "gpt-no-usage":  # the end reports the same count
        assert final.usage.input_tokens == counted.input_tokens


def test_messages_tools_translated_to_openai(gw: Gateway, fake_upstream: FakeUpstream) -> None:
    fake_upstream.reset()
    tools: Any = [{"name": "lookup", "description": "d", "input_schema": {"type": "object"}}]
    reply = ant(gw).messages.create(
        model="gpt", max_tokens=100, messages=HELLO, tools=tools, tool_choice={"type": "any"}
    )
    block = reply.content[-1]
    assert reply.stop_reason == "tool_use"
    assert block.type == "tool_use" and block.name == "lookup" and block.input == {"x": 1}
    with ant(gw).messages.stream(
        model="gpt",
        max_tokens=100,
        messages=HELLO,
        tools=tools,
        tool_choice={"type": "tool", "name": "lookup"},
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    streamed = final.content[-1]
    assert streamed.type == "tool_use" and streamed.input == {"x": 1} and streamed.id == "call_1"
    # the conversation continues: tool_use and tool_result become tool_calls and a tool message
    follow = ant(gw).messages.create(
        model="gpt",
        max_tokens=100,
        tools=tools,
        messages=[
            *HELLO,
            {"role": "assistant", "content": [{"type": "tool_use", "id": "call_1", "name": "lookup", "input": {"x": 1}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "42"}, {"type": "text", "text": "so?"}]},
        ],
    )  # fmt: skip
    assert follow.content[0].type == "text"
    sent = [r for r in fake_upstream.requests() if r["path"].startswith("/v1/")][-1]["body"]
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {"name": "lookup", "description": "d", "parameters": {"type": "object"}},
        }
    ]
    assert sent["messages"][1:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"x":1}'}}],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "42"},
        {"role": "user", "content": "so?"},
    ]  # fmt: skip


def test_messages_stream_from_provider_without_usage_counted_locally(
    gw: Gateway, fake_upstream: FakeUpstream
) -> None:
    with ant(gw).messages.stream(model="gpt-no-usage", max_tokens=100, messages=HELLO) as stream:
        final = stream.get_final_message()
    assert final.content[0].type == "text" and final.content[0].text == "Echo: hello world"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


# -- bad input on /v1/messages ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"model":"claude","messages":[{"role":"user","content":"x"}]}', "max_tokens: required field is missing"),
        (b'{"model":"claude","max_tokens":"ten","messages":[{"role":"user","content":"x"}]}', "max_tokens: expected `int`, got `str`"),
        (b'{"model":"claude","max_tokens":10,"messages":[{"role":"system","content":"x"}]}', "messages[0].role: invalid enum value 'system'"),
        (b'{"model":"claude","max_tokens":10,"messages":[]}', "messages: must contain at least one message"),
        (b'{"model":"claude","max_tokens":10,"messages":[{"role":"user","content":5}]}', "messages[0].content: expected `str | array`, got `int`"),
        (b'{"model":"claude",', "invalid JSON in request body: input data was truncated"),
    ],
)  # fmt: skip
def test_bad_input_gets_anthropic_envelope_naming_the_field(
    gw: Gateway, claude_up: FakeUpstream, body: bytes, message: str
) -> None:
    status, _, data = post(gw, "/v1/messages", body)
    assert status == 400
    assert json.loads(data) == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": message},
    }
    assert claude_up.requests() == []


def test_unknown_model_and_wrong_method_on_messages(gw: Gateway) -> None:
    with pytest.raises(anthropic.NotFoundError) as info:
        ant(gw).messages.create(model="nope", max_tokens=10, messages=HELLO)
    assert info.value.response.json()["error"]["type"] == "not_found_error"
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    conn.request("GET", "/v1/messages")
    response = conn.getresponse()
    assert response.status == 405
    assert json.loads(response.read())["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("stream", [False, True])
def test_the_policys_timeouts_hold_for_anthropic(gw: Gateway, stream: bool) -> None:
    """The loop sends every attempt under the timeouts routing chose: a model's own
    ``timeouts`` and the request's ``x-relay-timeout`` bound an Anthropic call as any other
    (the provider answers after 3 s; both limits are far shorter)."""
    body = {"model": "claude-slow-capped", "max_tokens": 5, "stream": stream, "messages": HELLO}
    with pytest.raises(anthropic.APIStatusError) as capped:
        ant(gw).messages.create(**body)
    assert capped.value.status_code == 504
    body["model"] = "claude-slow"
    with pytest.raises(anthropic.APIStatusError) as header:
        ant(gw).messages.create(**body, extra_headers={"x-relay-timeout": "0.3"})
    assert header.value.status_code == 504
