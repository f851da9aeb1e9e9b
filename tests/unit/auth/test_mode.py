"""The auth mode a gateway runs when ``auth.mode`` is not set, on real databases."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from relay.admin.access import MASTER
from relay.admin.models import KeyCreate, TenantCreate
from relay.admin.store import AdminStore
from relay.auth.mode import AuthModeUnknown, choose_mode, needs_database, resolve_auth, with_mode
from relay.config import Config, parse_config
from relay.config.notices import summary
from relay.ledger.connect import open_database
from tests.integration.gateway import free_port

PROVIDERS = "providers: {echo: {kind: echo}}\nmodels: {echo: {provider: echo}}\n"


def config(database_url: str, auth: str = "{}", providers: str = PROVIDERS) -> Config:
    return parse_config(f"{providers}auth: {auth}\ndatabase: {{url: '{database_url}'}}\n", "t", {})


def seed(database_url: str) -> list[str]:
    """A tenant with a live key, a revoked key, an expired key, and a deleted tenant's key;
    returns the ids of the live keys."""

    async def main() -> list[str]:
        db = open_database(database_url)
        await db.connect()
        await db.migrate()
        store = AdminStore(db)
        live = await store.create_tenant(MASTER, TenantCreate(name="live"))
        revoked = await store.create_key(MASTER, KeyCreate(tenant_id=live.id))
        await store.revoke_key(MASTER, revoked.id)
        past = datetime.now(UTC) - timedelta(days=1)
        await store.create_key(MASTER, KeyCreate(tenant_id=live.id, expires_at=past))
        gone = await store.create_tenant(MASTER, TenantCreate(name="gone"))
        await store.delete_tenant(MASTER, gone.id)
        await db.close()
        assert live.key is not None
        return [live.key.id]

    return asyncio.run(main())


def test_unset_is_keys_with_an_admin_key_without_asking_the_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/relay.db"
    choice = resolve_auth(config(url, "{admin_key: a-long-enough-admin-key}"))
    assert (choice.mode, choice.reason) == ("keys", "auth.mode is not set and an admin key is set")
    assert not (tmp_path / "relay.db").exists()


def test_unset_is_passthrough_on_an_empty_or_missing_database(database_url: str) -> None:
    choice = resolve_auth(config(database_url))
    assert choice.mode == "passthrough" and not choice.warnings
    if database_url.startswith("sqlite:///"):
        # Asking does not create the file (the workers do, with the schema).
        assert not Path(database_url.removeprefix("sqlite:///")).exists()


def test_unset_is_keys_when_the_database_holds_active_keys(database_url: str) -> None:
    assert len(seed(database_url)) == 1
    choice = resolve_auth(config(database_url))
    assert choice.mode == "keys" and not choice.warnings
    assert choice.reason == "auth.mode is not set and the database holds 1 active gateway key"
    chosen = with_mode(config(database_url), choice)
    assert chosen.auth.mode == "keys"
    assert summary(chosen, choice.reason)[1].startswith("auth: keys (callers present gateway keys")
    assert summary(chosen, choice.reason)[1].endswith("holds 1 active gateway key")


@pytest.mark.parametrize("mode", ["none", "passthrough"])
def test_an_explicit_open_mode_with_active_keys_warns(database_url: str, mode: str) -> None:
    seed(database_url)
    choice = resolve_auth(config(database_url, f"{{mode: {mode}}}"))
    assert choice.mode == mode
    assert choice.warnings == [
        f"auth.mode is {mode}, but the database holds 1 active gateway key: they are not "
        "checked and any caller is accepted; set auth.mode: keys to enforce them"
    ]


def test_keys_of_a_forwarding_config_do_not_switch_it_silently(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/relay.db"
    seed(url)
    forwarding = (
        "providers: {own: {kind: openai, base_url: 'http://x', forward_client_auth: true}}\n"
    )
    choice = choose_mode(config(url, providers=forwarding), 1)
    assert (
        choice.mode == "passthrough" and "own forward(s) the caller's own key" in choice.warnings[0]
    )


def test_an_unreachable_database_stops_an_unset_mode_not_an_explicit_one() -> None:
    url = f"postgresql://relay@127.0.0.1:{free_port()}/relay"
    with pytest.raises(AuthModeUnknown):
        resolve_auth(config(url), attempts=2, delay_s=0.01)
    assert resolve_auth(config(url, "{mode: none}")).mode == "none"


def test_no_database_is_never_keys_by_default() -> None:
    """An admin key with ``database.url: none`` has nothing to check keys against: the mode
    stays passthrough (a warning says the admin API needs a database), and the database is
    not asked."""
    config = parse_config(
        "providers: {e: {kind: echo}}\ndatabase: {url: none}\n"
        "auth: {admin_key: a-long-enough-master-key}",
        "t",
        {},
    )
    assert not needs_database(config)
    choice = choose_mode(config, None)
    assert choice.mode == "passthrough" and "database.url is none" in (choice.reason or "")
