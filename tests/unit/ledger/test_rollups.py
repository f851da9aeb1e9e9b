"""The coarser daily roll-ups of migration 6 on SQLite and PostgreSQL: kept by the ledger
writer with usage_daily, backfilled from it on upgrade, and read by /admin/usage."""

from __future__ import annotations

import asyncio
from datetime import date

from relay.admin import reports
from relay.ledger.connect import open_database
from relay.ledger.records import COARSE_ROLLUPS, RequestRow, coarser, rollup
from relay.ledger.schema import MIGRATIONS
from tests.unit.ledger.test_database import request_row

SUMS = "SUM(requests), SUM(errors), SUM(prompt_tokens), SUM(cost_usd)"


def rows() -> list[RequestRow]:
    made = []
    for i in range(12):
        row = request_row(f"r{i}", day=20000 + i % 2, tenant=f"t{i % 3}", cost=0.25 * i)
        made.append(row._replace(key_prefix=f"gw-sk-k{i % 4}", model=f"m{i % 2}",
                                 status=500 if i == 5 else 200))  # fmt: skip
    return made


def test_coarser_sums_what_it_leaves_out() -> None:
    fine = rollup(rows())
    for key in COARSE_ROLLUPS.values():
        coarse = coarser(fine, key)
        assert sum(r[len(key)] for r in coarse) == 12  # requests
        assert sum(r[len(key) + 1] for r in coarse) == 1  # errors
        assert abs(sum(r[-1] for r in coarse) - sum(0.25 * i for i in range(12))) < 1e-9  # type: ignore[operator]
        assert len({r[: len(key)] for r in coarse}) == len(coarse)


def test_writer_keeps_every_rollup_and_usage_reads_the_smallest(database_url: str) -> None:
    async def main() -> None:
        db = open_database(database_url)
        await db.connect()
        await db.migrate()
        written = rows()
        assert await db.write_ledger(written[:7], []) == 7
        assert await db.write_ledger(written, []) == 5  # a batch again: counted once
        (fine,) = await db.fetch(f"SELECT {SUMS} FROM usage_daily")
        for table in COARSE_ROLLUPS:
            assert await db.fetch(f"SELECT {SUMS} FROM {table}") == [fine]
        assert reports.rollup_table(["tenant", "day"]) == "usage_daily_model"
        assert reports.rollup_table(["key", "day"]) == "usage_daily_key"
        assert reports.rollup_table(["key"], model="m1") == "usage_daily"
        assert reports.rollup_table(["key", "model"]) == "usage_daily"
        start, end = date(2024, 10, 1), date(2024, 10, 31)  # days 20000 and 20001
        groupings = (["tenant", "day"], ["key", "day"], ["key", "model"], ["model"],
                     ["day", "organization", "tenant", "key"],  # usage_daily_key's own key
                     ["day", "organization", "tenant", "key", "model"])  # fmt: skip
        for group_by in groupings:
            report = await reports.usage(db, start=start, end=end, group_by=group_by)
            assert report.total.requests == 12 and report.total.errors == 1, group_by
        await db.close()

    asyncio.run(main())


def test_upgrade_backfills_the_coarser_rollups(database_url: str) -> None:
    async def main() -> None:
        db = open_database(database_url)
        await db.connect()
        await db.migrate()
        await db.write_ledger(rows(), [])
        # As a database of version 4 would be: no coarser tables, usage_daily filled.
        indexes = ("requests_tenant_ts", "requests_key_prefix_ts", "requests_model_ts",
                   "requests_status_ts", "requests_org_model_ts", "requests_org_status_ts")  # fmt: skip
        await db.transaction(
            [(f"DROP TABLE {table}", ()) for table in COARSE_ROLLUPS]
            + [(f"DROP INDEX {index}", ()) for index in indexes]
            + [("DELETE FROM schema_migrations WHERE version = 6", ())]
        )
        assert await db.migrate() == [6]
        (fine,) = await db.fetch(f"SELECT {SUMS} FROM usage_daily")
        for table in COARSE_ROLLUPS:
            assert await db.fetch(f"SELECT {SUMS} FROM {table}") == [fine]
        assert [m.version for m in MIGRATIONS][-1] == 6
        await db.close()

    asyncio.run(main())
