"""The fake Anthropic server refuses what the Messages API refuses (so that every request the
gateway's translation gets through it is well-formed), and answers with documented shapes."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from .anthropic_upstream import start_fake_anthropic
from .openai_upstream import FakeUpstream

pytestmark = pytest.mark.integration
KEY = "sk-ant-fake"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with start_fake_anthropic(KEY) as upstream:
        yield upstream


def post(fake: FakeUpstream, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    sent = {"x-api-key": KEY, "anthropic-version": "2023-06-01", "content-type": "application/json"}
    request = urllib.request.Request(
        fake.url + "/v1/messages",
        data=json.dumps(body).encode(),
        headers={**sent, **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


USER: Any = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": "m", "messages": USER}, "max_tokens"),
        ({"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}, "messages.0.role"),
        ({"model": "m", "max_tokens": 5, "messages": USER * 2}, "messages.1.role"),
        ({"model": "m", "max_tokens": 5, "messages": USER, "n": 1}, "n"),
        ({"model": "m", "max_tokens": 5, "messages": USER, "stream_options": {}}, "stream_options"),
        ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]}, "messages.0.content.0.text"),
        (
            {"model": "m", "max_tokens": 5, "messages": [
                *USER,
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
                {"role": "user", "content": [{"type": "text", "text": "x"}, {"type": "tool_result", "tool_use_id": "t1"}]},
            ]},
            "messages.2.content.1",
        ),
        ({"model": "m", "max_tokens": 5, "messages": USER, "tools": [{"type": "function", "function": {}}]}, "tools.0"),
    ],
)  # fmt: skip
def test_refuses_what_the_api_refuses(fake: FakeUpstream, body: Any, field: str) -> None:
    status, error = post(fake, body)
    assert status == 400 and error["type"] == "error"
    assert error["error"]["type"] == "invalid_request_error"
    assert error["error"]["message"].startswith(field)


def test_needs_the_key_and_the_version(fake: FakeUpstream) -> None:
    body = {"model": "m", "max_tokens": 5, "messages": USER}
    assert post(fake, body, {"x-api-key": "wrong"})[1]["error"]["type"] == "authentication_error"
    assert post(fake, body, {"anthropic-version": ""})[0] == 400


def test_sdk_answers_streams_and_errors(fake: FakeUpstream) -> None:
    client = anthropic.Anthropic(
        base_url=fake.url, api_key="unused", default_headers={"x-api-key": KEY}, max_retries=0
    )
    message = client.messages.create(model="m", max_tokens=50, messages=USER)
    assert message.content[0].type == "text" and message.content[0].text == "Echo: hi"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (1, 2)
    with client.messages.stream(model="split-events", max_tokens=50, messages=USER) as stream:
        assert "".join(stream.text_stream) == "Echo: hi"
    with pytest.raises(anthropic.OverloadedError):
        client.messages.create(model="error-529", max_tokens=5, messages=USER)
    assert client.messages.count_tokens(model="m", messages=USER).input_tokens == 1
