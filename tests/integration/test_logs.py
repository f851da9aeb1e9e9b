"""The gateway's log through the real server: one access line per request at the default
level (JSON fields, or a text line), nothing of the prompt or the answer, no secret in any
line it writes, and every line in the chosen format, a database outage's included."""

from __future__ import annotations

import http.client
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.openai_upstream import FakeUpstream, start_fake_upstream
from tests.integration.conftest import upstream_config
from tests.integration.gateway import Gateway
from tests.integration.tenancy import MASTER, call, keys_config
from tests.services.postgres import PostgresServer, wait_until

CHAT = "/v1/chat/completions"
# Words the client sends: they must never reach the log, nor the echo of them.
PROMPT = "zanzibar-periwinkle-canary"
PROVIDER_CANARY = "sk-canary-provider-7f3a9c2e1b"


def chat(model: str = "gpt-4o-mini", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": PROMPT}], **extra}


def lines(gateway: Gateway) -> list[str]:
    return [line for line in gateway.logs().splitlines() if line.strip()]


def access_lines(gateway: Gateway) -> list[dict[str, Any]]:
    found = []
    for line in lines(gateway):
        entry = json.loads(line)
        if entry.get("logger") == "relay.access":
            found.append(entry)
    return found


def access_of(gateway: Gateway, rid: str) -> dict[str, Any]:
    """The access line of request ``rid`` (written after the last byte: waited for)."""
    assert wait_until(lambda: any(e["request_id"] == rid for e in access_lines(gateway)))
    return next(e for e in access_lines(gateway) if e["request_id"] == rid)


@pytest.fixture(scope="module")
def keyed(
    fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("logs")
    gateway = Gateway(keys_config(fake_upstream, f"sqlite:///{tmp / 'relay.db'}"), tmp)
    yield gateway
    gateway.stop()


def send(gateway: Gateway, body: Any, key: str | None) -> int:
    """One chat request, its answer read whole and not decoded (a stream's too)."""
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=20)
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["authorization"] = f"Bearer {key}"
    conn.request("POST", CHAT, body=json.dumps(body).encode(), headers=headers)
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.status


def tenant_key(gateway: Gateway, name: str) -> str:
    status, tenant = call(gateway, "POST", "/admin/tenants", {"name": name})
    assert status == 201, tenant
    return str(tenant["api_key"])


def test_one_json_access_line_per_request_at_the_default_level(keyed: Gateway) -> None:
    key = tenant_key(keyed, "acme")
    body = chat(metadata={"use_case": "support"})
    status, answer = call(keyed, "POST", CHAT, body, key=key, rid="rid-access-1")
    assert status == 200, answer
    entry = access_of(keyed, "rid-access-1")
    usage = answer["usage"]
    assert entry["level"] == "info"
    assert entry["msg"] == "request"
    assert entry["method"] == "POST"
    assert entry["endpoint"] == CHAT
    assert entry["tenant"] == "acme"
    assert key.startswith(entry["key_prefix"]) and len(entry["key_prefix"]) < len(key)
    assert entry["use_case"] == "support"
    assert (entry["model"], entry["provider"], entry["upstream_model"]) == (
        "gpt-4o-mini",
        "fake",
        "gpt-4o-mini",
    )
    assert entry["status"] == 200 and entry["stream"] is False
    assert entry["prompt_tokens"] == usage["prompt_tokens"]
    assert entry["completion_tokens"] == usage["completion_tokens"]
    # Prices of the test config: 1 and 2 USD per million tokens.
    expected = (usage["prompt_tokens"] * 1.0 + usage["completion_tokens"] * 2.0) / 1e6
    assert entry["cost_usd"] == pytest.approx(expected)
    assert entry["attempts"] == 1
    assert entry["latency_ms"] >= entry["upstream_ms"] > 0
    assert entry["overhead_ms"] == pytest.approx(
        entry["latency_ms"] - entry["upstream_ms"], abs=0.01
    )
    assert entry["error"] is None and entry["error_class"] is None
    assert entry["cache"] is None
    assert sum(1 for e in access_lines(keyed) if e["request_id"] == "rid-access-1") == 1


def test_failures_name_their_class(keyed: Gateway) -> None:
    key = tenant_key(keyed, "failing")
    status, _ = call(keyed, "POST", CHAT, chat("error-500"), key=key, rid="rid-access-500")
    assert status == 500  # the provider's 500, passed on
    entry = access_of(keyed, "rid-access-500")
    assert entry["status"] == 500
    assert entry["error_class"] == "server_error"
    assert entry["attempts"] >= 1
    status, _ = call(keyed, "POST", CHAT, chat(), key="gw-sk-not-a-key", rid="rid-access-401")
    assert status == 401
    entry = access_of(keyed, "rid-access-401")
    assert (entry["status"], entry["error_class"], entry["attempts"]) == (401, "rejected", 0)
    assert entry["error"]


def test_text_format_and_switching_the_access_line_off(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    config = upstream_config(fake_upstream, log_format="text")
    (tmp_path / "text").mkdir()
    gateway = Gateway(config, tmp_path / "text")
    try:
        status, _ = call(gateway, "POST", CHAT, chat(), key=None, rid="rid-text-1")
        assert status == 200
        assert wait_until(lambda: "rid-text-1" in gateway.logs()), gateway.logs()
        line = next(x for x in lines(gateway) if "rid-text-1" in x)
        assert re.match(
            r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO relay\.access request ", line
        )
        fields = dict(part.split("=", 1) for part in line.split(" ")[4:])
        assert fields["request_id"] == "rid-text-1"
        assert fields["endpoint"] == CHAT
        assert (fields["model"], fields["provider"], fields["status"]) == (
            "gpt-4o-mini",
            "fake",
            "200",
        )
        assert int(fields["prompt_tokens"]) > 0 and float(fields["latency_ms"]) > 0
        # Every other line is text too: granian's and the gateway's start-up lines.
        assert all(not x.startswith("{") for x in lines(gateway)), gateway.logs()
        assert any(" INFO _granian " in x for x in lines(gateway))
    finally:
        assert gateway.stop() == 0

    config = upstream_config(fake_upstream, access_log=False)
    (tmp_path / "off").mkdir()
    gateway = Gateway(config, tmp_path / "off")
    try:
        status, _ = call(gateway, "POST", CHAT, chat(), key=None, rid="rid-off-1")
        assert status == 200
    finally:
        assert gateway.stop() == 0
    assert "rid-off-1" not in gateway.logs()
    assert all(json.loads(x)["logger"] != "relay.access" for x in lines(gateway))


def test_no_secret_and_no_text_in_any_line(tmp_path: Path) -> None:
    """A canary provider key and a canary gateway key, used on every kind of request the
    gateway logs at debug level (successes, streams, failures, refusals, admin calls,
    pass-through), spans written to stdout; no line of stdout or stderr holds either, nor
    the admin key, nor the prompt or its echo."""
    with start_fake_upstream(PROVIDER_CANARY) as up:
        config = keys_config(up, f"sqlite:///{tmp_path / 'relay.db'}")
        for provider in config["providers"].values():
            if provider.get("api_key") == "sk-test-upstream":
                provider["api_key"] = PROVIDER_CANARY
        config["server"]["log_level"] = "debug"
        # Spans on stdout too: their attributes must hold no secret either.
        gateway = Gateway(config, tmp_path, env={"OTEL_TRACES_EXPORTER": "console"})
        try:
            gateway_key = tenant_key(gateway, "canary")
            for model in ("gpt-4o-mini", "error-401", "error-500", "wrong-key", "nowhere"):
                send(gateway, chat(model), gateway_key)
                send(gateway, chat(model, stream=True), gateway_key)
            assert send(gateway, chat(), gateway_key + "x") == 401  # a refused key
            assert send(gateway, chat(), None) == 401
            call(gateway, "GET", "/admin/tenants", key=gateway_key)  # not an admin
            call(gateway, "GET", "/admin/requests?limit=5")
            # A pass-through route, with the prompt in its body.
            status, _ = call(
                gateway,
                "POST",
                "/v1/moderations",
                {"model": "gpt-4o-mini", "input": PROMPT},
                key=gateway_key,
            )
            assert status < 500
        finally:
            assert gateway.stop() == 0
        logs = gateway.logs()
    assert access_lines(gateway), logs
    assert '"kind": "SpanKind.SERVER"' in logs  # the spans were written
    for secret in (PROVIDER_CANARY, gateway_key, MASTER, PROMPT):
        assert secret not in logs, secret
    # The key's visible prefix is there, the rest of it never.
    assert any(
        e["key_prefix"] and gateway_key.startswith(e["key_prefix"]) for e in access_lines(gateway)
    )


def test_a_database_outage_logs_json_only(fake_upstream: FakeUpstream, tmp_path: Path) -> None:
    """PostgreSQL goes away under traffic: asyncpg's and the ledger writer's failures are
    JSON lines with the exception in a field, never tracebacks between the lines."""
    server = PostgresServer()
    try:
        url = server.create_database("relay")
        gateway = Gateway(keys_config(fake_upstream, url), tmp_path)
        key = tenant_key(gateway, "outage")
        server.stop()
        for i in range(20):
            status, _ = call(gateway, "POST", CHAT, chat(), key=key, rid=f"rid-outage-{i}")
            assert status == 200
            time.sleep(0.05)
        # The admin API needs the database: its failure is logged too.
        call(gateway, "GET", "/admin/tenants")
        assert wait_until(lambda: "ledger write failed" in gateway.logs(), timeout=15), (
            gateway.logs()
        )
        server.start()
        assert wait_until(lambda: "ledger writes work again" in gateway.logs(), timeout=15), (
            gateway.logs()
        )
        assert gateway.stop() == 0
    finally:
        server.destroy()
    entries = []
    for line in lines(gateway):
        try:
            entries.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON line: {line!r}\n{gateway.logs()}") from None
    failed = [e for e in entries if "ledger write failed" in e["msg"]]
    assert failed and all(e["level"] == "warning" for e in failed)
    # A traceback, when there is one, is a field of its line.
    assert all("Traceback" not in e["msg"] for e in entries)
    assert len([e for e in entries if e["logger"] == "relay.access"]) >= 20
