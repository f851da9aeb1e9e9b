"""The Responses API and the pass-through of other /v1 routes, through the real gateway process
and the ``openai`` SDK.

* ``/v1/responses`` passed through to the fake OpenAI server (which checks the documented
  request and answers documented bodies and events), and translated to the fake Anthropic
  server, to the fake OpenAI server's chat completions (an OpenAI-shaped vendor without the
  Responses API) and to the offline echo provider; stored responses and
  ``previous_response_id``, per tenant;
* pass-through: a multipart file upload, an image generation (usage recorded in the ledger),
  and paths that try to leave the provider's API (refused, never reaching the fake).
"""

from __future__ import annotations

import http.client
import json
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.fakes.anthropic_upstream import start_fake_anthropic
from tests.fakes.openai_upstream import FakeUpstream
from tests.integration.conftest import UPSTREAM_KEY
from tests.integration.gateway import Gateway

pytestmark = pytest.mark.integration

ANTHROPIC_KEY = "sk-ant-test-upstream"
TOOLS: Any = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]
SCHEMA: Any = {
    "format": {
        "type": "json_schema",
        "name": "echo",
        "schema": {"type": "object", "properties": {"echo": {"type": "string"}}},
        "strict": True,
    }
}


@pytest.fixture(scope="module")
def fake_anthropic() -> Iterator[FakeUpstream]:
    with start_fake_anthropic(ANTHROPIC_KEY) as fake:
        yield fake


def config(openai_url: str, anthropic_url: str, **database: Any) -> dict[str, Any]:
    openai_provider = {"kind": "openai", "base_url": openai_url, "api_key": UPSTREAM_KEY}
    return {
        "auth": {"mode": "none"},
        "providers": {
            "openai": openai_provider,
            "vendor": {**openai_provider, "native_responses": False},
            "claude": {"kind": "anthropic", "base_url": anthropic_url, "api_key": ANTHROPIC_KEY},
            "echo": {"kind": "echo"},
        },
        "models": {
            "gpt": {"provider": "openai", "model": "gpt-4o-mini", "pricing": {"input": 1, "output": 2}},
            "stream-error": {"provider": "openai"},
            "vendor-gpt": {"provider": "vendor", "model": "gpt-4o-mini"},
            "claude": {"provider": "claude", "model": "claude-fake-1"},
            "claude-stream-error": {"provider": "claude", "model": "stream-error"},
            "echo": {"provider": "echo"},
            "gpt-image-1": {"provider": "openai", "pricing": {"input": 5, "output": 40}},
        },
        "routing": {"passthrough_provider": "openai"},
        "database": {"url": "sqlite:///relay.db", **database},
    }  # fmt: skip


@pytest.fixture(scope="module")
def gw_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("responses")


@pytest.fixture(scope="module")
def gw(
    fake_upstream: FakeUpstream, fake_anthropic: FakeUpstream, gw_dir: Path
) -> Iterator[Gateway]:
    gateway = Gateway(config(fake_upstream.base_url, fake_anthropic.base_url), gw_dir)
    yield gateway
    gateway.stop()


@pytest.fixture
def up(fake_upstream: FakeUpstream) -> FakeUpstream:
    fake_upstream.reset()
    return fake_upstream


@pytest.fixture
def claude_up(fake_anthropic: FakeUpstream) -> FakeUpstream:
    fake_anthropic.reset()
    return fake_anthropic


def client(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0, timeout=20)


def sent(fake: FakeUpstream) -> list[dict[str, Any]]:
    return [r for r in fake.requests() if r["path"].startswith("/v1/")]


# -- passed through to OpenAI's Responses API --------------------------------------------------


def test_native_plain_passes_the_body_through(gw: Gateway, up: FakeUpstream) -> None:
    raw = client(gw).responses.with_raw_response.create(
        model="gpt", input="hello world", instructions="be brief", max_output_tokens=64
    )
    response = raw.parse()
    assert response.output_text == "Echo: hello world"
    assert response.id.startswith("resp_fake")
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (4, 3)
    assert raw.headers["x-relay-provider"] == "openai"
    assert float(raw.headers["x-relay-cost-usd"]) == pytest.approx((4 * 1 + 3 * 2) / 1e6)
    (request,) = sent(up)
    assert request["path"] == "/v1/responses"
    # Untouched but for the upstream model name.
    assert request["body"] == {
        "model": "gpt-4o-mini", "input": "hello world", "instructions": "be brief",
        "max_output_tokens": 64,
    }  # fmt: skip


def test_native_tools_and_schema(gw: Gateway, up: FakeUpstream) -> None:
    called = client(gw).responses.create(
        model="gpt", input="weather in Paris?", tools=TOOLS, tool_choice="required"
    )
    (call,) = called.output
    assert call.type == "function_call"
    assert (call.name, call.arguments, call.call_id) == ("get_weather", '{"x": 1}', "call_1")
    shaped = client(gw).responses.create(model="gpt", input="hi", text=SCHEMA)
    assert json.loads(shaped.output_text) == {"echo": "Echo: hi"}


def test_native_stream_and_previous_response(gw: Gateway, up: FakeUpstream) -> None:
    with client(gw).responses.stream(model="gpt", input="one two three") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert kinds.count("response.output_text.delta") == 4
    assert final.output_text == "Echo: one two three"
    # OpenAI stores its own responses: the id passes through.
    follow = client(gw).responses.create(model="gpt", input="more", previous_response_id=final.id)
    assert follow.output_text == "Echo: more"
    assert sent(up)[-1]["body"]["previous_response_id"] == final.id


def test_native_error_after_content_is_an_error_event(gw: Gateway, up: FakeUpstream) -> None:
    events: list[Any] = []
    stream_of = client(gw).responses.stream
    with (
        pytest.raises(RuntimeError, match=r"response\.completed"),  # never a silent end
        stream_of(model="stream-error", input="a b c d e f") as stream,
    ):
        events.extend(stream)
        stream.get_final_response()
    assert [e.type for e in events].count("response.output_text.delta") == 2
    error = events[-1]
    assert error.type == "error" and error.code == "server_error"
    assert error.sequence_number == events[-2].sequence_number + 1


# -- translated to chat APIs ----------------------------------------------------------------


@pytest.mark.parametrize("model", ["claude", "vendor-gpt", "echo"])
def test_translated_plain(
    gw: Gateway, model: str, up: FakeUpstream, claude_up: FakeUpstream
) -> None:
    raw = client(gw).responses.with_raw_response.create(
        model=model, input="hello world", instructions="be brief", temperature=0.5
    )
    response = raw.parse()
    expected = "You said: hello world" if model == "echo" else "Echo: hello world"
    assert response.output_text == expected
    assert response.status == "completed" and response.object == "response"
    assert response.instructions == "be brief" and response.temperature == 0.5
    assert response.usage is not None and response.usage.output_tokens > 0
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    if model == "vendor-gpt":
        (request,) = sent(up)
        assert request["path"] == "/v1/chat/completions"
        assert request["body"]["messages"] == [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello world"},
        ]
    if model == "claude":
        body = sent(claude_up)[-1]["body"]
        assert body["system"] == "be brief" and body["temperature"] == 0.5


@pytest.mark.parametrize("model", ["claude", "vendor-gpt"])
def test_translated_tools_round_trip(
    gw: Gateway, model: str, up: FakeUpstream, claude_up: FakeUpstream
) -> None:
    first = client(gw).responses.create(
        model=model, input="weather in Paris?", tools=TOOLS, tool_choice="required"
    )
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    assert json.loads(calls[0].arguments) == {"x": 1}
    second = client(gw).responses.create(
        model=model,
        input=[
            {"role": "user", "content": "weather in Paris?"},
            {
                "type": "function_call",
                "call_id": calls[0].call_id,
                "name": "get_weather",
                "arguments": calls[0].arguments,
            },
            {"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny"},
        ],
        tools=TOOLS,
    )
    if model == "claude":
        assert second.output_text == "Result: sunny"
    else:  # the fake chat server echoes the last user message; check what it was sent
        messages = sent(up)[-1]["body"]["messages"]
        assert messages[1]["tool_calls"][0]["function"]["name"] == "get_weather"
        assert messages[2] == {"role": "tool", "tool_call_id": calls[0].call_id, "content": "sunny"}


def test_translated_parameters_mapped_or_refused_by_their_responses_name(
    gw: Gateway, up: FakeUpstream, claude_up: FakeUpstream
) -> None:
    oai = client(gw)
    oai.responses.create(model="claude", input="hi", reasoning={"effort": "medium"})
    body = sent(claude_up)[-1]["body"]
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 8192}
    oai.responses.create(model="vendor-gpt", input="hi", text={"verbosity": "low"})
    body = sent(up)[-1]["body"]
    assert body["verbosity"] == "low" and "text" not in body
    with pytest.raises(openai.BadRequestError) as refused:
        oai.responses.create(model="claude", input="hi", text={"verbosity": "low"})
    assert refused.value.param == "text.verbosity"
    assert "- text.verbosity: not supported by provider 'claude'" in refused.value.message
    for kwargs, param in (
        ({"reasoning": {"effort": "low", "summary": "auto"}}, "reasoning.summary"),
        ({"include": ["reasoning.encrypted_content"]}, "include"),
        ({"truncation": "auto"}, "truncation"),
    ):
        with pytest.raises(openai.BadRequestError) as info:
            oai.responses.create(model="echo", input="hi", **kwargs)  # type: ignore[arg-type]
        assert info.value.param == param and info.value.code == "unsupported_parameter"


def test_translated_schema_to_anthropic(gw: Gateway, claude_up: FakeUpstream) -> None:
    client(gw).responses.create(model="claude", input="hi", text=SCHEMA, max_output_tokens=40)
    body = sent(claude_up)[-1]["body"]
    assert body["max_tokens"] == 40
    assert body["output_config"]["format"]["type"] == "json_schema"
    assert body["output_config"]["format"]["schema"]["properties"] == {"echo": {"type": "string"}}


@pytest.mark.parametrize("model", ["claude", "vendor-gpt", "echo"])
def test_translated_stream(gw: Gateway, model: str) -> None:
    with client(gw).responses.stream(model=model, input="one two three") as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [event.type for event in events]
    assert kinds[:4] == [
        "response.created", "response.in_progress", "response.output_item.added",
        "response.content_part.added",
    ]  # fmt: skip
    assert kinds[-4:] == [
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.completed",
    ]  # fmt: skip
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert final.output_text == deltas
    assert deltas.endswith("one two three")
    assert final.usage is not None and final.usage.output_tokens > 0


def test_translated_stream_of_tool_calls(gw: Gateway) -> None:
    with client(gw).responses.stream(
        model="claude", input="weather?", tools=TOOLS, tool_choice="required"
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    arguments = "".join(
        e.delta for e in events if e.type == "response.function_call_arguments.delta"
    )
    call = next(item for item in final.output if item.type == "function_call")
    assert json.loads(arguments) == json.loads(call.arguments) == {"x": 1}


def test_translated_error_after_content_is_an_error_event(gw: Gateway) -> None:
    events: list[Any] = []
    stream_of = client(gw).responses.stream
    with (
        pytest.raises(RuntimeError, match=r"response\.completed"),
        stream_of(model="claude-stream-error", input="a b c d") as stream,
    ):
        events.extend(stream)
        stream.get_final_response()
    assert any(e.type == "response.output_text.delta" for e in events)
    error = events[-1]
    assert error.type == "error" and error.code == "overloaded_error"
    assert error.sequence_number == events[-2].sequence_number + 1


def test_previous_response_id_from_the_gateways_store(gw: Gateway, claude_up: FakeUpstream) -> None:
    oai = client(gw)
    first = oai.responses.create(model="claude", input="my name is Ada")
    second = oai.responses.create(
        model="claude", input="what is my name?", previous_response_id=first.id
    )
    assert second.previous_response_id == first.id
    messages = sent(claude_up)[-1]["body"]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[1]["content"][0]["text"] == "Echo: my name is Ada"
    stored = oai.responses.retrieve(second.id)
    assert stored.output_text == second.output_text and stored.usage == second.usage
    # Across providers too: the stored conversation is the gateway's.
    third = oai.responses.create(model="echo", input="bye", previous_response_id=second.id)
    assert third.usage is not None and third.usage.input_tokens > second.usage.input_tokens  # type: ignore[union-attr]


def test_input_items_of_a_stored_response(gw: Gateway, claude_up: FakeUpstream) -> None:
    """The conversation a stored response answered, as OpenAI lists it (newest first by
    default, paged by ``after``), whatever form the client sent it in."""
    oai = client(gw)
    first = oai.responses.create(
        model="claude", input="weather in Paris?", tools=TOOLS, tool_choice="required"
    )
    (call,) = [item for item in first.output if item.type == "function_call"]
    output = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}
    second = oai.responses.create(
        model="claude", input=[output], tools=TOOLS, previous_response_id=first.id
    )
    assert second.output_text == "Result: sunny"
    newest_first = oai.responses.input_items.list(second.id)
    assert [item.type for item in newest_first.data] == [
        "function_call_output",
        *(item.type for item in reversed(first.output)),
        "message",
    ]
    assert newest_first.data[-1].content[0].type == "input_text"  # type: ignore[union-attr]
    assert newest_first.data[-1].content[0].text == "weather in Paris?"  # type: ignore[union-attr]
    assert newest_first.data[0].status == "completed"  # type: ignore[union-attr]
    assert newest_first.data[1].id == first.output[-1].id  # an output item keeps its id
    assert not newest_first.has_more
    paged = list(oai.responses.input_items.list(second.id, order="asc", limit=1))
    assert [item.id for item in paged] == [item.id for item in reversed(newest_first.data)]
    raw = oai.responses.input_items.with_raw_response.list(first.id, limit=1)
    assert json.loads(raw.content) == {
        "object": "list",
        "data": [json.loads(raw.content)["data"][0]],
        "first_id": json.loads(raw.content)["data"][0]["id"],
        "last_id": json.loads(raw.content)["data"][0]["id"],
        "has_more": False,
    }
    with pytest.raises(openai.BadRequestError, match="limit: expected an integer from 1 to 100"):
        oai.responses.input_items.list(second.id, limit=500)


def test_input_items_without_a_passthrough_provider(
    fake_upstream: FakeUpstream, fake_anthropic: FakeUpstream, tmp_path: Path
) -> None:
    cfg = config(fake_upstream.base_url, fake_anthropic.base_url)
    del cfg["routing"]
    gateway = Gateway(cfg, tmp_path)
    try:
        oai = client(gateway)
        stored = oai.responses.create(model="echo", input="hi")
        (item,) = oai.responses.input_items.list(stored.id).data
        assert item.type == "message" and item.role == "user"  # type: ignore[union-attr]
        with pytest.raises(openai.NotFoundError, match=r"routing\.passthrough_provider"):
            oai.responses.input_items.list("resp_not_here")
        with pytest.raises(openai.NotFoundError, match=r"routing\.passthrough_provider"):
            oai.responses.retrieve("resp_not_here")
    finally:
        gateway.stop()


def test_stored_responses_belong_to_their_tenant(gw: Gateway) -> None:
    oai = client(gw)
    mine = oai.responses.create(model="echo", input="secret", metadata={"tenant": "team-a"})
    with pytest.raises(openai.BadRequestError, match="no stored response") as info:
        oai.responses.create(
            model="echo", input="leak?", previous_response_id=mine.id,
            metadata={"tenant": "team-b"},
        )  # fmt: skip
    assert info.value.code == "previous_response_not_found"
    with pytest.raises(openai.BadRequestError):
        oai.responses.create(model="echo", input="x", previous_response_id="resp_nothing")


def test_bad_requests(gw: Gateway) -> None:
    oai = client(gw)
    with pytest.raises(openai.BadRequestError, match=r"input\[0\]\.type"):
        oai.responses.create(model="claude", input=[{"type": "computer_call_output"}])  # type: ignore[list-item]
    with pytest.raises(openai.BadRequestError, match=r"tools\[0\]\.type"):
        oai.responses.create(model="echo", input="x", tools=[{"type": "web_search"}])
    with pytest.raises(openai.BadRequestError, match="input"):
        oai.responses.create(model="echo", input=7)  # type: ignore[arg-type]


def test_store_disabled_is_a_clear_400(
    fake_upstream: FakeUpstream, fake_anthropic: FakeUpstream, tmp_path: Path
) -> None:
    cfg = config(fake_upstream.base_url, fake_anthropic.base_url, responses={"enabled": False})
    gateway = Gateway(cfg, tmp_path)
    try:
        oai = client(gateway)
        assert oai.responses.create(model="echo", input="hi").store is False
        for kwargs in ({"store": True}, {"previous_response_id": "resp_x"}):
            with pytest.raises(openai.BadRequestError, match="does not store responses"):
                oai.responses.create(model="echo", input="hi", **kwargs)  # type: ignore[arg-type]
        # OpenAI keeps its own: no gateway store needed.
        assert oai.responses.create(model="gpt", input="hi", store=True).output_text
    finally:
        gateway.stop()


# -- pass-through of other /v1 routes -------------------------------------------------------


def ledger_row(gw_dir: Path, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with sqlite3.connect(gw_dir / "relay.db") as db:
            db.row_factory = sqlite3.Row
            row = db.execute(
                "SELECT * FROM requests WHERE request_id = ?", (request_id,)
            ).fetchone()
        if row is not None:
            return dict(row)
        time.sleep(0.1)
    raise AssertionError(f"no ledger row for {request_id}")


def test_file_upload_streams_multipart(gw: Gateway, gw_dir: Path, up: FakeUpstream) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    raw = client(gw).files.with_raw_response.create(file=("data.jsonl", data), purpose="batch")
    created = raw.parse()
    assert (created.id, created.bytes, created.filename) == ("file-fake1", len(data), "data.jsonl")
    (request,) = sent(up)
    assert request["path"] == "/v1/files"
    assert request["headers"]["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert request["headers"]["content-type"].startswith("multipart/form-data; boundary=")
    assert raw.headers["x-relay-provider"] == "openai"
    row = ledger_row(gw_dir, raw.headers["x-request-id"])
    assert (row["endpoint"], row["status"], row["provider"]) == ("/files", 200, "openai")


def test_image_generation_records_usage(gw: Gateway, gw_dir: Path, up: FakeUpstream) -> None:
    raw = client(gw).images.with_raw_response.generate(model="gpt-image-1", prompt="a red fox")
    assert raw.parse().data[0].b64_json
    assert sent(up)[0]["body"]["prompt"] == "a red fox"
    row = ledger_row(gw_dir, raw.headers["x-request-id"])
    assert (row["endpoint"], row["model"]) == ("/images/generations", "gpt-image-1")
    assert (row["prompt_tokens"], row["completion_tokens"]) == (3, 272)
    assert row["cost_usd"] == pytest.approx((3 * 5 + 272 * 40) / 1e6)


def raw_request(gw: Gateway, target: str, method: str = "GET") -> int:
    """Send a request line as is (no client-side normalisation); the status."""
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as sock:
        sock.sendall(f"{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        head = sock.recv(65536).split(b"\r\n", 1)[0]
    return int(head.split()[1])


@pytest.mark.parametrize(
    "target",
    [
        "/v1/../admin/tenants",
        "/v1/files/../../admin",
        "/v1/files/%2e%2e/%2e%2e/admin",
        "/v1/files/..%2f..%2fadmin",
        "/v1/files/%252e%252e/x",
        "/v1//evil.example/x",
        "/v1/files/.",
        "/v1/files\\..\\admin",
        "http://evil.example/v1/files",
        "/v1/http://evil.example/x",
    ],
)
def test_paths_that_leave_the_api_are_refused(gw: Gateway, up: FakeUpstream, target: str) -> None:
    status = raw_request(gw, target)
    assert status in (400, 404)
    assert sent(up) == [] or all(r["path"] == "/v1/files" for r in sent(up))


def test_query_strings_pass_through(gw: Gateway, up: FakeUpstream) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    conn.request("GET", "/v1/files?limit=2")
    response = conn.getresponse()
    response.read()
    assert response.status == 405  # passed through to the fake, which has no GET /v1/files
    assert sent(up)[0]["path"] == "/v1/files"
    assert sent(up)[0]["method"] == "GET"
