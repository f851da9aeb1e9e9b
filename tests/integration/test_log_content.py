"""Content logging (``kind: log_content``) through the real server on SQLite and PostgreSQL:
prompt and completion kept in ``request_content`` with the request's ledger row, shown by
``GET /admin/requests/{id}`` to admins only, never written to the access log."""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import openai
import pytest

from tests.fakes.openai_upstream import FakeUpstream
from tests.integration.gateway import Gateway
from tests.integration.tenancy import call, keys_config, ledger_entry, read_rows

pytestmark = pytest.mark.integration

SECRET = "the launch code is tangerine-42"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def setup(
    request: pytest.FixtureRequest,
    fake_upstream: FakeUpstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Gateway, str, str, str]]:
    tmp = tmp_path_factory.mktemp("content")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'relay.db'}"
    else:
        url = request.getfixturevalue("postgres_server").create_database(f"content_{id(tmp)}")
    config = keys_config(fake_upstream, url)
    config["policies"] = {
        "audit": {"kind": "log_content", "store": "full", "content_retention_days": 7},
        "quiet": {"kind": "log_content"},  # store: none, the default: nothing kept
    }
    config["tenant_policies"] = {"content-svc": ["audit"], "mute": ["quiet"]}
    gateway = Gateway(config, tmp)
    status, tenant = call(gateway, "POST", "/admin/tenants", {"name": "content-svc"})
    assert status == 201
    status, user = call(gateway, "POST", "/admin/users", {"name": "viewer", "role": "user"})
    assert status == 201, user
    yield gateway, tenant["api_key"], user["api_key"], url
    gateway.stop()


def client(gateway: Gateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key=key, max_retries=0, timeout=20)


def content_of(gateway: Gateway, rid: str) -> dict[str, Any]:
    """The ledger record once its content is written (the same batch as its row)."""
    entry = ledger_entry(gateway, rid)
    assert entry["content"] is not None, entry
    content: dict[str, Any] = entry["content"]
    return content


def test_json_answer_kept_in_full(setup: tuple[Gateway, str, str, str]) -> None:
    gateway, key, _, _ = setup
    raw = client(gateway, key).chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": "be terse"}, {"role": "user", "content": SECRET}],
    )
    content = content_of(gateway, raw.headers["x-request-id"])
    assert content["store"] == "full"
    assert content["prompt"] == f"be terse\n\n{SECRET}"
    assert content["completion"] == f"Echo: {SECRET}"
    expires = datetime.fromisoformat(content["expires_at"].replace("Z", "+00:00"))
    kept_days = (expires.timestamp() - time.time()) / 86400
    assert 6.9 < kept_days < 7.1


def test_stream_kept_as_it_passed(setup: tuple[Gateway, str, str, str]) -> None:
    gateway, key, _, _ = setup
    raw = client(gateway, key).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "stream me please"}], stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    content = content_of(gateway, raw.headers["x-request-id"])
    assert content["prompt"] == "stream me please"
    assert content["completion"] == text == "Echo: stream me please"


def test_only_admins_see_content(setup: tuple[Gateway, str, str, str]) -> None:
    gateway, key, user_key, _ = setup
    raw = client(gateway, key).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "admins only"}]
    )
    rid = raw.headers["x-request-id"]
    content_of(gateway, rid)
    status, record = call(gateway, "GET", f"/admin/requests/{rid}", key=user_key)
    assert status == 200 and record["request_id"] == rid
    assert record["content"] is None


def test_store_none_keeps_nothing(setup: tuple[Gateway, str, str, str]) -> None:
    gateway, _, _, url = setup
    status, tenant = call(gateway, "POST", "/admin/tenants", {"name": "mute"})
    assert status == 201
    raw = client(gateway, tenant["api_key"]).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "muted words"}]
    )
    entry = ledger_entry(gateway, raw.headers["x-request-id"])
    assert entry["content"] is None
    rows = read_rows(url, "SELECT prompt FROM request_content")
    assert rows and all("muted" not in r[0] for r in rows)


def test_never_in_the_access_log(setup: tuple[Gateway, str, str, str]) -> None:
    gateway, key, _, _ = setup
    raw = client(gateway, key).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "unlogged-marker-77"}]
    )
    content_of(gateway, raw.headers["x-request-id"])
    # Access lines are written by a background thread in batches: wait for this one.
    deadline = time.monotonic() + 5
    log = gateway.log_path.read_text()
    while raw.headers["x-request-id"] not in log and time.monotonic() < deadline:
        time.sleep(0.05)
        log = gateway.log_path.read_text()
    assert raw.headers["x-request-id"] in log  # the access line was written
    assert "unlogged-marker-77" not in log


def test_a_request_no_policy_changes_keeps_its_bytes(
    setup: tuple[Gateway, str, str, str], fake_upstream: FakeUpstream
) -> None:
    """The chain ran (its text is kept) and the provider got the client's own bytes."""
    gateway, key, _, _ = setup
    raw = b'{"messages": [{"role": "user", "content": "caf\\u00e9 bytes-kept"}],  "model": "gpt-4o-mini"}'
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=20)
    conn.request(
        "POST",
        "/v1/chat/completions",
        body=raw,
        headers={"content-type": "application/json", "authorization": f"Bearer {key}"},
    )
    response = conn.getresponse()
    response.read()
    assert response.status == 200
    rid = response.getheader("x-request-id")
    conn.close()
    sent = [r for r in fake_upstream.requests() if "bytes-kept" in r["raw"]]
    assert sent[-1]["raw"].encode("latin-1") == raw
    assert content_of(gateway, str(rid))["prompt"] == "caf\u00e9 bytes-kept"
