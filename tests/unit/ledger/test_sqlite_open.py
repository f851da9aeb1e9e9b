"""Workers open a new SQLite file together: each must come up, none may die on "database is
locked" while a peer switches the file to WAL or migrates it (a worker that died at start was
respawned by granian, seen in CI)."""

from __future__ import annotations

import asyncio
import multiprocessing
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

from relay.ledger.sqlite import SqliteDatabase

OPENERS = 6


def open_and_migrate(path: str, barrier: Barrier, results: Queue[str]) -> None:
    async def go() -> None:
        db = SqliteDatabase(path)
        barrier.wait()
        await db.connect()
        await db.migrate()
        await db.close()

    try:
        asyncio.run(go())
        results.put("ok")
    except Exception as exc:  # the test reports what a worker would have died of
        results.put(repr(exc))


def test_processes_opening_a_new_file_together_all_come_up(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    for round_ in range(12):
        path = str(tmp_path / f"relay-{round_}.db")
        barrier = ctx.Barrier(OPENERS)
        results: Queue[str] = ctx.Queue()
        openers = [
            ctx.Process(target=open_and_migrate, args=(path, barrier, results))
            for _ in range(OPENERS)
        ]
        for process in openers:
            process.start()
        for process in openers:
            process.join(30)
        assert [results.get(timeout=5) for _ in openers] == ["ok"] * OPENERS
