"""How long each dashboard page takes with a month of one million ledger rows.

    PYTHONPATH=python python3 benches/dashboard.py [--rows 1000000] [--postgres URL] [--quick]

Fills SQLite and PostgreSQL (a throwaway cluster unless ``--postgres``) with 5 organisations,
50 tenants (each with a budget), 200 keys, 10 models and ``--rows`` requests (one provider
attempt each, ~2% errors) spread over the last 30 days, loaded in bulk and rolled up into
``usage_daily`` as the ledger writer would. Then renders every page through the real
``Dashboard.handle`` in process (the admin API's queries, the roll-up, Jinja2, the SVG
charts), as the master key and as a ``user`` of one organisation: median of 5 after one
warm-up. Target: every page under 100 ms. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "python"), str(REPO)]

from relay.admin.access import MASTER, Actor  # noqa: E402
from relay.admin.api import AdminApi  # noqa: E402
from relay.admin.models import KeyCreate, TenantCreate, UserCreate  # noqa: E402
from relay.admin.store import AdminStore  # noqa: E402
from relay.auth.cache import KeyCache  # noqa: E402
from relay.config.model import UiConfig  # noqa: E402
from relay.ledger.connect import open_database  # noqa: E402
from relay.ledger.database import Database  # noqa: E402
from relay.ledger.records import DAY_S, REQUEST_COLUMNS, ROLLUP_KEY, ROLLUP_SUMS  # noqa: E402
from relay.ledger.schema import COARSE_BACKFILL  # noqa: E402
from relay.ui.dashboard import Dashboard  # noqa: E402
from relay.ui.session import COOKIE  # noqa: E402
from relay.ui.web import UiRequest  # noqa: E402

ADMIN_KEY = "bench-admin-key-0123456789abcdef"
MODELS = [f"model-{i}" for i in range(10)]
ORGS = [f"org-{i}" for i in range(5)]
BATCH = 20_000


async def seed(db: Database) -> dict[str, Any]:
    """Tenants, keys and one user per organisation, through the admin store."""
    store = AdminStore(db)
    keys: list[tuple[str, str, str, str]] = []  # (org, tenant, key id, prefix)
    for t in range(50):
        org = ORGS[t % len(ORGS)]
        tenant = await store.create_tenant(
            MASTER,
            TenantCreate(name=f"tenant-{t}", organization=org, budget_usd=1000.0 + t),
        )
        assert tenant.key is not None
        keys.append((org, tenant.name, tenant.key.id, tenant.key.prefix))
        for k in range(3):
            key = await store.create_key(
                MASTER,
                KeyCreate(tenant_id=tenant.id, name=f"k{k}", budget_usd=50.0 if k == 0 else None),
            )
            keys.append((org, tenant.name, key.id, key.prefix))
    user = await store.create_user(MASTER, UserCreate(name="bench-user", organization=ORGS[0]))
    return {"keys": keys, "user": Actor(f"user:{user.id}", "user", ORGS[0], user.id)}


def rows(keys: list[tuple[str, str, str, str]], count: int, now: float) -> Any:
    """``count`` request rows over the last 30 days, and one attempt each."""
    rng = random.Random(7)
    start = now - 30 * DAY_S
    for i in range(count):
        org, tenant, kid, prefix = keys[rng.randrange(len(keys))]
        ts = start + (now - start) * i / count
        status = 200 if rng.random() > 0.02 else rng.choice((429, 500))
        prompt, completion = rng.randrange(10, 2000), rng.randrange(1, 800)
        model = MODELS[rng.randrange(len(MODELS))]
        rid = f"lg_{i:012d}"
        yield (
            (rid, f"req_{i:012d}", ts, int(ts // DAY_S), org, tenant, kid, prefix, None,
             "/v1/chat/completions", model, "fake", "fake/" + model, status,
             None if status == 200 else "upstream_error", False, 300.0, 120.0,
             prompt, completion, 0, (prompt + 2 * completion) / 1e6, False, False, 1, 0.0),
            (rid, 0, "fake", "fake/" + model, status, None if status == 200 else "http_5xx",
             290.0, 110.0, prompt, completion),
        )  # fmt: skip


_ROLLUP = (
    f"INSERT INTO usage_daily ({', '.join(ROLLUP_KEY + ROLLUP_SUMS)}) "
    "SELECT day, org, tenant, COALESCE(key_prefix, ''), model, COUNT(*), "
    "SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), SUM(prompt_tokens), "
    "SUM(completion_tokens), SUM(cached_tokens), SUM(cost_usd) FROM requests "
    "GROUP BY day, org, tenant, COALESCE(key_prefix, ''), model"
)


def load_sqlite(path: str, keys: list[tuple[str, str, str, str]], count: int, now: float) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous = OFF")
    req_sql = f"INSERT INTO requests ({', '.join(REQUEST_COLUMNS)}) VALUES ({', '.join('?' * len(REQUEST_COLUMNS))})"
    att_sql = "INSERT INTO provider_attempts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    batch_r, batch_a = [], []
    for request, attempt in rows(keys, count, now):
        batch_r.append(request)
        batch_a.append(attempt)
        if len(batch_r) >= BATCH:
            conn.executemany(req_sql, batch_r)
            conn.executemany(att_sql, batch_a)
            batch_r, batch_a = [], []
    conn.executemany(req_sql, batch_r)
    conn.executemany(att_sql, batch_a)
    for sql in (_ROLLUP, *COARSE_BACKFILL):
        conn.execute(sql)
    conn.commit()
    conn.execute("ANALYZE")
    conn.close()


async def load_postgres(url: str, keys: list[tuple[str, str, str, str]], count: int, now: float) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        batch_r, batch_a = [], []
        for request, attempt in rows(keys, count, now):
            batch_r.append(request)
            batch_a.append(attempt)
            if len(batch_r) >= BATCH:
                await conn.copy_records_to_table("requests", records=batch_r, columns=list(REQUEST_COLUMNS))
                await conn.copy_records_to_table("provider_attempts", records=batch_a)
                batch_r, batch_a = [], []
        if batch_r:
            await conn.copy_records_to_table("requests", records=batch_r, columns=list(REQUEST_COLUMNS))
            await conn.copy_records_to_table("provider_attempts", records=batch_a)
        for sql in (_ROLLUP, *COARSE_BACKFILL):
            await conn.execute(sql)
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


def pages(keys: list[tuple[str, str, str, str]], one: str) -> list[str]:
    """The pages timed; ``{...}`` in a path is filled with one of the seeded objects."""
    org, tenant, _, prefix = keys[0]
    return [
        "/ui/",
        "/ui/usage",
        "/ui/usage?by=model&metric=tokens",
        "/ui/usage?by=key&days=30",
        "/ui/usage?by=tenant&days=90",
        "/ui/requests",
        f"/ui/requests?tenant={tenant}",
        f"/ui/requests?key_prefix={prefix}",
        f"/ui/requests?model={MODELS[3]}",
        "/ui/requests?status=500",
        f"/ui/requests?model={MODELS[3]}&status=429",
        f"/ui/requests/{one}",
        "/ui/keys",
        "/ui/tenants",
        "/ui/users",
        "/ui/audit",
    ]


async def time_pages(
    db: Database, who: dict[str, Actor], paths: list[str], repeat: int, prefix: str, one: str
) -> dict[str, dict[str, float]]:
    admin = AdminApi(db, KeyCache(db, 60.0), ADMIN_KEY)
    dashboard = Dashboard(admin, UiConfig(session_secret="bench-secret-0123456789abcdef"), ADMIN_KEY)
    out: dict[str, dict[str, float]] = {}
    for name, actor in who.items():
        _, cookie = dashboard.codec.issue(actor)
        headers = {"cookie": f"{COOKIE}={cookie}", "host": "127.0.0.1"}
        for path in paths:
            route, _, query = path.partition("?")
            request = UiRequest("GET", route, query, headers)
            answer = await dashboard.handle(request)  # warm-up
            assert answer.status == 200, (path, answer.status, answer.body[:300])
            samples = []
            for _ in range(repeat):
                started = time.perf_counter()
                await dashboard.handle(request)
                samples.append((time.perf_counter() - started) * 1000)
            label = path.replace(prefix, "{prefix}").replace(one, "{id}")
            out.setdefault(label, {})[name] = statistics.median(samples)
    return out


async def bench(url: str, count: int, repeat: int, sqlite_path: str | None) -> dict[str, dict[str, float]]:
    db = open_database(url)
    await db.connect()
    await db.migrate()
    made = await seed(db)
    now = time.time()
    started = time.perf_counter()
    if sqlite_path is not None:
        await db.close()
        load_sqlite(sqlite_path, made["keys"], count, now)
        db = open_database(url)
        await db.connect()
    else:
        await load_postgres(url, made["keys"], count, now)
    print(f"  loaded {count:,} rows in {time.perf_counter() - started:.0f} s", flush=True)
    # A request in the middle of the month, of the user's organisation.
    (one,) = (await db.fetch(
        "SELECT request_id FROM requests WHERE org = ? AND ts > ? ORDER BY ts LIMIT 1",
        [ORGS[0], now - 15 * DAY_S],
    ))[0]
    try:
        paths = pages(made["keys"], one)
        who = {"master": MASTER, "user": made["user"]}
        return await time_pages(db, who, paths, repeat, made["keys"][0][3], one)
    finally:
        await db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--postgres", help="an empty PostgreSQL database (default: a throwaway cluster)")
    parser.add_argument("--quick", action="store_true", help="100k rows")
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    args = parser.parse_args()
    count = 100_000 if args.quick else args.rows
    results: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.only != "postgresql":
            print("SQLite:", flush=True)
            path = os.path.join(tmp, "bench.db")
            results["sqlite"] = asyncio.run(bench(f"sqlite:///{path}", count, 5, path))
        if args.only != "sqlite":
            print("PostgreSQL:", flush=True)
            server = None
            url = args.postgres
            if url is None:
                from tests.services.postgres import PostgresServer

                server = PostgresServer()
                url = server.create_database("dashboard")
            try:
                results["postgresql"] = asyncio.run(bench(url, count, 5, None))
            finally:
                if server is not None:
                    server.destroy()
    engines = list(results)
    paths = list(next(iter(results.values())))
    print(f"\nmedian ms per page, {count:,} ledger rows (master / user of one organisation)")
    print(f"| page | {' | '.join(engines)} |")
    print(f"|---|{'---|' * len(engines)}")
    for path in paths:
        cells = [f"{results[e][path]['master']:.1f} / {results[e][path]['user']:.1f}" for e in engines]
        print(f"| `{path}` | {' | '.join(cells)} |")
    worst = max(v for e in engines for p in paths for v in results[e][p].values())
    print(f"\nslowest: {worst:.1f} ms (target: every page under 100 ms)")


if __name__ == "__main__":
    main()
