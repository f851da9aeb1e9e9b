"""Micro-benchmark: one rate-limit decision, in shared memory and in process, in one run.

    PYTHONPATH=python python3 benches/limits.py [--calls 200000] [--repeat 7] [--contended]

Cases, each timed as a loop of ``--calls`` decisions, best of ``--repeat`` (thread CPU time,
so that other programs on a shared machine count less), in turns:

* ``SharedMemoryStore.take`` with one charge (a key's requests per minute) and with three
  (the key's rpm, its tenant's rpm and the tenant's tokens per minute), awaited inside a
  running coroutine on uvloop, as the limits stage will: the charge objects go in, a
  ``Decision`` comes out.
* The native ``SharedLimitTable.take`` alone, with the same charges and answer, called
  directly (no coroutine, no await).
* ``LocalLimiter.check`` (the in-process limiter, one key behind a mutex), one charge.

With ``--contended``, a second process takes on the same cells throughout the shared-memory
cases (both CPUs of a 2-core machine busy on one cache line). The limits never run out (a
billion per second), so every decision is allowed and charges a cell. Figures are printed,
never asserted. See benches/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import secrets
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import uvloop

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "python"))

from relay.native import LocalLimiter, SharedLimitTable  # noqa: E402
from relay.storage.limits import CellState, Charge, Decision, Limit  # noqa: E402
from relay.storage.memory import SharedMemoryStore  # noqa: E402

NEVER_OUT = Limit(1e9, 1.0, 1e9)
ONE = [Charge("k:key-1:rpm", NEVER_OUT)]
THREE = [
    Charge("k:key-1:rpm", NEVER_OUT),
    Charge("t:tenant-1:rpm", NEVER_OUT),
    Charge("t:tenant-1:tpm", NEVER_OUT, 1200.0),
]


def timed(loop: Callable[[int], None], calls: int, repeat: int) -> float:
    """Best per-call thread CPU time in ns of ``loop(calls)`` over ``repeat`` runs."""
    best = float("inf")
    loop(calls // 10)  # warm up
    for _ in range(repeat):
        start = time.thread_time_ns()
        loop(calls)
        best = min(best, (time.thread_time_ns() - start) / calls)
    return best


def store_loop(store: SharedMemoryStore, charges: list[Charge]) -> Callable[[int], None]:
    """``calls`` awaited takes inside one coroutine on uvloop."""

    async def run(calls: int) -> None:
        take = store.take
        for _ in range(calls):
            await take(charges)

    def loop(calls: int) -> None:
        coro: Coroutine[Any, Any, None] = run(calls)
        uvloop.run(coro)

    return loop


def table_loop(table: SharedLimitTable, charges: list[Charge]) -> Callable[[int], None]:
    def loop(calls: int) -> None:
        take = table.take
        for _ in range(calls):
            take(charges, CellState, Decision)

    return loop


def local_loop(limiter: LocalLimiter) -> Callable[[int], None]:
    def loop(calls: int) -> None:
        check = limiter.check
        for _ in range(calls):
            check("k:key-1:rpm", 1e9, 1.0, 1e9)

    return loop


def hammer(name: str, stop: Any) -> None:
    """The second process of ``--contended``: take on the same cells until told to stop."""
    table = SharedLimitTable.attach(name)
    while not stop.is_set():
        for _ in range(1000):
            table.take(THREE, CellState, Decision)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--contended", action="store_true")
    args = parser.parse_args()

    name = f"relay-bench-{os.getpid()}-{secrets.token_hex(4)}"
    store = SharedMemoryStore.create(name, 1 << 16)
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    other = ctx.Process(target=hammer, args=(name, stop)) if args.contended else None
    try:
        if other is not None:
            other.start()
        cases = [
            ("SharedMemoryStore.take, 1 charge", store_loop(store, ONE)),
            ("SharedMemoryStore.take, 3 charges", store_loop(store, THREE)),
            ("SharedLimitTable.take (no await), 1 charge", table_loop(store.table, ONE)),
            ("SharedLimitTable.take (no await), 3 charges", table_loop(store.table, THREE)),
            ("LocalLimiter.check, 1 charge", local_loop(LocalLimiter())),
        ]
        print(
            f"one decision, ns (thread CPU, best of {args.repeat} x {args.calls:,} calls"
            f"{', another process taking on the same cells' if other else ''}):"
        )
        for label, loop in cases:
            print(f"  {label:<44} {timed(loop, args.calls, args.repeat):8.0f}")
    finally:
        stop.set()
        if other is not None:
            other.join()
        store.unlink()


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    main()
