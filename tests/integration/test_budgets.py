"""Budgets through a real ``relay serve``: tenants' and keys' ``budget_usd`` from the admin
API, parallel requests that cannot overrun a budget by more than one reservation, a spent
budget's 429 ``insufficient_quota``, one alert per period across workers, and the spend kept
across a restart (rebuilt from the ledger, SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.fakes.openai_upstream import FakeUpstream
from tests.integration.gateway import Gateway
from tests.integration.tenancy import call, keys_config, read_rows
from tests.integration.test_limits import post

# $0.001 a token: "hi" costs 4 prompt + 2 completion tokens at the fake provider ($0.006),
# and reserves its prompt as counted here plus max_tokens 10 (about $0.018).
PRICE = {"input": 1000.0, "output": 1000.0}
BODY = {"model": "priced", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10}
RESERVED_AT_MOST = 0.025
REAL = 0.006


def budget_config(up: FakeUpstream, database_url: str) -> dict[str, Any]:
    config = keys_config(up, database_url)
    config["models"]["priced"] = {"provider": "fake", "model": "gpt-4o-mini", "pricing": PRICE}
    return config


def created(gateway: Gateway, path: str, body: dict[str, Any]) -> dict[str, Any]:
    status, made = call(gateway, "POST", path, body)
    assert status == 201, made
    return dict(made)


def spent(database_url: str, where: str) -> float:
    return float(read_rows(database_url, f"SELECT SUM(cost_usd) FROM requests WHERE {where}")[0][0])


def test_admin_api_takes_and_checks_the_period_and_the_alert_ratio(
    tmp_path: Path, fake_upstream: FakeUpstream
) -> None:
    db = f"sqlite:///{tmp_path / 'relay.db'}"
    gateway = Gateway(budget_config(fake_upstream, db), tmp_path)
    try:
        tenant = created(gateway, "/admin/tenants", {"name": "t", "budget_usd": 5})
        assert (tenant["budget_period"], tenant["budget_alert_ratio"]) == ("month", 0.8)
        assert (tenant["key"]["budget_period"], tenant["key"]["budget_alert_ratio"]) == (
            "month",
            0.8,
        )
        for body, field, said in (
            ({"name": "u", "budget_period": "week"}, "budget_period", "expected one of day"),
            ({"name": "u", "budget_alert_ratio": 0}, "budget_alert_ratio", "> 0.0"),
            ({"name": "u", "budget_alert_ratio": 1.5}, "budget_alert_ratio", "<= 1.0"),
        ):
            status, error = call(gateway, "POST", "/admin/tenants", body)
            assert (status, error["error"]["param"]) == (400, field), error
            assert error["error"]["message"].startswith(f"{field}: ") and said in str(error)
        path = f"/admin/tenants/{tenant['id']}"
        status, patched = call(
            gateway, "PATCH", path, {"budget_period": "day", "budget_alert_ratio": 0.5}
        )
        assert status == 200 and (patched["budget_period"], patched["budget_alert_ratio"]) == (
            "day",
            0.5,
        )
        key = created(
            gateway,
            "/admin/keys",
            {"tenant_id": tenant["id"], "budget_usd": 1, "budget_period": "total"},
        )
        status, listed = call(gateway, "GET", f"/admin/keys/{key['id']}")
        assert status == 200 and listed["budget_period"] == "total"
        status, doc = call(gateway, "GET", "/admin/openapi.json")
        schema = doc["components"]["schemas"]["TenantCreate"]["properties"]
        assert schema["budget_period"]["enum"] == ["day", "month", "total"]
    finally:
        gateway.stop()


def test_parallel_requests_cannot_overrun_a_tenant_budget(
    tmp_path: Path, fake_upstream: FakeUpstream
) -> None:
    """Waves of ten requests at once on two workers until the budget refuses them all: the
    ledger's spend ends within one reservation of the budget, never past it by more, the
    refusals are ``insufficient_quota``, and the alert at 50% is logged once."""
    db = f"sqlite:///{tmp_path / 'relay.db'}"
    gateway = Gateway(budget_config(fake_upstream, db), tmp_path, workers=2)
    budget = 0.05
    try:
        tenant = created(
            gateway,
            "/admin/tenants",
            {"name": "t", "budget_usd": budget, "budget_alert_ratio": 0.5},
        )
        refusals: list[tuple[int, dict[str, str], bytes]] = []
        with ThreadPoolExecutor(10) as pool:
            for _ in range(15):
                wave = list(
                    pool.map(
                        lambda _: post(gateway, "/v1/chat/completions", BODY, tenant["api_key"]),
                        range(10),
                    )
                )
                refusals += [r for r in wave if r[0] == 429]
                assert all(r[0] in (200, 429) for r in wave), wave
                if all(r[0] == 429 for r in wave):
                    break
            else:
                raise AssertionError("the budget never refused a whole wave")
        gateway.stop()
        total = spent(db, "tenant = 't' AND status = 200")
        assert budget - RESERVED_AT_MOST - REAL < total <= budget + RESERVED_AT_MOST, total
        _, headers, data = refusals[-1]
        error = json.loads(data)["error"]
        assert (error["type"], error["code"]) == ("insufficient_quota", "insufficient_quota")
        assert "this tenant's budget ($0.05) is spent; it renews in" in error["message"]
        assert int(headers["retry-after"]) >= 1
        assert gateway.logs().count("budget alert: tenant default/t") == 1, gateway.logs()
    finally:
        gateway.stop()


def test_a_spent_budget_stays_spent_across_a_restart(
    tmp_path: Path, fake_upstream: FakeUpstream, database_url: str
) -> None:
    """A key's daily budget of $0.02 holds one request (its next reservation does not fit);
    after a restart, rebuilt from the ledger, it is still spent; its tenant's is not."""
    config = budget_config(fake_upstream, database_url)
    gateway = Gateway(config, tmp_path)
    try:
        tenant = created(gateway, "/admin/tenants", {"name": "t", "budget_usd": 100})
        key = created(
            gateway,
            "/admin/keys",
            {"tenant_id": tenant["id"], "budget_usd": 0.02, "budget_period": "day"},
        )
        assert post(gateway, "/v1/chat/completions", BODY, key["api_key"])[0] == 200
        status, _, data = post(gateway, "/v1/chat/completions", BODY, key["api_key"])
        assert status == 429 and "this key's budget ($0.02)" in data.decode()
    finally:
        gateway.stop()
    assert spent(database_url, f"key_id = '{key['id']}'") == REAL

    gateway = Gateway(config, tmp_path)
    try:
        assert "budgets: spend rebuilt from the ledger for 2 budget cell(s)" in gateway.logs()
        status, _, data = post(gateway, "/v1/chat/completions", BODY, key["api_key"])
        assert status == 429, data
        assert json.loads(data)["error"]["code"] == "insufficient_quota"
        assert post(gateway, "/v1/chat/completions", BODY, tenant["api_key"])[0] == 200
    finally:
        gateway.stop()
