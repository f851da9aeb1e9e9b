"""What Prometheus metrics add per request: the in-process app of ``inprocess.py`` with
``metrics.enabled`` true against false, in one run, in turns.

    PYTHONPATH=python python3 benches/metrics.py [--requests 20000] [--rounds 7] [--instructions]

Metrics are written as under ``relay serve`` (prometheus-client's multiprocess files, in a
temporary directory), and the periodic flush is included: every ``--flush-every`` requests
(500: one flush a second at 500 requests/s, a worker's flush interval by default) the app's
metrics are flushed inside the timed loop. Thread CPU time, best of ``--rounds``, on and off
alternating, for a tiny JSON request and a 24-event stream.

``--instructions`` counts instructions under valgrind's callgrind instead (exact on a busy
machine; see ``instructions.py``): 0 and ``--requests`` requests with metrics on and off,
the difference per request; about 8,000 to 9,000 instructions make a microsecond here.
Figures are printed, never asserted. See benches/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "python"), str(HERE)]

OFF = "metrics: {enabled: false}\n"
ON = "metrics: {enabled: true}\n"

RUNNER = """
import asyncio, os, sys, tempfile
os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp()
sys.path.insert(0, {benches!r})
import inprocess as b
from relay.app import RelayApp
from relay.config import parse_config
case, n = sys.argv[1], int(sys.argv[2])
body = b.body_of(20, case == "s24")
async def main():
    app = b.in_memory(RelayApp(parse_config(b.CONFIG + b.CORE + {extra!r}, "bench")))
    scope, proto = b.Scope(len(body)), b.Proto(body)
    for i in range(50 + n):
        await app.__rsgi__(scope, proto)
        if app.metrics is not None and i % 500 == 0:
            app.metrics.flush()
asyncio.run(main())
"""


async def per_request(app: object, body: bytes, n: int, flush_every: int) -> float:
    import inprocess as b

    scope, proto = b.Scope(len(body)), b.Proto(body)
    metrics = getattr(app, "metrics", None)
    rsgi = app.__rsgi__  # type: ignore[attr-defined]
    for _ in range(200):
        await rsgi(scope, proto)
    start = time.thread_time_ns()
    for i in range(n):
        await rsgi(scope, proto)
        if metrics is not None and i % flush_every == 0:
            metrics.flush()
    if metrics is not None:
        metrics.flush()
    return (time.thread_time_ns() - start) / n / 1000


def cpu_main(requests: int, rounds: int, flush_every: int) -> None:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="relay-bench-metrics-")
    import inprocess as b

    from relay.app import RelayApp
    from relay.config import parse_config

    apps = {
        label: b.in_memory(RelayApp(parse_config(b.CONFIG + b.CORE + extra, "bench")))
        for label, extra in (("off", OFF), ("on", ON))
    }
    assert apps["on"].metrics is not None and apps["off"].metrics is None
    cases = [("JSON, tiny body", b.body_of(20, False)), ("stream, 24 events", b.body_of(20, True))]
    loop = asyncio.new_event_loop()
    print(f"{'case':<20}{'off us':>10}{'on us':>10}{'added us':>10}   (best of {rounds})")
    for name, body in cases:
        best = {"off": float("inf"), "on": float("inf")}
        for _ in range(rounds):
            for label, app in apps.items():
                took = loop.run_until_complete(per_request(app, body, requests, flush_every))
                best[label] = min(best[label], took)
        added = best["on"] - best["off"]
        print(f"{name:<20}{best['off']:>10.1f}{best['on']:>10.1f}{added:>10.1f}")


def instructions_main(requests: int) -> None:
    from instructions import count

    tree = HERE.parent
    with tempfile.TemporaryDirectory() as tmp:
        runners = {}
        for label, extra in (("off", OFF), ("on", ON)):
            runners[label] = Path(tmp) / f"run-{label}.py"
            runners[label].write_text(RUNNER.format(benches=str(HERE), extra=extra))
        jobs = {}
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            for label, runner in runners.items():
                for case in ("tiny", "s24"):
                    for n in (0, requests):
                        jobs[label, case, n] = pool.submit(count, tree, runner, case, n, False)
        totals = {key: job.result() for key, job in jobs.items()}
    print(f"{'case':<8}{'off':>14}{'on':>14}{'added':>14}  instructions per request")
    for case in ("tiny", "s24"):
        per = {
            label: (totals[label, case, requests] - totals[label, case, 0]) / requests
            for label in ("off", "on")
        }
        print(f"{case:<8}{per['off']:>14,.0f}{per['on']:>14,.0f}{per['on'] - per['off']:>14,.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--flush-every", type=int, default=500)
    parser.add_argument("--instructions", action="store_true", help="count under callgrind")
    args = parser.parse_args()
    if args.instructions:
        instructions_main(min(args.requests, 2000))
    else:
        cpu_main(args.requests, args.rounds, args.flush_every)


if __name__ == "__main__":
    main()
