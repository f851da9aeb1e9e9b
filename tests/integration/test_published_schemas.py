"""Every object the gateway generates, checked against the providers' published schemas.

OpenAI: the schemas of OpenAI's OpenAPI document (tests/contracts/openai_schemas.json, extracted
from github.com/openai/openai-openapi; its README says which commit), validated with
``jsonschema`` (JSON Schema 2020-12, the dialect of OpenAPI 3.1), ``$ref`` resolved inside the
fixture. Objects: chat completions and chunks, legacy completions, embeddings, models, errors,
and Responses objects, events and input item lists; made by the echo provider and translated
from Anthropic's Messages API (the fake Anthropic server), JSON and streamed.

Anthropic publishes no schema in a repository: its SDKs are generated from an OpenAPI document
that is not published there. The models of the ``anthropic`` SDK, generated from it, are the
published form of its shapes, so Anthropic objects (Messages, stream events, errors, token
counts, models) made by the gateway (translated from OpenAI-shaped providers, or its own) are
validated with them (``model_validate``: required fields, types, literals).
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import anthropic.types as ant_types
import jsonschema
import pydantic
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.fakes.anthropic_upstream import start_fake_anthropic
from tests.fakes.openai_upstream import FakeUpstream
from tests.integration.conftest import UPSTREAM_KEY
from tests.integration.gateway import Gateway

pytestmark = pytest.mark.integration

CONTRACTS = Path(__file__).resolve().parents[1] / "contracts"
ANTHROPIC_KEY = "sk-ant-test-upstream"
HI = [{"role": "user", "content": "hello world"}]
TOOL = {"type": "object", "properties": {"city": {"type": "string"}}}
CHAT_TOOLS = [{"type": "function", "function": {"name": "weather", "parameters": TOOL}}]
RESPONSES_TOOLS = [{"type": "function", "name": "weather", "parameters": TOOL}]
MESSAGES_TOOLS = [{"name": "weather", "input_schema": TOOL}]


# -- validation ------------------------------------------------------------------------------


# The document describes the legacy completions answer, not its stream: there, as the API
# reference says of streams, finish_reason is null until the last chunk and usage is null on
# every chunk but the usage chunk. The chunk schema is the answer's with just those two nulls.
COMPLETION_CHUNK = "CreateCompletionResponseChunk"


def _fixture() -> dict[str, Any]:
    fixture: dict[str, Any] = json.loads((CONTRACTS / "openai_schemas.json").read_text())
    schemas = fixture["components"]["schemas"]
    chunk = json.loads(json.dumps(schemas["CreateCompletionResponse"]))
    choice = chunk["properties"]["choices"]["items"]["properties"]
    choice["finish_reason"] = {"anyOf": [choice["finish_reason"], {"type": "null"}]}
    chunk["properties"]["usage"] = {"anyOf": [chunk["properties"]["usage"], {"type": "null"}]}
    schemas[COMPLETION_CHUNK] = chunk
    fixture["roots"].append(COMPLETION_CHUNK)
    return fixture


@cache
def openai_validator(root: str) -> jsonschema.Draft202012Validator:
    fixture = _fixture()
    assert root in fixture["roots"], f"{root} is not extracted into the fixture"
    resource = Resource.from_contents(fixture, default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource("urn:openai", resource)
    schema = {"$ref": f"urn:openai#/components/schemas/{root}"}
    return jsonschema.Draft202012Validator(schema, registry=registry)


def conforms(root: str, obj: Any, what: str) -> None:
    """``obj`` is a valid OpenAI ``root``; else the failures, with where they are."""
    errors = sorted(openai_validator(root).iter_errors(obj), key=lambda e: list(e.path))
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        where = "/".join(map(str, best.absolute_path)) or "(top)"
        raise AssertionError(
            f"{what} is not a valid {root}: at {where}: {best.message[:300]}\n"
            f"{json.dumps(obj)[:1500]}"
        )


def anthropic_conforms(model: Any, obj: Any, what: str) -> None:
    """``obj`` validates as the anthropic SDK's ``model`` (a class or a union)."""
    try:
        pydantic.TypeAdapter(model).validate_python(obj)
    except pydantic.ValidationError as exc:
        raise AssertionError(
            f"{what} is not a valid {model}: {exc}\n{json.dumps(obj)[:1500]}"
        ) from None


def test_the_schemas_refuse_what_they_should() -> None:
    """The fixture's references resolve, and a broken object is refused, naming the field."""
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
             "choices": [{"index": 0, "delta": {}, "finish_reason": "done"}]}  # fmt: skip
    with pytest.raises(AssertionError, match="at choices/0/finish_reason"):
        conforms("CreateChatCompletionStreamResponse", chunk, "a broken chunk")
    with pytest.raises(AssertionError, match="'choices' is a required property"):
        conforms("CreateChatCompletionResponse", {"id": "x"}, "a broken completion")
    with pytest.raises(AssertionError, match="lifecycle"):
        anthropic_conforms(ant_types.ModelInfo, {"type": "model", "id": "m"}, "a model")


# -- the gateway and raw HTTP ----------------------------------------------------------------


@pytest.fixture(scope="module")
def fake_anthropic() -> Iterator[FakeUpstream]:
    with start_fake_anthropic(ANTHROPIC_KEY) as fake:
        yield fake


@pytest.fixture(scope="module")
def gw(
    fake_upstream: FakeUpstream,
    fake_anthropic: FakeUpstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Gateway]:
    config = {
        "auth": {"mode": "none"},
        "providers": {
            "echo": {"kind": "echo"},
            "claude": {"kind": "anthropic", "base_url": fake_anthropic.base_url,
                       "api_key": ANTHROPIC_KEY},
            "openai": {"kind": "openai", "base_url": fake_upstream.base_url,
                       "api_key": UPSTREAM_KEY},
        },
        "models": {
            "echo": {"provider": "echo"},
            "claude": {"provider": "claude", "model": "claude-fake-1"},
            "claude-cache": {"provider": "claude", "model": "cache-usage"},
            "claude-stream-error": {"provider": "claude", "model": "stream-error"},
            "gpt": {"provider": "openai", "model": "gpt-4o-mini"},
            "gpt-no-usage": {"provider": "openai", "model": "no-usage"},
            "gpt-stream-error": {"provider": "openai", "model": "stream-error"},
        },
        "database": {"url": "sqlite:///relay.db"},
    }  # fmt: skip
    gateway = Gateway(config, tmp_path_factory.mktemp("schemas"))
    yield gateway
    gateway.stop()


def call(
    gw: Gateway, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
    data = body if isinstance(body, bytes) else None if body is None else json.dumps(body).encode()
    conn.request(method, path, body=data, headers={"content-type": "application/json",
                                                    **(headers or {})})  # fmt: skip
    response = conn.getresponse()
    payload = response.read()
    conn.close()
    return response.status, payload


def post(gw: Gateway, path: str, body: Any, headers: dict[str, str] | None = None) -> Any:
    status, payload = call(gw, "POST", path, body, headers)
    assert status == 200, payload[:500]
    return json.loads(payload)


def events(gw: Gateway, path: str, body: Any, headers: dict[str, str] | None = None) -> list[Any]:
    """The JSON data of every SSE event of a stream (``[DONE]`` and comments left out)."""
    status, payload = call(gw, "POST", path, {**body, "stream": True}, headers)
    assert status == 200, payload[:500]
    out = []
    for frame in payload.decode().split("\n\n"):
        data = "".join(
            line[len("data: ") :] for line in frame.split("\n") if line.startswith("data: ")
        )
        if data and data != "[DONE]":
            out.append(json.loads(data))
    assert out, "the stream had no events"
    return out


# -- OpenAI: chat, completions, embeddings, models, errors ------------------------------------

CHATS = {
    "echo": {"model": "echo", "messages": HI},
    "echo n=2": {"model": "echo", "messages": HI, "n": 2, "max_tokens": 2},
    "from Anthropic": {"model": "claude", "messages": HI},
    "from Anthropic, cache usage": {"model": "claude-cache", "messages": HI},
    "from Anthropic, tool call": {
        "model": "claude", "messages": HI, "tools": CHAT_TOOLS, "tool_choice": "required"
    },
    "usage counted here": {"model": "gpt-no-usage", "messages": HI},
}  # fmt: skip


@pytest.mark.parametrize("case", list(CHATS))
def test_chat_completions_and_chunks(gw: Gateway, case: str) -> None:
    body = CHATS[case]
    conforms("CreateChatCompletionResponse", post(gw, "/v1/chat/completions", body), case)
    streamed = {**body, "stream_options": {"include_usage": True}}
    for chunk in events(gw, "/v1/chat/completions", streamed):
        conforms("CreateChatCompletionStreamResponse", chunk, f"{case}, a chunk")


def test_completions_embeddings_and_models(gw: Gateway) -> None:
    body = {"model": "echo", "prompt": "say this"}
    conforms("CreateCompletionResponse", post(gw, "/v1/completions", body), "a completion")
    for chunk in events(gw, "/v1/completions", {**body, "stream_options": {"include_usage": True}}):
        conforms(COMPLETION_CHUNK, chunk, "a completion chunk")
    embedding = {"model": "echo", "input": ["a", "b"], "encoding_format": "float"}
    conforms("CreateEmbeddingResponse", post(gw, "/v1/embeddings", embedding), "embeddings")
    status, listed = call(gw, "GET", "/v1/models")
    assert status == 200
    conforms("ListModelsResponse", json.loads(listed), "the models list")
    status, one = call(gw, "GET", "/v1/models/echo")
    assert status == 200
    conforms("Model", json.loads(one), "a model")


ERRORS = [
    ("POST", "/v1/chat/completions", b"{not json"),
    ("POST", "/v1/chat/completions", {"model": "nope", "messages": HI}),
    ("POST", "/v1/chat/completions", {"model": "claude", "messages": HI, "seed": 1}),
    ("POST", "/v1/embeddings", {"model": "echo"}),
    ("POST", "/v1/responses", {"model": "echo", "input": 7}),
    ("GET", "/v1/models/nope", None),
    ("GET", "/v1/chat/completions", None),
    ("GET", "/v1/nowhere", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ERRORS)
def test_errors(gw: Gateway, method: str, path: str, body: Any) -> None:
    status, payload = call(gw, method, path, body)
    assert status >= 400
    conforms("ErrorResponse", json.loads(payload), f"the error of {method} {path}")


def test_error_event_of_a_chat_stream(gw: Gateway) -> None:
    chunks = events(gw, "/v1/chat/completions", {"model": "claude-stream-error", "messages": HI})
    assert "error" in chunks[-1]
    conforms("ErrorResponse", chunks[-1], "a chat stream's error event")


# -- OpenAI: Responses --------------------------------------------------------------------------

RESPONSES = {
    "echo": {"model": "echo", "input": "hello world", "instructions": "be brief"},
    "echo, incomplete": {"model": "echo", "input": "hello world", "max_output_tokens": 1},
    "echo, with a user and metadata": {
        "model": "echo", "input": "hi", "user": "u-1", "metadata": {"k": "v"}, "temperature": 0.2
    },
    "from Anthropic": {"model": "claude", "input": [{"role": "user", "content": "hello"}]},
    "from Anthropic, cache usage": {"model": "claude-cache", "input": "hello"},
    "from Anthropic, tool call": {
        "model": "claude", "input": "weather?", "tools": RESPONSES_TOOLS, "tool_choice": "required"
    },
}  # fmt: skip


@pytest.mark.parametrize("case", list(RESPONSES))
def test_responses_objects_and_events(gw: Gateway, case: str) -> None:
    body = RESPONSES[case]
    response = post(gw, "/v1/responses", body)
    conforms("Response", response, case)
    status, stored = call(gw, "GET", f"/v1/responses/{response['id']}")
    assert status == 200
    conforms("Response", json.loads(stored), f"{case}, retrieved")
    status, items = call(gw, "GET", f"/v1/responses/{response['id']}/input_items")
    assert status == 200
    conforms("ResponseItemList", json.loads(items), f"{case}, input items")
    for event in events(gw, "/v1/responses", body):
        conforms("ResponseStreamEvent", event, f"{case}, a {event.get('type')} event")


def test_responses_continued_and_failing(gw: Gateway) -> None:
    first = post(gw, "/v1/responses", RESPONSES["from Anthropic, tool call"])
    call_item = next(item for item in first["output"] if item["type"] == "function_call")
    output = {"type": "function_call_output", "call_id": call_item["call_id"], "output": "sunny"}
    body = {"model": "claude", "input": [output], "previous_response_id": first["id"]}
    second = post(gw, "/v1/responses", body)
    conforms("Response", second, "a continued response")
    status, items = call(gw, "GET", f"/v1/responses/{second['id']}/input_items?order=asc")
    assert status == 200
    conforms("ResponseItemList", json.loads(items), "a conversation's input items")
    failing = events(gw, "/v1/responses", {"model": "claude-stream-error", "input": "hi"})
    assert failing[-1]["type"] == "error"
    for event in failing:
        conforms("ResponseStreamEvent", event, f"a failing stream's {event['type']} event")


# -- Anthropic, with the anthropic SDK's models -------------------------------------------------

MESSAGES = {
    "to echo": {"model": "echo", "max_tokens": 50, "messages": HI, "system": "be brief"},
    "to OpenAI": {"model": "gpt", "max_tokens": 50, "messages": HI},
    "to OpenAI, tool call": {
        "model": "gpt", "max_tokens": 50, "messages": HI, "tools": MESSAGES_TOOLS,
        "tool_choice": {"type": "any"},
    },
    "to OpenAI, usage counted here": {"model": "gpt-no-usage", "max_tokens": 50, "messages": HI},
}  # fmt: skip


@pytest.mark.parametrize("case", list(MESSAGES))
def test_anthropic_messages_and_events(gw: Gateway, case: str) -> None:
    body = MESSAGES[case]
    anthropic_conforms(ant_types.Message, post(gw, "/v1/messages", body), case)
    for event in events(gw, "/v1/messages", body):
        anthropic_conforms(ant_types.RawMessageStreamEvent, event, f"{case}, {event['type']}")
    counted = post(gw, "/v1/messages/count_tokens", {k: v for k, v in body.items()
                                                      if k != "max_tokens"})  # fmt: skip
    anthropic_conforms(ant_types.MessageTokensCount, counted, f"{case}, count_tokens")


def test_anthropic_errors_and_models(gw: Gateway) -> None:
    version = {"anthropic-version": "2023-06-01"}
    failing = events(
        gw, "/v1/messages", {"model": "gpt-stream-error", "max_tokens": 9, "messages": HI}
    )
    assert failing[-1]["type"] == "error"
    anthropic_conforms(ant_types.ErrorResponse, failing[-1], "a Messages stream's error event")
    for body in (b"{", {"model": "echo", "messages": HI}, {"model": "nope", "max_tokens": 5,
                                                         "messages": HI}):  # fmt: skip
        status, payload = call(gw, "POST", "/v1/messages", body, version)
        assert status >= 400
        anthropic_conforms(ant_types.ErrorResponse, json.loads(payload), "a /v1/messages error")
    status, listed = call(gw, "GET", "/v1/models?limit=2", headers=version)
    assert status == 200
    page = json.loads(listed)
    assert set(page) == {"data", "has_more", "first_id", "last_id"}
    for model in page["data"]:
        anthropic_conforms(ant_types.ModelInfo, model, "a listed model")
    status, one = call(gw, "GET", "/v1/models/claude", headers=version)
    anthropic_conforms(ant_types.ModelInfo, json.loads(one), "a model")
    status, missing = call(gw, "GET", "/v1/models/nope", headers=version)
    assert status == 404
    anthropic_conforms(ant_types.ErrorResponse, json.loads(missing), "a models error")
