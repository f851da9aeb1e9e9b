"""What hot reload costs a request, in process: the same request through the app granian
serves under ``relay serve`` (``LiveApp``, which hands each request to the current app) and
through the app alone (reload off), in alternating rounds; plus the worker's periodic check
for a new configuration and one swap.

    python3 benches/reload.py [--requests 20000] [--rounds 7]

CPU time of the thread, best of the rounds (see inprocess.py for the stand-ins).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import msgspec

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "python"), str(REPO)]

from benches.inprocess import (  # noqa: E402
    CONFIG,
    CORE,
    Proto,
    Scope,
    body_of,
    in_memory,
    per_request,
)
from relay.app import RelayApp  # noqa: E402
from relay.config import parse_config  # noqa: E402
from relay.live import LiveApp  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    quiet = "server: {access_log: false}\n"  # no access lines in the output
    config = parse_config(CONFIG + CORE + quiet, "bench")
    path = Path(tempfile.mkdtemp()) / "config.json"
    path.write_bytes(msgspec.json.encode(config))
    static = in_memory(RelayApp(config))
    live = LiveApp(path)
    in_memory(live.app)
    loop = asyncio.new_event_loop()
    cases = [("JSON, tiny body", body_of(20, False)), ("stream, 24 events", body_of(20, True))]
    print(f"{'case':<20}{'reload off':>12}{'LiveApp':>12}{'added':>10}   (us CPU per request)")
    for name, body in cases:
        n = args.requests if "JSON" in name else args.requests // 4
        off: list[float] = []
        on: list[float] = []
        for _ in range(args.rounds):
            off.append(loop.run_until_complete(per_request(static, body, n)))
            on.append(loop.run_until_complete(per_request(live, body, n)))  # type: ignore[arg-type]
        print(f"{name:<20}{min(off):>12.2f}{min(on):>12.2f}{min(on) - min(off):>+10.2f}")

    # The hand-over alone: the coroutine made and dropped, without running it.
    scope, proto = Scope(10), Proto(b"{}")
    calls = 200000
    hand: dict[str, list[float]] = {"off": [], "on": []}
    for _ in range(args.rounds):
        for label, target in (("off", static), ("on", live)):
            start = time.thread_time_ns()
            for _ in range(calls):
                target.__rsgi__(scope, proto).close()  # type: ignore[attr-defined]
            hand[label].append((time.thread_time_ns() - start) / calls)
    off_ns, on_ns = min(hand["off"]), min(hand["on"])
    print(
        f"hand-over per request: {off_ns:.0f} ns off, {on_ns:.0f} ns LiveApp ({on_ns - off_ns:+.0f} ns)"
    )

    # The check a worker makes every POLL_S when nothing changed: one stat().
    checks = 20000
    start = time.thread_time_ns()
    for _ in range(checks):
        loop.run_until_complete(live.check())
    per_check = (time.thread_time_ns() - start) / checks / 1000
    print(f"idle check (every 0.25 s per worker): {per_check:.1f} us CPU")

    # One swap: a new app built on the current one's state.
    swaps = []
    for i in range(20):
        server = f"server: {{access_log: false, body_timeout_s: {10 + i}}}\n"
        fresh = parse_config(CONFIG + CORE + server, "bench")
        path.write_bytes(msgspec.json.encode(fresh))
        start = time.thread_time_ns()
        swapped = loop.run_until_complete(live.check())
        swaps.append((time.thread_time_ns() - start) / 1e6)
        assert swapped
    print(f"one swap (decode + build the new app), best of 20: {min(swaps):.2f} ms CPU")


if __name__ == "__main__":
    main()
