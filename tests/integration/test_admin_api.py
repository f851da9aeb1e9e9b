"""The admin API end to end on SQLite and PostgreSQL, with keys used through the openai SDK."""

from __future__ import annotations

import base64
import http.client
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from relay.auth.tokens import new_key
from tests.fakes.openai_upstream import FakeUpstream
from tests.integration.gateway import Gateway
from tests.integration.tenancy import MASTER, call, keys_config, ledger_entry

MESSAGES: Any = [{"role": "user", "content": "hello world"}]


@pytest.fixture
def gw(fake_upstream: FakeUpstream, database_url: str, tmp_path: Path) -> Iterator[Gateway]:
    gateway = Gateway(keys_config(fake_upstream, database_url), tmp_path)
    yield gateway
    gateway.stop()


def sdk(gateway: Gateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key=key, max_retries=0, timeout=20)


def test_tenant_key_works_with_the_sdk_until_revoked(gw: Gateway) -> None:
    status, tenant = call(
        gw, "POST", "/admin/tenants",
        {"name": "test-service", "rate_limit_rpm": 100, "allowed_models": ["gpt-4o-mini"]},
    )  # fmt: skip
    assert status == 201, tenant
    key = tenant["api_key"]
    assert key.startswith("gw-sk-") and len(key) == 49
    assert tenant["rate_limit_rpm"] == 100 and tenant["key"]["prefix"] == key[:14]

    client = sdk(gw, key)
    reply = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES, metadata={"use_case": "tests"}
    )
    assert reply.parse().choices[0].message.content
    entry = ledger_entry(gw, reply.headers["x-request-id"])
    assert (entry["tenant"], entry["key_prefix"], entry["use_case"]) == (
        "test-service", key[:14], "tests",
    )  # fmt: skip

    with pytest.raises(openai.PermissionDeniedError) as denied:
        client.chat.completions.create(model="no-usage", messages=MESSAGES)
    assert denied.value.code == "model_not_allowed"
    for bad in ("gw-sk-" + "x" * 43, "not-even-a-key"):
        with pytest.raises(openai.AuthenticationError) as refused:
            sdk(gw, bad).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert refused.value.code == "invalid_api_key"

    # The key is listed by prefix only; revoking it stops it at once on this worker.
    status, keys = call(gw, "GET", f"/admin/keys?tenant_id={tenant['id']}")
    assert status == 200 and [k["prefix"] for k in keys["data"]] == [key[:14]]
    assert "api_key" not in keys["data"][0]
    status, revoked = call(gw, "DELETE", f"/admin/keys/{tenant['key']['id']}")
    assert status == 200 and revoked["revoked_at"]
    with pytest.raises(openai.AuthenticationError, match="revoked"):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    # A second key for the tenant, with an expiry in the past, is refused as expired.
    status, expired = call(
        gw, "POST", "/admin/keys",
        {"tenant_id": tenant["id"], "expires_at": "2020-01-01T00:00:00Z"},
    )  # fmt: skip
    assert status == 201
    with pytest.raises(openai.AuthenticationError, match="expired"):
        sdk(gw, expired["api_key"]).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    status, audit = call(gw, "GET", "/admin/audit")
    actions = [e["action"] for e in audit["data"]]
    assert actions == ["key.create", "key.revoke", "key.create", "tenant.create"]
    assert {e["actor"] for e in audit["data"]} == {"master"}
    assert all(key not in str(e) for e in audit["data"])


def test_bad_admin_input_is_a_400_naming_the_field(gw: Gateway) -> None:
    cases = [
        ({"name": "svc", "rate_limit_rpm": "many"}, "rate_limit_rpm"),
        ({"name": "svc", "rate_limit_rpm": -1}, "rate_limit_rpm"),
        ({"name": "has space"}, "name"),
        ({"rate_limit_rpm": 1}, "name"),
        ({"name": "svc", "budget": 5}, "budget"),
        ({"name": "svc", "allowed_models": "gpt-4o"}, "allowed_models"),
    ]
    for body, field in cases:
        status, error = call(gw, "POST", "/admin/tenants", body)
        assert status == 400, (body, error)
        assert error["error"]["param"] == field, error
        assert error["error"]["message"].startswith(field + ":"), error
    status, error = call(gw, "POST", "/admin/tenants", raw=b"{nope")
    assert status == 400 and error["error"]["type"] == "invalid_request_error"
    status, error = call(gw, "GET", "/admin/usage?group_by=planet")
    assert status == 400 and error["error"]["param"] == "group_by"
    status, error = call(gw, "GET", "/admin/requests?limit=0")
    assert status == 400 and error["error"]["param"] == "limit"
    status, _ = call(gw, "POST", "/admin/tenants", {"name": "svc"})
    status, error = call(gw, "POST", "/admin/tenants", {"name": "svc"})
    assert status == 409 and error["error"]["param"] == "name"


def test_no_admin_route_answers_without_a_valid_key(gw: Gateway) -> None:
    status, tenant = call(gw, "POST", "/admin/tenants", {"name": "svc"})
    assert status == 201
    paths = [
        ("GET", "/admin/tenants"), ("POST", "/admin/tenants"), ("GET", "/admin/keys"),
        ("GET", "/admin/usage"), ("GET", "/admin/requests"), ("GET", "/admin/audit"),
        ("GET", "/admin/openapi.json"), ("DELETE", f"/admin/tenants/{tenant['id']}"),
        ("GET", "/admin/no-such-route"),
    ]  # fmt: skip
    for method, path in paths:
        for key in (None, "wrong-master-key", MASTER[:-1]):
            status, error = call(gw, method, path, {"name": "x"}, key=key)
            assert status == 401, (method, path, key, error)
            assert error["error"]["type"] == "authentication_error"
    # A tenant's (service) key is not an admin credential.
    status, error = call(gw, "GET", "/admin/tenants", key=tenant["api_key"])
    assert status == 403 and error["error"]["type"] == "permission_denied"
    status, doc = call(gw, "GET", "/admin/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")
    schema = doc["components"]["schemas"]["TenantCreate"]
    assert schema["required"] == ["name"] and "rate_limit_rpm" in schema["properties"]
    assert "/admin/tenants/{id}" in doc["paths"] and "patch" in doc["paths"]["/admin/tenants/{id}"]


def test_roles_keep_organisations_apart(gw: Gateway) -> None:
    users = {}
    for org in ("acme", "globex"):
        status, user = call(
            gw, "POST", "/admin/users", {"name": f"{org}-lead", "organization": org}
        )
        assert status == 201 and user["role"] == "user"
        users[org] = user["api_key"]
    status, admin = call(gw, "POST", "/admin/users", {"name": "root", "role": "admin"})
    assert status == 201

    acme, globex = users["acme"], users["globex"]
    status, t_acme = call(gw, "POST", "/admin/tenants", {"name": "search"}, key=acme)
    assert status == 201 and t_acme["organization"] == "acme"
    status, t_globex = call(gw, "POST", "/admin/tenants", {"name": "search"}, key=globex)
    assert status == 201 and t_globex["organization"] == "globex"
    # A user cannot create in, or see, or touch, another organisation's objects.
    status, error = call(
        gw, "POST", "/admin/tenants", {"name": "x", "organization": "acme"}, key=globex
    )
    assert status == 403 and error["error"]["param"] == "organization"
    for method, path in (
        ("GET", f"/admin/tenants/{t_acme['id']}"),
        ("PATCH", f"/admin/tenants/{t_acme['id']}"),
        ("DELETE", f"/admin/tenants/{t_acme['id']}"),
        ("DELETE", f"/admin/keys/{t_acme['key']['id']}"),
        ("GET", f"/admin/keys/{t_acme['key']['id']}"),
    ):
        status, error = call(gw, method, path, {"budget_usd": 1}, key=globex)
        assert status == 404, (method, path, error)
        assert "acme" not in error["error"]["message"]
    status, error = call(gw, "POST", "/admin/keys", {"tenant_id": t_acme["id"]}, key=globex)
    assert status == 404
    status, error = call(gw, "POST", "/admin/users", {"name": "sneaky"}, key=globex)
    assert status == 403

    # Each organisation's traffic and listings stay with it.
    for tenant in (t_acme, t_globex):
        client = sdk(gw, tenant["api_key"])
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status, page = call(gw, "GET", "/admin/requests", key=globex)
        if page["data"]:
            break
        time.sleep(0.05)
    assert {r["organization"] for r in page["data"]} == {"globex"}
    status, tenants = call(gw, "GET", "/admin/tenants", key=globex)
    assert [t["id"] for t in tenants["data"]] == [t_globex["id"]]
    status, keys = call(gw, "GET", "/admin/keys", key=globex)
    assert {k["organization"] for k in keys["data"]} == {"globex"}
    status, usage = call(gw, "GET", "/admin/usage?group_by=organization", key=globex)
    assert [r["organization"] for r in usage["data"]] == ["globex"]
    status, audit = call(gw, "GET", "/admin/audit", key=globex)
    assert {e["organization"] for e in audit["data"]} == {"globex"}
    # The admin user sees both; the master key too.
    status, tenants = call(gw, "GET", "/admin/tenants", key=admin["api_key"])
    assert {t["organization"] for t in tenants["data"]} == {"acme", "globex"}
    status, usage = call(gw, "GET", "/admin/usage?group_by=organization", key=admin["api_key"])
    assert status == 200
    # A PATCH by the owner changes the tenant; deleting it revokes its key.
    status, patched = call(
        gw, "PATCH", f"/admin/tenants/{t_acme['id']}", {"budget_usd": 5}, key=acme
    )
    assert status == 200 and patched["budget_usd"] == 5
    status, _ = call(gw, "DELETE", f"/admin/tenants/{t_acme['id']}", key=acme)
    assert status == 200
    with pytest.raises(openai.AuthenticationError):
        sdk(gw, t_acme["api_key"]).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)


def test_a_missing_key_is_a_401_before_the_body_is_judged(gw: Gateway) -> None:
    """An unauthenticated caller learns nothing about its body: 401, not a 400 for bad JSON."""
    made_up = {"authorization": f"Bearer {new_key()}"}  # well formed: looked up, then refused
    for headers in ({}, {"authorization": "Bearer gw-sk-not-a-key"}, made_up):
        conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
        conn.request(
            "POST",
            "/v1/chat/completions",
            body=b"{not json" + b" " * 200_000,
            headers={"content-type": "application/json", **headers},
        )
        response = conn.getresponse()
        assert response.status == 401
        assert json.loads(response.read())["error"]["type"] == "authentication_error"
        conn.close()


def test_a_refused_request_is_recorded_with_no_tenant(gw: Gateway) -> None:
    """A 401 belongs to nobody: the ledger has no tenant for it, not tenant ``default``."""
    for n, key in enumerate((None, "gw-sk-not-a-key", new_key())):
        conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
        headers = {"content-type": "application/json", "x-request-id": f"refused-{n}"}
        if key:
            headers["authorization"] = f"Bearer {key}"
        conn.request("POST", "/v1/chat/completions", body=b"{}", headers=headers)
        assert conn.getresponse().status == 401
        conn.close()
        entry = ledger_entry(gw, f"refused-{n}")
        assert (entry["status"], entry["tenant"], entry["key_prefix"]) == (401, "-", None)


def _cursor(parts: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode()


def test_values_the_database_would_refuse_are_a_400_naming_them(gw: Gateway) -> None:
    """Numbers beyond their column, NUL in text, crafted cursors: a 400 naming the field or
    parameter on both backends, never a 500 (OverflowError, TypeError, a database error)."""
    status, tenant = call(gw, "POST", "/admin/tenants", {"name": "svc"})
    assert status == 201
    bodies: list[tuple[str, str, Any, str]] = [
        ("POST", "/admin/tenants", {"name": "a", "rate_limit_rpm": 18446744073709551616}, "rate_limit_rpm"),
        ("POST", "/admin/tenants", {"name": "a", "rate_limit_rpm": 2**31}, "rate_limit_rpm"),
        ("POST", "/admin/tenants", {"name": "a", "tokens_per_minute": 2**63}, "tokens_per_minute"),
        ("PATCH", f"/admin/tenants/{tenant['id']}", {"rate_limit_rpm": 2**40}, "rate_limit_rpm"),
        ("PATCH", f"/admin/tenants/{tenant['id']}", {"tokens_per_minute": 2**64}, "tokens_per_minute"),
        ("POST", "/admin/keys", {"tenant_id": tenant["id"], "rate_limit_rpm": 2**31}, "rate_limit_rpm"),
        ("POST", "/admin/keys", {"tenant_id": tenant["id"], "tokens_per_minute": 2**63}, "tokens_per_minute"),
        ("POST", "/admin/keys", {"tenant_id": tenant["id"], "name": "a\x00b"}, "name"),
        ("POST", "/admin/keys", {"tenant_id": "ten_\x00"}, "tenant_id"),
        ("POST", "/admin/keys", {"user_id": "usr_\x00"}, "user_id"),
    ]  # fmt: skip
    for method, path, body, field in bodies:
        status, error = call(gw, method, path, body)
        assert (status, error["error"]["param"]) == (400, field), (body, error)
        assert error["error"]["message"].startswith(field + ":"), error
    status, error = call(gw, "POST", "/admin/tenants", raw=b'{"name": "a", "budget_usd": 1e400}')
    assert (status, error["error"]["param"]) == (400, "budget_usd"), error
    status, error = call(gw, "POST", "/admin/keys", {"tenant_id": tenant["id"], "name": "a\x00"})
    assert error["error"]["message"] == "name: NUL characters are not allowed"

    queries = [
        ("/admin/requests?status=4294967296", "status"),
        ("/admin/requests?status=99999999999999999999", "status"),
        ("/admin/requests?since=nan", "since"),
        ("/admin/requests?until=1e999", "until"),
        ("/admin/requests?tenant=a%00b", "tenant"),
        ("/admin/usage?model=a%00b", "model"),
        ("/admin/keys?tenant_id=ten_%00", "tenant_id"),
    ]
    for path, param in queries:
        status, error = call(gw, "GET", path)
        assert (status, error["error"]["param"]) == (400, param), (path, error)
    for path in ("/admin/tenants/ten_%00", "/admin/keys/key_%00", "/admin/requests/req_%00"):
        status, error = call(gw, "GET", path)
        assert status == 404, (path, error)


def test_a_crafted_cursor_is_a_400_naming_it(gw: Gateway) -> None:
    """Any JSON a client can encode as a cursor: a 400 on ``cursor``, never a TypeError."""
    cursors = [
        ("/admin/requests?cursor=" + _cursor([{"a": 1}, "x"]), "cursor"),
        ("/admin/requests?cursor=" + _cursor([1, None]), "cursor"),
        ("/admin/requests?cursor=" + _cursor(["1", "x", 3]), "cursor"),
        ("/admin/audit?cursor=" + _cursor([None]), "cursor"),
        ("/admin/audit?cursor=" + _cursor([2**70]), "cursor"),
        ("/admin/audit?cursor=" + _cursor([1.5]), "cursor"),
        ("/admin/audit?cursor=" + _cursor({"id": 1}), "cursor"),
    ]
    for path, param in cursors:
        status, error = call(gw, "GET", path)
        assert (status, error["error"]["param"]) == (400, param), (path, error)
    # The real cursors still page.
    for n in range(3):
        call(gw, "POST", "/admin/tenants", {"name": f"page-{n}"})
    status, page = call(gw, "GET", "/admin/audit?limit=2")
    assert status == 200 and page["has_more"]
    status, rest = call(gw, "GET", f"/admin/audit?limit=2&cursor={page['next_cursor']}")
    assert status == 200 and rest["data"][0]["id"] < page["data"][-1]["id"]
