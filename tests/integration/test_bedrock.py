"""The gateway in front of Bedrock (a fake Converse server checking SigV4 and the documented
body rules), driven with the openai SDK: streamed and not, tools, errors, usage."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.fakes.bedrock_upstream import (
    ACCESS_KEY,
    ENV_ACCESS_KEY,
    ENV_SECRET_KEY,
    ENV_TOKEN,
    REGION,
    SECRET_KEY,
    FakeBedrock,
    start_fake_bedrock,
)
from tests.integration.gateway import Gateway

pytestmark = pytest.mark.integration

FAMILIES = {
    "claude": "anthropic.claude-3-5-haiku-20241022-v1:0",
    "llama": "meta.llama3-1-8b-instruct-v1:0",
    "mistral-large": "mistral.mistral-large-2407-v1:0",
    "nova": "amazon.nova-lite-v1:0",
}
MESSAGES: Any = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "hello world"},
]
TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look a thing up",
            "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}},
        },
    }
]


@pytest.fixture(scope="module")
def bedrock() -> Iterator[FakeBedrock]:
    with start_fake_bedrock() as fake:
        yield fake


@pytest.fixture(scope="module")
def gateway(bedrock: FakeBedrock, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    conf = {"region": REGION, "endpoint_url": bedrock.endpoint_url}
    keys = {"aws_access_key_id": ACCESS_KEY, "aws_secret_access_key": SECRET_KEY}
    models: dict[str, Any] = {
        name: {"provider": "aws", "model": model, "pricing": {"input": 3, "output": 15}}
        for name, model in FAMILIES.items()
    }
    models["nova"]["provider"] = "awsenv"
    for scenario in ("throttled", "invalid", "stream-exception", "corrupt-stream", "cached"):
        models[scenario] = {"provider": "aws"}
    models["lenient"] = {
        "provider": "aws",
        "model": FAMILIES["claude"],
        "drop_unsupported_params": True,
    }
    models["wrong-key"] = {"provider": "badaws", "model": FAMILIES["claude"]}
    config = {
        "providers": {
            "aws": {"kind": "bedrock", **conf, **keys},
            "awsenv": {"kind": "bedrock", **conf},
            "badaws": {"kind": "bedrock", **conf, **keys, "aws_secret_access_key": "wrong"},
        },
        "models": models,
    }
    env = {
        "AWS_ACCESS_KEY_ID": ENV_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": ENV_SECRET_KEY,
        "AWS_SESSION_TOKEN": ENV_TOKEN,
    }
    gw = Gateway(config, tmp_path_factory.mktemp("bedrock"), env=env)
    yield gw
    gw.stop()


@pytest.fixture
def fake(bedrock: FakeBedrock) -> FakeBedrock:
    bedrock.recorder.reset()
    return bedrock


def sdk(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0, timeout=20)


def last(fake: FakeBedrock) -> dict[str, Any]:
    entry = fake.recorder.last()
    assert "refused" not in entry, entry["refused"]
    return entry


def raw_stream(gateway: Gateway, body: dict[str, Any]) -> list[bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=20)
    conn.request("POST", "/v1/chat/completions", json.dumps({**body, "stream": True}),
                 {"content-type": "application/json"})  # fmt: skip
    response = conn.getresponse()
    assert response.status == 200, response.read()
    data = response.read()
    conn.close()
    return [e for e in data.split(b"\n\n") if e.strip()]


@pytest.mark.parametrize("public", sorted(FAMILIES))
def test_each_model_family_answers_with_the_providers_usage(
    gateway: Gateway, fake: FakeBedrock, public: str
) -> None:
    reply = sdk(gateway).chat.completions.create(model=public, messages=MESSAGES)
    entry = last(fake)
    assert entry["model"] == FAMILIES[public]
    assert entry["raw_path"] == f"/model/{FAMILIES[public].replace(':', '%3A')}/converse"
    assert entry["json"] == {
        "messages": [{"role": "user", "content": [{"text": "hello world"}]}],
        "system": [{"text": "be brief"}],
    }
    assert reply.object == "chat.completion" and reply.model == FAMILIES[public]
    assert reply.choices[0].message.content == "Echo: hello world"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    # the fake: 2 + 2 words of text + 3 for its one message; "Echo: hello world" is 3 words
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (7, 3)
    assert reply.usage.total_tokens == 10


def test_env_credentials_with_a_session_token_sign_the_request(
    gateway: Gateway, fake: FakeBedrock
) -> None:
    sdk(gateway).chat.completions.create(model="nova", messages=MESSAGES)
    entry = last(fake)
    assert ENV_ACCESS_KEY in entry["headers"]["authorization"]
    assert entry["headers"]["x-amz-security-token"] == ENV_TOKEN


def test_stream_is_openai_chunks_ending_in_done(gateway: Gateway, fake: FakeBedrock) -> None:
    chunks = list(
        sdk(gateway).chat.completions.create(
            model="claude",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert last(fake)["path"].endswith("/converse-stream")
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: hello world"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (7, 3)
    events = raw_stream(gateway, {"model": "claude", "messages": MESSAGES})
    assert events[-1] == b"data: [DONE]"
    assert not any(b'"usage"' in e for e in events)  # not asked for: not sent


def test_sampling_parameters_map_to_inference_config(gateway: Gateway, fake: FakeBedrock) -> None:
    reply = sdk(gateway).chat.completions.create(
        model="llama", messages=MESSAGES, max_tokens=2, temperature=0.2, top_p=0.9, stop="END"
    )
    assert last(fake)["json"]["inferenceConfig"] == {
        "maxTokens": 2,
        "temperature": 0.2,
        "topP": 0.9,
        "stopSequences": ["END"],
    }
    assert reply.choices[0].finish_reason == "length"
    assert reply.choices[0].message.content == "Echo: hello"


def test_tool_call_and_its_result_round_trip(gateway: Gateway, fake: FakeBedrock) -> None:
    client = sdk(gateway)
    first = client.chat.completions.create(
        model="claude", messages=MESSAGES, tools=TOOLS, tool_choice="required"
    )
    sent = last(fake)["json"]["toolConfig"]
    assert sent["toolChoice"] == {"any": {}}
    assert sent["tools"][0]["toolSpec"]["inputSchema"]["json"] == TOOLS[0]["function"]["parameters"]
    calls = first.choices[0].message.tool_calls
    assert first.choices[0].finish_reason == "tool_calls" and calls
    assert (calls[0].function.name, json.loads(calls[0].function.arguments)) == ("lookup", {"x": 1})
    follow_up: Any = [
        *MESSAGES,
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": calls[0].id, "content": "42"},
        {"role": "user", "content": "and now?"},
    ]
    second = client.chat.completions.create(model="claude", messages=follow_up, tools=TOOLS)
    turns = last(fake)["json"]["messages"]
    assert turns[1]["content"] == [
        {"toolUse": {"toolUseId": calls[0].id, "name": "lookup", "input": {"x": 1}}}
    ]
    assert turns[2]["content"] == [
        {
            "toolResult": {
                "toolUseId": calls[0].id,
                "content": [{"text": "42"}],
                "status": "success",
            }
        },
        {"text": "and now?"},
    ]
    assert second.choices[0].message.content == "Echo: and now?"


def test_streamed_tool_call(gateway: Gateway, fake: FakeBedrock) -> None:
    chunks = list(
        sdk(gateway).chat.completions.create(
            model="mistral-large",
            messages=MESSAGES,
            tools=TOOLS,
            tool_choice={"type": "function", "function": {"name": "lookup"}},
            stream=True,
        )
    )
    assert last(fake)["json"]["toolConfig"]["toolChoice"] == {"tool": {"name": "lookup"}}
    deltas = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or ()]
    assert deltas[0].id == "tooluse_fake0001" and deltas[0].function is not None
    assert deltas[0].function.name == "lookup"
    arguments = "".join((d.function.arguments or "") for d in deltas if d.function)
    assert json.loads(arguments) == {"x": 1} and {d.index for d in deltas} == {0}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_cached_usage_is_what_bedrock_reported(gateway: Gateway, fake: FakeBedrock) -> None:
    reply = sdk(gateway).chat.completions.create(model="cached", messages=MESSAGES)
    usage = reply.usage
    assert usage is not None and usage.prompt_tokens_details is not None
    # inputTokens 7 + cache reads 5 + cache writes 2; totalTokens as reported (7+3+7)
    assert (usage.prompt_tokens, usage.prompt_tokens_details.cached_tokens) == (14, 5)
    assert (usage.completion_tokens, usage.total_tokens) == (3, 17)


def test_bedrock_errors_keep_their_status(gateway: Gateway, fake: FakeBedrock) -> None:
    client = sdk(gateway)
    with pytest.raises(openai.RateLimitError) as throttled:
        client.chat.completions.create(model="throttled", messages=MESSAGES)
    assert "Too many requests" in throttled.value.message
    assert throttled.value.code == "ThrottlingException"
    with pytest.raises(openai.BadRequestError) as invalid:
        client.chat.completions.create(model="invalid", messages=MESSAGES)
    assert "bad input" in invalid.value.message


def test_wrong_credentials_are_the_operators_problem(gateway: Gateway, fake: FakeBedrock) -> None:
    with pytest.raises(openai.APIStatusError) as err:
        sdk(gateway).chat.completions.create(model="wrong-key", messages=MESSAGES)
    assert err.value.status_code == 502 and err.value.code == "upstream_auth_failed"
    assert "wrong" not in err.value.message
    # The same fault as every provider's, naming Bedrock's own settings to check.
    assert "refused the gateway's credentials (" in err.value.message
    assert "aws_access_key_id, providers." in err.value.message
    assert err.value.message.endswith(".aws_secret_access_key and providers.badaws.region")


@pytest.mark.parametrize(
    ("model", "code"),
    [
        ("stream-exception", "modelStreamErrorException"),
        ("corrupt-stream", "upstream_bad_response"),
    ],
)
def test_a_failing_stream_ends_with_an_error_event(
    gateway: Gateway, fake: FakeBedrock, model: str, code: str
) -> None:
    events = raw_stream(gateway, {"model": model, "messages": MESSAGES})
    assert b'"content":"Echo:"' in events[1]
    error = json.loads(events[-1].removeprefix(b"data: "))["error"]
    assert error["code"] == code
    assert b"[DONE]" not in b"".join(events)


def test_a_parameter_bedrock_cannot_honour_is_a_400_unless_dropped(
    gateway: Gateway, fake: FakeBedrock
) -> None:
    client = sdk(gateway)
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="claude", messages=MESSAGES, logit_bias={"1": 2})
    assert err.value.param == "logit_bias" and "drop_unsupported_params" in err.value.message
    fake.recorder.reset()
    reply = client.chat.completions.create(
        model="lenient", messages=MESSAGES, logit_bias={"1": 2}, seed=3
    )
    assert reply.choices[0].message.content == "Echo: hello world"
    assert set(last(fake)["json"]) == {"messages", "system"}
