"""``kind: redact`` through the real server and the real SDKs: the provider sees placeholders
and masks, the caller gets its values back in JSON answers and streams (OpenAI chat, Anthropic
Messages, Responses; a stream written 7 bytes at a time), blocks come in the dialect's
envelope naming the kind, and a restored answer is never served to another caller by the
cache."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from tests.fakes.openai_upstream import FakeUpstream
from tests.integration.conftest import upstream_config
from tests.integration.gateway import Gateway

pytestmark = pytest.mark.integration

PII: dict[str, Any] = {
    "kind": "redact",
    "entities": {
        "email": "placeholder",
        "phone": "mask",
        "card": "placeholder",
        "iban": "placeholder",
        "ssn": "block",
    },
    "custom": {"employee_id": "EMP-[0-9]{6}"},
    "restore": True,
}


@pytest.fixture(scope="module")
def gateway(
    fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("redaction")
    config = upstream_config(fake_upstream)
    config["auth"] = {"mode": "none"}
    config["cache"] = {"mode": "deterministic"}
    config["policies"] = {"pii": PII}
    config["middleware"] = ["pii"]
    gw = Gateway(config, tmp)
    yield gw
    gw.stop()


def oai(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0, timeout=20)


def claude(gw: Gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key="unused", max_retries=0, timeout=20)


def sent_upstream(up: FakeUpstream, marker: str) -> str:
    """The last body the provider received holding ``marker``, as text."""
    found = [json.dumps(r["body"]) for r in up.requests() if marker in json.dumps(r["body"])]
    assert found, f"the provider never received {marker!r}"
    return found[-1]


PROMPT = (
    "mail ann.lee@example.org, card 4111 1111 1111 1111, staff EMP-004211, call +1 415 555 2671"
)
ECHO = "Echo: " + PROMPT.replace("+1 415 555 2671", "+* *** *** 2671")


def test_chat_json_restored(gateway: Gateway, fake_upstream: FakeUpstream) -> None:
    reply = oai(gateway).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "chat-json " + PROMPT}]
    )
    assert reply.choices[0].message.content == "Echo: chat-json " + ECHO[6:]
    sent = sent_upstream(fake_upstream, "chat-json")
    assert "[EMAIL_1]" in sent and "[CARD_1]" in sent and "[EMPLOYEE_ID_1]" in sent
    for value in ("ann.lee@example.org", "4111 1111", "EMP-004211", "415 555"):
        assert value not in sent


@pytest.mark.parametrize("model", ["gpt-4o-mini", "split-events"])
def test_chat_stream_restored(gateway: Gateway, fake_upstream: FakeUpstream, model: str) -> None:
    stream = oai(gateway).chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": f"chat-stream-{model} " + PROMPT}],
        stream=True,
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == f"Echo: chat-stream-{model} " + ECHO[6:]
    assert "ann.lee@example.org" not in sent_upstream(fake_upstream, f"chat-stream-{model}")


def test_messages_json_and_stream_restored(gateway: Gateway, fake_upstream: FakeUpstream) -> None:
    client = claude(gateway)
    message = client.messages.create(
        model="gpt-4o-mini",
        max_tokens=200,
        messages=[{"role": "user", "content": "messages-json " + PROMPT}],
    )
    block = message.content[0]
    assert block.type == "text" and block.text == "Echo: messages-json " + ECHO[6:]
    with client.messages.stream(
        model="gpt-4o-mini",
        max_tokens=200,
        messages=[{"role": "user", "content": "messages-stream " + PROMPT}],
    ) as stream:
        text = "".join(stream.text_stream)
    assert text == "Echo: messages-stream " + ECHO[6:]
    assert "ann.lee@example.org" not in sent_upstream(fake_upstream, "messages-stream")


def test_responses_restored(gateway: Gateway) -> None:
    client = oai(gateway)
    response = client.responses.create(model="gpt-4o-mini", input="responses " + PROMPT)
    assert response.output_text == "Echo: responses " + ECHO[6:]
    deltas = []
    done = ""
    for event in client.responses.create(
        model="gpt-4o-mini", input="responses-stream " + PROMPT, stream=True
    ):
        if event.type == "response.output_text.delta":
            deltas.append(event.delta)
        elif event.type == "response.output_text.done":
            done = event.text
    assert "".join(deltas) == done == "Echo: responses-stream " + ECHO[6:]


def post(gw: Gateway, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=20)
    conn.request("POST", path, json.dumps(body).encode(), {"content-type": "application/json"})
    response = conn.getresponse()
    payload = response.read()
    conn.close()
    return response.status, json.loads(payload)


def test_blocks_in_both_envelopes(gateway: Gateway, fake_upstream: FakeUpstream) -> None:
    ssn = "my ssn is 219-09-9999"
    status, error = post(
        gateway,
        "/v1/chat/completions",
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": ssn}]},
    )
    assert status == 400
    assert error["error"]["code"] == "input_blocked"
    assert (
        error["error"]["message"] == "blocked by policy 'pii': the prompt holds a value of kind ssn"
    )
    status, error = post(
        gateway,
        "/v1/messages",
        {"model": "gpt-4o-mini", "max_tokens": 9, "messages": [{"role": "user", "content": ssn}]},
    )
    assert status == 400
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert "kind ssn" in error["error"]["message"]
    assert "219-09" not in json.dumps(error)
    assert not [r for r in fake_upstream.requests() if "219-09" in json.dumps(r["body"])]


def test_a_restored_answer_is_not_served_to_another_caller(gateway: Gateway) -> None:
    """Two prompts that redact to the same text (``[EMAIL_1]``) get their own values back."""
    client = oai(gateway)
    answers = [
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": f"cache-check {who}"}],
            temperature=0,
        )
        .choices[0]
        .message.content
        for who in ("first@example.org", "second@example.org")
    ]
    assert answers == [
        "Echo: cache-check first@example.org",
        "Echo: cache-check second@example.org",
    ]
