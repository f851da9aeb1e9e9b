"""A worker started without ``relay serve`` decides an unset ``auth.mode`` itself, alike."""

from __future__ import annotations

import asyncio
from pathlib import Path

from relay.admin.access import MASTER
from relay.admin.models import TenantCreate
from relay.admin.store import AdminStore
from relay.app import RelayApp
from relay.auth.keys import KeyAuth
from relay.auth.passthrough import PassthroughAuth
from relay.config import parse_config
from relay.ledger.connect import open_database
from relay.tenancy import Tenancy

PROVIDERS = "providers: {echo: {kind: echo}}\nmodels: {echo: {provider: echo}}\n"


def test_an_unset_mode_is_decided_in_the_worker(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/relay.db"
    database = f"database: {{url: '{url}'}}\n"
    open_ = RelayApp(parse_config(PROVIDERS + database, "t", {}))
    assert open_.tenancy.config.auth.mode == "passthrough"
    assert isinstance(open_.stages[0], PassthroughAuth) and open_.gates == ()
    admin = "auth: {admin_key: a-long-enough-admin-key}\n"
    keyed = RelayApp(parse_config(PROVIDERS + database + admin, "t", {}))
    assert isinstance(keyed.stages[0], KeyAuth) and keyed.gates == (keyed.stages[0],)

    async def seed() -> None:
        db = open_database(url)
        await db.connect()
        await db.migrate()
        await AdminStore(db).create_tenant(MASTER, TenantCreate(name="svc"))
        await db.close()

    asyncio.run(seed())
    held = Tenancy(parse_config(PROVIDERS + database, "t", {}))
    assert held.config.auth.mode == "keys"
