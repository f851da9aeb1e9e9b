"""``auth.mode`` not set: a gateway that issues or holds keys checks them (real ``relay serve``)."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

import openai
import pytest

from relay.admin.access import MASTER as MASTER_ACTOR
from relay.admin.models import TenantCreate
from relay.admin.store import AdminStore
from relay.auth.tokens import new_key
from relay.ledger.connect import open_database
from tests.fakes.openai_upstream import FakeUpstream
from tests.integration.gateway import Gateway
from tests.integration.tenancy import MASTER, call, keys_config

MESSAGES: Any = [{"role": "user", "content": "hello"}]


def unset_config(up: FakeUpstream, database_url: str, **auth: Any) -> dict[str, Any]:
    """The keys-test config with no ``auth.mode`` (and no admin key unless given)."""
    config = keys_config(up, database_url)
    config["auth"] = auth
    return config


def chat(gateway: Gateway, key: str | None, model: str = "gpt-4o-mini") -> int:
    client = openai.OpenAI(
        base_url=gateway.base_url, api_key=key or "unused", max_retries=0, timeout=20
    )
    headers = {} if key else {"authorization": ""}
    try:
        client.chat.completions.create(model=model, messages=MESSAGES, extra_headers=headers)
    except openai.APIStatusError as exc:
        return exc.status_code
    return 200


def auth_lines(gateway: Gateway) -> list[str]:
    lines = [json.loads(line) for line in gateway.logs().splitlines() if line.startswith("{")]
    return [line["msg"] for line in lines if "auth" in line["msg"]]


def seed_tenant(database_url: str) -> str:
    """A tenant made through the store (as ``relay tenants create`` does); its key."""

    async def main() -> str:
        db = open_database(database_url)
        await db.connect()
        await db.migrate()
        made = await AdminStore(db).create_tenant(
            MASTER_ACTOR, TenantCreate(name="seeded", allowed_models=["gpt-4o-mini"])
        )
        await db.close()
        return made.api_key

    return asyncio.run(main())


def test_an_admin_key_turns_key_checks_on_by_default(
    fake_upstream: FakeUpstream, database_url: str, tmp_path: Path
) -> None:
    gateway = Gateway(
        unset_config(fake_upstream, database_url), tmp_path, env={"RELAY_ADMIN_KEY": MASTER}
    )
    try:
        (line,) = [m for m in auth_lines(gateway) if m.startswith("auth: ")]
        assert line.startswith("auth: keys (callers present gateway keys")
        assert line.endswith("; auth.mode is not set and an admin key is set")
        status, tenant = call(
            gateway, "POST", "/admin/tenants", {"name": "svc", "allowed_models": ["gpt-4o-mini"]}
        )
        assert status == 201
        key = tenant["api_key"]
        assert chat(gateway, key) == 200
        assert chat(gateway, key, model="no-usage") == 403  # outside allowed_models
        assert chat(gateway, "gw-sk-totallybogus") == 401
        assert chat(gateway, new_key()) == 401  # well formed, made up
        assert chat(gateway, None) == 401
        status, _ = call(gateway, "DELETE", f"/admin/keys/{tenant['key']['id']}")
        assert status == 200
        assert chat(gateway, key) == 401
    finally:
        gateway.stop()


def test_keys_in_the_database_turn_key_checks_on_by_default(
    fake_upstream: FakeUpstream, database_url: str, tmp_path: Path
) -> None:
    key = seed_tenant(database_url)
    gateway = Gateway(unset_config(fake_upstream, database_url), tmp_path)
    try:
        assert "auth.mode is not set and the database holds 1 active gateway key" in "\n".join(
            auth_lines(gateway)
        )
        assert chat(gateway, key) == 200
        assert chat(gateway, new_key()) == 401
        assert chat(gateway, key, model="no-usage") == 403
    finally:
        gateway.stop()


@pytest.mark.parametrize("mode", ["none", "passthrough"])
def test_an_explicit_open_mode_with_keys_warns_at_every_start(
    fake_upstream: FakeUpstream, database_url: str, tmp_path: Path, mode: str
) -> None:
    seed_tenant(database_url)
    for _ in range(2):
        gateway = Gateway(unset_config(fake_upstream, database_url, mode=mode), tmp_path)
        try:
            assert chat(gateway, new_key()) == 200  # as configured: nobody is checked
            logs = gateway.logs()
        finally:
            gateway.stop()
        warned = [
            json.loads(line)
            for line in logs.splitlines()
            if "they are not checked and any caller is accepted" in line
        ]
        assert len(warned) == 1 and warned[0]["level"] == "warning", logs
        assert (
            f"auth.mode is {mode}, but the database holds 1 active gateway key"
            in (warned[0]["msg"])
        )


def test_no_admin_key_and_no_keys_stays_open_as_before(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'relay.db'}"
    gateway = Gateway(unset_config(fake_upstream, url), tmp_path)
    try:
        assert chat(gateway, None) == 200
        assert any(m.startswith("auth: passthrough") for m in auth_lines(gateway))
    finally:
        gateway.stop()


def test_sighup_decides_the_mode_again(fake_upstream: FakeUpstream, tmp_path: Path) -> None:
    """Keys created while a gateway runs open to all: the next SIGHUP (a reload) has its
    workers check them (and says so)."""
    url = f"sqlite:///{tmp_path / 'relay.db'}"
    gateway = Gateway(unset_config(fake_upstream, url), tmp_path)
    try:
        assert chat(gateway, new_key()) == 200
        key = seed_tenant(url)
        gateway.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while "serves config version" not in gateway.logs():
            assert time.monotonic() < deadline, gateway.logs()
            time.sleep(0.05)
        assert "config reload (SIGHUP): version" in gateway.logs()
        assert any("auth.mode (not set) is now keys" in m for m in auth_lines(gateway)), auth_lines(
            gateway
        )
        assert chat(gateway, new_key()) == 401
        assert chat(gateway, key) == 200
    finally:
        gateway.stop()
