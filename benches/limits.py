"""Micro-benchmark: one rate-limit decision, in shared memory, in process and through Redis, in
one run.

    PYTHONPATH=python python3 benches/limits.py [--calls 200000] [--repeat 7] [--contended]
        [--redis-decisions 20000] [--redis HOST:PORT | --no-redis]

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
billion per second), so every decision is allowed and charges a cell.

Then through Redis (a throwaway redis-server on loopback unless ``--redis`` names one), on
uvloop, ``--redis-decisions`` per row:

* ``RedisStore.take`` with one and three charges (one EVALSHA of gcra.lua each, over 100 keys),
  one decision at a time (the round trip a request waits) and with 64 in flight (one worker's
  throughput; the store runs at most 32 calls at once, on connections it keeps): wall time and the client's CPU (``time.process_time``: redis-py, hiredis, the
  loop) per decision, and Redis' share: ``usec_per_call`` of EVALSHA (``INFO commandstats``)
  and the server's CPU (``used_cpu_user + used_cpu_sys`` of ``INFO cpu``) per decision;
* two floors for the client's share: a PING through redis-py, and a PING over a bare asyncio
  protocol parsed by ``hiredis.Reader`` (no pool, no client: the syscalls and the loop alone).

Figures are printed, never asserted. See benches/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import secrets
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import uvloop

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "python"), str(REPO)]

from relay.config.model import RedisConfig  # noqa: E402
from relay.native import LocalLimiter, SharedLimitTable  # noqa: E402
from relay.storage.limits import CellState, Charge, Decision, Limit  # noqa: E402
from relay.storage.memory import SharedMemoryStore  # noqa: E402
from relay.storage.redis import RedisStore  # noqa: E402

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


# Through Redis ------------------------------------------------------------------------------


def spread(n: int, i: int) -> list[Charge]:
    """ONE or THREE over 100 keys and 10 tenants (the ``i``-th decision)."""
    key, tenant = f"k:key-{i % 100}", f"t:tenant-{i % 10}"
    out = [Charge(f"{key}:rpm", NEVER_OUT)]
    if n == 3:
        out += [Charge(f"{tenant}:rpm", NEVER_OUT), Charge(f"{tenant}:tpm", NEVER_OUT, 1200.0)]
    return out


async def per_decision_us(
    decide: Callable[[int], Awaitable[object]], n: int, in_flight: int
) -> tuple[float, float]:
    """(wall us, client CPU us) per decision with ``in_flight`` at once, after a warm-up."""
    for i in range(min(n, 1000)):  # connections open, script loaded
        await decide(i)
    cpu, start = time.process_time(), time.perf_counter()
    if in_flight == 1:
        for i in range(n):
            await decide(i)
    else:
        queue = iter(range(n))

        async def worker() -> None:
            for i in queue:
                await decide(i)

        await asyncio.gather(*(worker() for _ in range(in_flight)))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return wall / n * 1e6, cpu / n * 1e6


def info(address: str, section: str) -> dict[str, str]:
    """``INFO section`` of the Redis at ``address`` (a plain socket: no client)."""
    host, _, port = address.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(f"INFO {section}\r\n".encode())
        data = b""
        while True:
            data += conn.recv(65536)
            head, _, body = data.partition(b"\r\n")
            if len(body) >= int(head[1:]) + 2:
                break
    pairs = (line.partition(":") for line in body.decode().splitlines())
    return {key: value for key, sep, value in pairs if sep}


def server_cpu_s(address: str) -> float:
    cpu = info(address, "cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def evalsha_us(address: str) -> float:
    stats = info(address, "commandstats").get("cmdstat_evalsha", "")
    fields = dict(part.split("=") for part in stats.split(",") if "=" in part)
    return float(fields.get("usec_per_call", "nan"))


class _BareProtocol(asyncio.Protocol):
    """The floor: each parsed reply resolves the oldest waiter."""

    def __init__(self) -> None:
        import hiredis

        self.reader = hiredis.Reader()
        self.waiting: list[asyncio.Future[Any]] = []

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            self.waiting.pop(0).set_result(reply)


async def redis_rows(address: str, n: int) -> list[tuple[str, int, str, str, str, str]]:
    """(case, in flight, wall, client CPU, EVALSHA in Redis, Redis CPU) per row."""
    loop = asyncio.get_running_loop()
    host, _, port = address.rpartition(":")
    transport, bare = await loop.create_connection(_BareProtocol, host, int(port))

    async def bare_ping(_: int) -> object:
        future = loop.create_future()
        bare.waiting.append(future)
        transport.write(b"*1\r\n$4\r\nPING\r\n")
        return await future

    store = RedisStore.from_config(RedisConfig(address=address, timeout_ms=5000))
    store.prefix = "relay:bench:"
    rows = []
    try:
        for label, ping in (("PING, bare hiredis protocol", bare_ping), ("PING, redis-py", None)):
            call = ping or (lambda _: store.client.ping())
            wall, cpu = await per_decision_us(call, n, 1)
            rows.append((label, 1, f"{wall:.0f}", f"{cpu:.0f}", "", ""))
        for count in (1, 3):
            batches = [spread(count, i) for i in range(100)]
            for in_flight in (1, 64):
                await store.client.config_resetstat()
                before = server_cpu_s(address)
                wall, cpu = await per_decision_us(
                    lambda i, b=batches: store.take(b[i % 100]), n, in_flight
                )
                server = (server_cpu_s(address) - before) / (n + min(n, 1000)) * 1e6
                label = f"RedisStore.take, {count} charge{'s' if count > 1 else ''}"
                rows.append(
                    (label, in_flight, f"{wall:.0f}", f"{cpu:.0f}", f"{evalsha_us(address):.0f}",
                     f"{server:.0f}")
                )  # fmt: skip
    finally:
        transport.close()
        await store.close()
    return rows


def redis_part(address: str | None, n: int) -> None:
    server = None
    if address is None:
        from tests.services.redis import RedisServer

        server = RedisServer()
        address = server.address
    try:
        rows = uvloop.run(redis_rows(address, n))
    finally:
        if server is not None:
            server.destroy()
    print(f"through Redis at {address}, us per decision ({n:,} decisions a row):")
    print(
        f"  {'':<44}{'in flight':>10}{'wall':>7}{'client CPU':>12}{'EVALSHA':>9}{'Redis CPU':>11}"
    )
    for label, in_flight, wall, cpu, script, server_cpu in rows:
        print(f"  {label:<44}{in_flight:>10}{wall:>7}{cpu:>12}{script:>9}{server_cpu:>11}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--contended", action="store_true")
    parser.add_argument("--redis-decisions", type=int, default=20_000)
    parser.add_argument("--redis", metavar="HOST:PORT", help="default: start a redis-server")
    parser.add_argument("--no-redis", action="store_true", help="shared memory only")
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
    if not args.no_redis:
        redis_part(args.redis, args.redis_decisions)


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    main()
