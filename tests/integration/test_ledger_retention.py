"""What the ledger keeps, through a real ``relay serve``: the start-up line says where it is
written (or that it is off), rows past ``database.retention_days`` are purged in the
background, and ``database.url: none`` keeps nothing at all."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import openai

from relay.ledger.connect import open_database
from relay.ledger.records import DAY_S
from tests.fakes.openai_upstream import FakeUpstream
from tests.integration.conftest import UPSTREAM_KEY
from tests.integration.gateway import Gateway
from tests.integration.tenancy import call, read_rows
from tests.services.postgres import wait_until
from tests.unit.ledger.test_database import attempt_row, request_row

ECHO = {"providers": {"echo": {"kind": "echo"}}, "models": {"echo": {"provider": "echo"}}}


def infos(gateway: Gateway) -> list[str]:
    lines = [json.loads(line) for line in gateway.logs().splitlines() if line.startswith("{")]
    return [line["msg"] for line in lines if line["level"] == "info"]


def test_rows_past_retention_are_purged_in_the_background(
    database_url: str, tmp_path: Path
) -> None:
    async def seed() -> None:  # a ledger 40 days old, as a gateway of last month left it
        db = open_database(database_url)
        await db.connect()
        await db.migrate()
        old = [request_row(f"old{i}", day=int(time.time() // DAY_S) - 40) for i in range(5)]
        await db.write_ledger(old, [attempt_row(r.id) for r in old])
        await db.close()

    asyncio.run(seed())
    config = {**ECHO, "auth": {"mode": "none"}, "database": {"url": database_url}}
    gateway = Gateway(config, tmp_path)
    try:
        if database_url.startswith("sqlite:///"):
            where = f"SQLite file {database_url.removeprefix('sqlite:///')}"
        else:
            where = f"PostgreSQL {database_url}"  # no password to hide in this one
        assert f"ledger: {where}, rows kept 30 days" in infos(gateway)
        client = openai.OpenAI(base_url=gateway.base_url, api_key="x", max_retries=0)
        reply = client.chat.completions.with_raw_response.create(
            model="echo", messages=[{"role": "user", "content": "hi"}]
        )
        rid = reply.headers["x-request-id"]

        def ids() -> set[str]:
            return {r[0] for r in read_rows(database_url, "SELECT request_id FROM requests")}

        assert wait_until(lambda: ids() == {rid}, timeout=30), (ids(), gateway.logs())
        assert read_rows(database_url, "SELECT count(*) FROM provider_attempts")[0][0] == 1
        assert "retention: deleted 5 ledger requests" in gateway.logs()
    finally:
        assert gateway.stop() == 0


def test_database_url_none_keeps_nothing(fake_upstream: FakeUpstream, tmp_path: Path) -> None:
    """The simple form with ``database: {url: none}``: no file anywhere, the start-up line says
    the ledger is off, and the admin API answers why it is not there."""
    config = {"proxy": {"target": fake_upstream.url}, "database": {"url": "none"}}
    gateway = Gateway(config, tmp_path)
    try:
        assert (
            "ledger: off (database.url: none: no ledger, keys, admin API or stored responses)"
            in infos(gateway)
        )
        client = openai.OpenAI(base_url=gateway.base_url, api_key=UPSTREAM_KEY, max_retries=0)
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
        assert reply.choices[0].message.content
        status, body = call(gateway, "GET", "/admin/tenants")
        assert status == 404 and "database.url: none" in body["error"]["message"]
    finally:
        assert gateway.stop() == 0
    files = {p.name for p in tmp_path.iterdir()}
    assert files == {f"relay-{gateway.port}.yaml", f"relay-{gateway.port}.log"}, files
