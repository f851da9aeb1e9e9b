"""The pipeline's contracts through the real server: one stage list for every route, answer
and stream hooks, settlers after the last byte, and the attempt that answered."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.fakes.openai_upstream import FakeUpstream
from tests.integration.conftest import upstream_config
from tests.integration.gateway import Gateway
from tests.integration.tenancy import call, keys_config, ledger_entry

MESSAGES: Any = [{"role": "user", "content": "hello world"}]
APP = "tests.integration.parts_app:create_app"


def sdk(gateway: Gateway, key: str = "unused", **headers: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gateway.base_url,
        api_key=key,
        max_retries=0,
        timeout=20,
        default_headers=headers or None,
    )


def raw(
    gateway: Gateway, method: str, path: str, body: bytes | None = None, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=20)
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    payload = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, payload


@pytest.fixture(scope="module")
def refusing(
    fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("contracts")
    config = upstream_config(fake_upstream)
    config["routing"] = {"passthrough_provider": "fake"}
    config["database"] = {"url": f"sqlite:///{tmp / 'relay.db'}"}
    gateway = Gateway(config, tmp, app=APP, env={"RELAY_TEST_PARTS": "refuse,shout"})
    yield gateway
    gateway.stop()


def test_a_stage_refuses_every_route_alike(refusing: Gateway) -> None:
    """The same stage list runs on chat, Messages, pass-through and stored responses."""
    refuse = {"x-test-refuse": "1", "content-type": "application/json"}
    chat = json.dumps({"model": "gpt-4o-mini", "messages": MESSAGES}).encode()
    messages = json.dumps({"model": "gpt-4o-mini", "max_tokens": 5, "messages": MESSAGES}).encode()
    for method, path, body in [
        ("POST", "/v1/chat/completions", chat),
        ("POST", "/v1/messages", messages),
        ("GET", "/v1/files", None),
        ("POST", "/v1/moderations", json.dumps({"input": "x"}).encode()),
        ("GET", "/v1/responses/resp_missing", None),
    ]:
        status, _, payload = raw(refusing, method, path, body, **refuse)
        assert status == 429, (path, payload)
        assert b"refused by the test stage" in payload
        # Without the header the same route gets past the stage.
        status, _, payload = raw(
            refusing, method, path, body, **{"content-type": "application/json"}
        )
        assert status != 429, (path, payload)
    # Anthropic's route refuses in Anthropic's envelope.
    _, _, payload = raw(refusing, "POST", "/v1/messages", messages, **refuse)
    assert json.loads(payload)["type"] == "error"


def test_answer_hooks_transform_json_answers(refusing: Gateway) -> None:
    reply = sdk(refusing).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert reply.choices[0].message.content == "ECHO: hello world"


def test_stream_hooks_see_every_event_and_flush_at_the_end(refusing: Gateway) -> None:
    """The fake writes its events 7 bytes at a time, half of them with CRLF: the hook still
    sees whole events in the client's framing, and its end frame comes before [DONE]."""
    status, _, body = raw(
        refusing,
        "POST",
        "/v1/chat/completions",
        json.dumps({"model": "split-events", "messages": MESSAGES, "stream": True}).encode(),
        **{"content-type": "application/json"},
    )
    assert status == 200
    frames = [f for f in body.split(b"\n\n") if f]
    data = [json.loads(f[6:]) for f in frames if f.startswith(b"data: {")]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in data if c["choices"])
    assert text == "ECHO: hello world"
    comment = next(f for f in frames if f.startswith(b": events seen"))
    assert int(comment.rsplit(b" ", 1)[1]) == len(data)  # every event once, none twice
    assert frames.index(comment) < frames.index(b"data: [DONE]")


def test_a_hook_that_holds_everything_still_delivers_the_whole_stream(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    config = upstream_config(fake_upstream)
    gateway = Gateway(config, tmp_path, app=APP, env={"RELAY_TEST_PARTS": "hold"})
    try:
        stream = sdk(gateway).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text == "Echo: hello world"
    finally:
        gateway.stop()


@pytest.fixture
def settling(fake_upstream: FakeUpstream, tmp_path: Path) -> Iterator[tuple[Gateway, Path, Path]]:
    config = upstream_config(fake_upstream)
    release, settled = tmp_path / "release", tmp_path / "settled"
    env = {
        "RELAY_TEST_PARTS": "wait",
        "RELAY_TEST_RELEASE": str(release),
        "RELAY_TEST_SETTLED": str(settled),
    }
    gateway = Gateway(config, tmp_path, app=APP, env=env)
    yield gateway, release, settled
    gateway.stop()


def test_settlers_run_after_the_client_has_its_answer(settling: tuple[Gateway, Path, Path]) -> None:
    """The settler cannot finish until the test says so; the client already has its whole
    answer (JSON and streamed) by then, and every exchange is settled once afterwards."""
    gateway, release, settled = settling
    client = sdk(gateway)
    json_reply = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES
    )
    assert json_reply.parse().choices[0].message.content == "Echo: hello world"
    stream = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream.parse() if c.choices)
    assert text == "Echo: hello world"
    assert not settled.exists()
    release.touch()
    ids = {json_reply.headers["x-request-id"], stream.headers["x-request-id"]}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = settled.read_text().splitlines() if settled.exists() else []
        if len(lines) >= 2:
            break
        time.sleep(0.02)
    assert {line.split()[0] for line in lines} == ids and len(lines) == 2
    assert all(line.split()[1] == "200" and float(line.split()[2]) > 0 for line in lines)


def test_a_settler_that_hangs_is_abandoned(fake_upstream: FakeUpstream, tmp_path: Path) -> None:
    config = upstream_config(fake_upstream, settle_timeout_s=0.2)
    gateway = Gateway(config, tmp_path, app=APP, env={"RELAY_TEST_PARTS": "hang"})
    try:
        client = sdk(gateway)
        for _ in range(3):
            reply = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            assert reply.choices[0].message.content == "Echo: hello world"
        deadline = time.monotonic() + 10
        line = "settling took over 0.2s and was abandoned"
        while gateway.logs().count(line) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gateway.logs().count(line) == 3
    finally:
        gateway.stop()


def test_a_stream_that_fails_before_content_costs_nothing(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    """Only an attempt that answered is priced: a stream whose provider stalls after the
    headers (504 before any content) is recorded with no tokens and no cost."""
    config = keys_config(fake_upstream, f"sqlite:///{tmp_path / 'relay.db'}")
    config["models"]["stalls"] = {
        "provider": "impatient",
        "model": "fault-stallbody-all",
        "pricing": {"input": 1000.0, "output": 1000.0},
    }
    gateway = Gateway(config, tmp_path)
    try:
        status, tenant = call(gateway, "POST", "/admin/tenants", {"name": "t"})
        assert status == 201
        status, headers, body = raw(
            gateway,
            "POST",
            "/v1/chat/completions",
            json.dumps({"model": "stalls", "messages": MESSAGES, "stream": True}).encode(),
            **{"content-type": "application/json", "authorization": f"Bearer {tenant['api_key']}"},
        )
        assert status == 504, body
        entry = ledger_entry(gateway, headers["x-request-id"])
        assert entry["status"] == 504
        assert (entry["prompt_tokens"], entry["completion_tokens"], entry["cost_usd"]) == (0, 0, 0)
    finally:
        gateway.stop()


def test_a_restricted_key_reads_its_stored_responses(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    """``GET /v1/responses/{id}`` names no model: a key allowed some models reads the stored
    responses of those models (not a 403 for model ''), and not of others."""
    config = keys_config(fake_upstream, f"sqlite:///{tmp_path / 'relay.db'}")
    config["providers"]["chatonly"] = {**config["providers"]["fake"], "native_responses": False}
    config["models"]["translated"] = {"provider": "chatonly", "model": "gpt-4o-mini"}
    gateway = Gateway(config, tmp_path)
    try:
        status, tenant = call(gateway, "POST", "/admin/tenants", {"name": "t"})
        assert status == 201
        key_for = {}
        for models in (["translated"], ["gpt-4o-mini"]):
            status, key = call(
                gateway,
                "POST",
                "/admin/keys",
                {"tenant_id": tenant["id"], "allowed_models": models},
            )
            assert status == 201, key
            key_for[models[0]] = key["api_key"]
        created = sdk(gateway, key_for["translated"]).responses.create(
            model="translated", input="hello world"
        )
        fetched = sdk(gateway, key_for["translated"]).responses.retrieve(created.id)
        assert fetched.id == created.id and fetched.output_text == created.output_text
        with pytest.raises(openai.PermissionDeniedError, match="translated"):
            sdk(gateway, key_for["gpt-4o-mini"]).responses.retrieve(created.id)
        # Routes that name no model stay closed to restricted keys.
        status, _, body = raw(
            gateway, "GET", "/v1/files", authorization=f"Bearer {key_for['translated']}"
        )
        assert status == 403 and b"names no model" in body
    finally:
        gateway.stop()
