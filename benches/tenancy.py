"""Benchmarks of the tenants work: auth + ledger CPU per request, writer rows/s, usage query.

    PYTHONPATH=python python3 benches/tenancy.py [--rows 1000000] [--postgres URL] [--quick]

1. CPU per request added by ``auth.mode: keys`` with the ledger on, over the core path:
   a) in process, the keys stage + the ledger tap (the work on the request path), with
      ``time.process_time`` over many calls; b) the writer's own CPU per row (off the
      request path, but on the same process: SQLite's thread included), c) end to end: the
      gateway's CPU seconds per request (``/proc``) serving the offline echo model with
      ``keys`` + ledger against ``passthrough`` with the ledger off, the same load.
2. The writer's sustained rows/s (each request with one provider attempt) on SQLite and
   PostgreSQL, through the real queue and batches.
3. ``/admin/usage`` for one month at ``--rows`` ledger rows (default one million), through
   ``AdminApi.handle`` (query, roll-up, JSON), and the first page of ``/admin/requests``.

Without ``--postgres`` a throwaway cluster is started (as the tests do). Figures are
printed, never asserted. See benches/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "python"), str(REPO)]
# The gateway processes started below import this checkout's relay too.
os.environ["PYTHONPATH"] = os.pathsep.join(
    filter(None, [str(REPO / "python"), os.environ.get("PYTHONPATH")])
)

from relay.admin.access import MASTER  # noqa: E402
from relay.admin.api import AdminApi  # noqa: E402
from relay.admin.models import TenantCreate  # noqa: E402
from relay.admin.store import AdminStore  # noqa: E402
from relay.auth.cache import KeyCache  # noqa: E402
from relay.auth.keys import KeyAuth  # noqa: E402
from relay.exchange import Attempt, Deployment, Endpoint, Exchange, Usage  # noqa: E402
from relay.ledger.connect import open_database  # noqa: E402
from relay.ledger.database import Database  # noqa: E402
from relay.ledger.records import DAY_S, AttemptRow, RequestRow  # noqa: E402
from relay.ledger.tap import LedgerTap  # noqa: E402
from relay.ledger.writer import LedgerWriter  # noqa: E402

BODY = (
    b'{"model":"echo","messages":[{"role":"user","content":"hello"}],"metadata":{"use_case":"b"}}'
)


async def fresh(url: str) -> Database:
    db = open_database(url)
    await db.connect()
    await db.migrate()
    return db


# -- 1. CPU per request ------------------------------------------------------------------------
async def request_path_cpu(url: str, n: int) -> dict[str, float]:
    """us of CPU per request for the keys stage and the tap (enqueue only)."""
    db = await fresh(url)
    tenant = await AdminStore(db).create_tenant(
        MASTER, TenantCreate(name="bench", allowed_models=["echo"])
    )
    cache = KeyCache(db)
    await cache.refresh()
    auth = KeyAuth(cache)
    writer = LedgerWriter(db, queue_size=n + 1, batch_size=500)
    tap = LedgerTap(writer)
    headers = {"authorization": f"Bearer {tenant.api_key}"}
    deployment = Deployment("echo", "echo", "echo")
    exchanges = []
    for i in range(n):
        ex = Exchange(f"req_{i}", Endpoint.CHAT, BODY, headers)
        ex.model, ex.status, ex.deployment = "echo", 200, deployment
        ex.usage, ex.cost_usd = Usage(10, 5), 0.0001
        ex.attempts.append(
            Attempt("echo", "echo", 200, None, ex.started, ex.started, ex.started, ex.started)
        )
        ex.finished = ex.started
        exchanges.append(ex)
    t0 = time.process_time()
    for ex in exchanges:
        await auth(ex)
    t1 = time.process_time()
    for ex in exchanges:
        tap.on_finish(ex)
    t2 = time.process_time()
    writer.start()
    await writer.stop(60)  # drains everything queued: the writer's CPU (SQLite: its thread too)
    t3 = time.process_time()
    await db.close()
    return {
        "auth_us": (t1 - t0) / n * 1e6,
        "tap_us": (t2 - t1) / n * 1e6,
        "writer_us_per_row": (t3 - t2) / n * 1e6,
    }


def _tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and its children, from /proc."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    for p in [pid, *map(int, out.stdout.split())]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def end_to_end_cpu(keys: bool, n: int, tmp: Path) -> float:
    """The gateway's CPU us per request, echo model, one worker, keep-alive client."""
    from tests.integration.gateway import Gateway

    config: dict[str, Any] = {
        "providers": {"echo": {"kind": "echo"}},
        "models": {"echo": {"provider": "echo"}},
        "server": {"log_level": "warning"},
    }
    if keys:
        config["auth"] = {"mode": "keys", "admin_key": "bench-master-key-0123456789"}
        config["database"] = {"url": f"sqlite:///{tmp}/keys.db"}
    else:
        config["database"] = {"url": f"sqlite:///{tmp}/plain.db", "ledger": {"enabled": False}}
    gateway = Gateway(config, tmp)
    try:
        headers = {"content-type": "application/json"}
        if keys:
            conn = http.client.HTTPConnection("127.0.0.1", gateway.port)
            conn.request("POST", "/admin/tenants", body=json.dumps({"name": "bench"}),
                         headers={"authorization": "Bearer bench-master-key-0123456789"})  # fmt: skip
            headers["authorization"] = "Bearer " + json.loads(conn.getresponse().read())["api_key"]
        conn = http.client.HTTPConnection("127.0.0.1", gateway.port)

        def burst(count: int) -> None:
            for _ in range(count):
                conn.request("POST", "/v1/chat/completions", body=BODY, headers=headers)
                response = conn.getresponse()
                response.read()
                assert response.status == 200, response.status

        burst(500)  # warm-up
        before = _tree_cpu(gateway.process.pid)
        burst(n)
        time.sleep(1.0)  # let the ledger writer flush what these requests queued
        return (_tree_cpu(gateway.process.pid) - before - _idle_cpu(gateway.process.pid)) / n * 1e6
    finally:
        gateway.stop()


def _idle_cpu(pid: int) -> float:
    # The CPU an idle gateway burns in the 1 s flush wait (pollers), subtracted from the run.
    start = _tree_cpu(pid)
    time.sleep(1.0)
    return _tree_cpu(pid) - start


def inprocess_added_us(tmp: Path, n: int, rounds: int = 3) -> dict[str, float]:
    """Relay's own thread CPU per request with benches/inprocess.py's stand-ins (no granian,
    no network), best of ``rounds``: the core path (passthrough, ledger off) against keys
    alone, the ledger alone, and both; with the garbage collector on and off. The loop yields
    every 500 requests so the ledger writer drains as it would between network reads (its
    SQLite thread is not counted: thread CPU time of the loop's thread only)."""
    import gc

    from benches import inprocess as ip
    from relay.config import parse_config

    loop = asyncio.new_event_loop()
    cases = {
        "core": "database: {url: 'sqlite:///%s/core.db', ledger: {enabled: false}}\n",
        "keys": "auth: {mode: keys}\ndatabase: {url: 'sqlite:///%s/keys.db', ledger: {enabled: false}}\n",
        "ledger": "database: {url: 'sqlite:///%s/ledger.db'}\n",
        "keys_ledger": "auth: {mode: keys}\ndatabase: {url: 'sqlite:///%s/both.db'}\n",
    }
    best: dict[str, float] = {}
    body = ip.body_of(20, False)
    for round_ in range(rounds):
        for name, extra in cases.items():
            for collect in (True, False):
                app = ip.RelayApp(parse_config(ip.CONFIG + extra % tmp, "bench"))
                ip.in_memory(app)
                loop.run_until_complete(app.tenancy.start())
                scope, proto = ip.Scope(len(body)), ip.Proto(body)
                if name.startswith("keys"):
                    created = loop.run_until_complete(
                        AdminStore(app.tenancy.db).create_tenant(
                            MASTER, TenantCreate(name=f"t{round_}{collect:d}")
                        )
                    )
                    loop.run_until_complete(app.tenancy.cache.refresh())
                    scope.headers["authorization"] = "Bearer " + created.api_key

                async def run(
                    app: Any = app, scope: Any = scope, proto: Any = proto, collect: bool = collect
                ) -> float:
                    for _ in range(200):
                        await app.__rsgi__(scope, proto)
                    gc.collect()
                    if not collect:
                        gc.disable()
                    total = 0
                    for _ in range(n // 500):
                        start = time.thread_time_ns()
                        for _ in range(500):
                            await app.__rsgi__(scope, proto)
                        total += time.thread_time_ns() - start
                        await asyncio.sleep(0.005)  # the writer's turn
                    gc.enable()
                    return total / (n // 500 * 500) / 1000

                key = f"{name}{'' if collect else '_gc_off'}"
                value = loop.run_until_complete(run())
                best[key] = min(best.get(key, value), value)
                loop.run_until_complete(app.tenancy.stop(60))
    for suffix in ("", "_gc_off"):
        best[f"added{suffix}"] = best[f"keys_ledger{suffix}"] - best[f"core{suffix}"]
    return best


# -- 2. writer throughput ----------------------------------------------------------------------
def rows_for(count: int, days: int, seed: int = 7) -> list[tuple[RequestRow, list[AttemptRow]]]:
    """``count`` requests spread over the last ``days`` days: 50 tenants, 200 keys, 10 models."""
    rnd = random.Random(seed)
    now = time.time()
    out = []
    for i in range(count):
        ts = now - rnd.random() * days * DAY_S
        tenant = rnd.randrange(50)
        key = f"gw-sk-{tenant:04d}{rnd.randrange(4):04d}"
        lid = f"lg_{i:012d}"
        status = 200 if rnd.random() > 0.02 else 502
        row = RequestRow(
            lid, f"req_{i}", ts, int(ts // DAY_S), f"org{tenant % 5}", f"tenant{tenant}", None,
            key, None, "/chat/completions", f"model{rnd.randrange(10)}", "openai", "gpt-4o",
            status, None if status == 200 else "upstream_unreachable", True, 850.0, 230.0,
            rnd.randrange(50, 2000), rnd.randrange(10, 500), 0, 0.0012, False, False, 1,
        )  # fmt: skip
        out.append(
            (
                row,
                [
                    AttemptRow(
                        lid,
                        1,
                        "openai",
                        "gpt-4o",
                        status,
                        row.error,
                        849.0,
                        120.0,
                        row.prompt_tokens,
                        row.completion_tokens,
                    )
                ],
            )
        )
    return out


async def writer_rate(url: str, entries: list[tuple[RequestRow, list[AttemptRow]]]) -> float:
    """Requests (with attempts) per second through the queue and batches."""
    db = await fresh(url)
    writer = LedgerWriter(db, queue_size=len(entries) + 1, batch_size=500, flush_interval_s=0.05)
    for entry in entries:
        writer.put(entry)
    start = time.perf_counter()
    writer.start()
    await writer.stop(600)
    elapsed = time.perf_counter() - start
    await db.close()
    return len(entries) / elapsed


# -- 3. usage at scale -------------------------------------------------------------------------
async def usage_at_scale(url: str, rows: int) -> dict[str, float]:
    db = await fresh(url)
    chunk = 100_000
    t0 = time.perf_counter()
    for start in range(0, rows, chunk):
        batch = rows_for(min(chunk, rows - start), 30, seed=start)
        batch = [
            (
                r._replace(id=f"lg_{start + i:012d}"),
                [a._replace(request_id=f"lg_{start + i:012d}") for a in att],
            )
            for i, (r, att) in enumerate(batch)
        ]
        for i in range(0, len(batch), 5000):
            part = batch[i : i + 5000]
            await db.write_ledger([r for r, _ in part], [a for _, att in part for a in att])
    load_s = time.perf_counter() - t0
    api = AdminApi(db, KeyCache(db), "bench-master-key-0123456789")
    headers = {"authorization": "Bearer bench-master-key-0123456789"}
    queries = {
        "usage": "",  # the default: the last 30 days by tenant, model and day
        "usage_by_tenant_day": "group_by=tenant,day",
        "usage_by_tenant_key_model_day": "group_by=tenant,key,model,day",
    }
    timings: dict[str, list[float]] = {name: [] for name in [*queries, "requests_page"]}
    for _ in range(5):
        for name, query in queries.items():
            t = time.perf_counter()
            status, _, body = await api.handle("GET", "/admin/usage", query, headers, b"")
            timings[name].append((time.perf_counter() - t) * 1000)
            assert status == 200, body[:200]
        t = time.perf_counter()
        status, _, body = await api.handle(
            "GET", "/admin/requests", "limit=100&tenant=tenant7", headers, b""
        )
        timings["requests_page"].append((time.perf_counter() - t) * 1000)
        assert status == 200, body[:200]
    status, _, body = await api.handle("GET", "/admin/usage", "", headers, b"")
    total = json.loads(body)["total"]["requests"]
    await db.close()
    out = {f"{k}_ms": statistics.median(v) for k, v in timings.items()}
    out["load_s"] = load_s
    out["rows_in_month"] = total
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rows", type=int, default=1_000_000, help="ledger rows for the usage query"
    )
    parser.add_argument("--postgres", help="a PostgreSQL URL whose server may get new databases")
    parser.add_argument("--quick", action="store_true", help="fewer requests and rows")
    args = parser.parse_args()
    n_cpu, n_e2e, n_writer = (5000, 2000, 20_000) if args.quick else (50_000, 10_000, 100_000)
    rows = 100_000 if args.quick else args.rows
    server = None
    if args.postgres:
        pg_base = args.postgres.rsplit("/", 1)[0]
    else:
        from tests.services.postgres import PostgresServer

        server = PostgresServer()
        pg_base = server.url("").rstrip("/")

    def pg(name: str) -> str:
        async def create() -> None:
            import asyncpg

            conn = await asyncpg.connect(pg_base + "/postgres")
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            await conn.execute(f'CREATE DATABASE "{name}"')
            await conn.close()

        asyncio.run(create())
        return f"{pg_base}/{name}"

    results: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp_dir:
            tmp = Path(tmp_dir)
            results["request_path_sqlite"] = asyncio.run(
                request_path_cpu(f"sqlite:///{tmp}/a.db", n_cpu)
            )
            results["request_path_postgresql"] = asyncio.run(
                request_path_cpu(pg("bench_cpu"), n_cpu)
            )
            base = end_to_end_cpu(False, n_e2e, tmp)
            keys = end_to_end_cpu(True, n_e2e, tmp)
            results["inprocess_us"] = inprocess_added_us(tmp, n_e2e)
            results["end_to_end_us"] = {
                "passthrough_no_ledger": base,
                "keys_ledger": keys,
                "added": keys - base,
            }
            entries = rows_for(n_writer, 1)
            results["writer_rows_per_s"] = {
                "sqlite": asyncio.run(writer_rate(f"sqlite:///{tmp}/w.db", entries)),
                "postgresql": asyncio.run(writer_rate(pg("bench_writer"), entries)),
            }
            results["usage_sqlite"] = asyncio.run(usage_at_scale(f"sqlite:///{tmp}/u.db", rows))
            results["usage_postgresql"] = asyncio.run(usage_at_scale(pg("bench_usage"), rows))
    finally:
        if server is not None:
            server.destroy()
    print(json.dumps(results, indent=2, default=lambda v: round(v, 2)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
