"""The ledger's cost per request row, counted by callgrind: the tap, then the writer.

    python3 benches/ledger_write.py [--tree DIR ...] [--rows 5000] [--batch 500] [--prefill 20000]

For each tree, three runs of the same process under callgrind: ``base`` builds ``--rows``
finished exchanges (one attempt each, a few tenants and models, as the tiny request of
``run.py`` leaves them) after a warm-up that opened an SQLite file, migrated it and wrote
``--prefill`` rows through the writer (then ``app.tune_gc``, as a worker); ``tap`` also passes them to ``LedgerTap.on_finish``;
``write`` also drains them through ``LedgerWriter`` into ``SqliteDatabase.write_ledger`` in
batches of ``--batch`` (about what a worker at 1,000 requests/s gathers in a 0.5 s flush
interval). The differences over ``--rows`` are the tap's and the writer's instructions per
row, every thread counted (the SQLite thread too); the file is on disk, but callgrind counts
no kernel time.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import tempfile
from pathlib import Path

from callgrind import instructions

HERE = Path(__file__).resolve().parent
MODES = ("base", "tap", "write")

RUNNER = """
import asyncio, sys, tempfile, time
from relay.app import tune_gc
from relay.exchange import Attempt, Deployment, Endpoint, Exchange, Principal, Usage
from relay.ledger.sqlite import SqliteDatabase
from relay.ledger.tap import LedgerTap
from relay.ledger.writer import LedgerWriter

mode, n, batch, prefill = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
MODELS = [Deployment("openai", m, m) for m in ("gpt-4o-mini", "gpt-4o", "o3-mini")]
TENANTS = ["default", "team-a", "team-b", "team-c"]

def exchange(i):
    dep = MODELS[i % 3]
    ex = Exchange(f"req_{i:016x}", Endpoint.CHAT, b"", {})
    ex.model, ex.deployment, ex.status = dep.public_model, dep, 200 if i % 50 else 429
    ex.principal = Principal(tenant=TENANTS[i % 4])
    t = ex.started
    ex.attempts.append(Attempt(dep, 1, ex.status, None, t + 1e-4, t + 3e-4, t + 4e-4, t + 4e-4,
                               None))
    ex.usage = Usage(12, 9)
    ex.cost_usd = 0.000021
    ex.finished = t + 5e-4
    return ex

async def main():
    with tempfile.TemporaryDirectory() as tmp:
        db = SqliteDatabase(tmp + "/ledger.db")
        await db.connect()
        await db.migrate()
        writer = LedgerWriter(db, batch_size=batch)
        tap = LedgerTap(writer)
        for i in range(prefill):
            tap.on_finish(exchange(i))
        await writer._drain()
        tune_gc()  # as a worker does after start-up: the collector's passes spaced
        exchanges = [exchange(prefill + i) for i in range(n)]
        if mode != "base":
            for ex in exchanges:
                tap.on_finish(ex)
            if mode == "write":
                await writer._drain()
            else:
                writer._queue.clear()
        await db.close()

asyncio.run(main())
"""


def count(tree: Path, runner: Path, mode: str, args: argparse.Namespace) -> int:
    """Instructions of one run (callgrind's total, every thread)."""
    argv = [str(runner), mode, str(args.rows), str(args.batch), str(args.prefill)]
    return instructions(tree, argv, {"PYTHONHASHSEED": "0"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", type=Path, help="a checkout (repeatable)")
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--prefill", type=int, default=20000)
    args = parser.parse_args()
    trees = args.tree or [HERE.parent]
    with tempfile.TemporaryDirectory() as tmp:
        runner = Path(tmp) / "run.py"
        runner.write_text(RUNNER)
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            jobs = {
                (str(tree), mode): pool.submit(count, tree, runner, mode, args)
                for tree in trees
                for mode in MODES
            }
            totals = {key: job.result() for key, job in jobs.items()}
    print(f"{'tree':<40}{'tap / row':>12}{'writer / row':>14}{'total / row':>14}")
    for tree in trees:
        base, tap, write = (totals[(str(tree), mode)] for mode in MODES)
        per_tap, per_write = (tap - base) / args.rows, (write - tap) / args.rows
        print(
            f"{str(tree)[-40:]:<40}{per_tap:>12,.0f}{per_write:>14,.0f}{per_tap + per_write:>14,.0f}"
        )


if __name__ == "__main__":
    main()
