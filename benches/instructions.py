"""Instructions per request and per relayed event, counted by valgrind's callgrind: the same
number on every run whatever else the machine is doing, so two revisions compare exactly.

    python3 benches/instructions.py [--tree DIR ...] [--hook] [--requests 1000]

For each tree (a checkout whose ``python/`` holds relay and its built extension; default: this
one) and each case, the in-process app of ``benches/inprocess.py`` (granian and aiohttp replaced
by stand-ins; here only the pool's ``send`` is, so every revision runs its own request
building) serves 0 and then ``--requests`` requests under callgrind; the difference divided by
the count is the marginal cost of one request, start-up excluded. Per event: the 124-event
stream minus the 24-event one, over 100. ``--hook`` installs one no-op stream and answer hook.
Each run takes about 25 s (the interpreter's start under valgrind); the runs go two at a time.
Instructions are not time (a cache miss costs more than an add) but on one machine and one
interpreter they move with it: calibrated against thread CPU on a quiet run, about 8,000 to
9,000 of Relay's Python instructions make a microsecond here.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import tempfile
from pathlib import Path

from callgrind import instructions

HERE = Path(__file__).resolve().parent
CASES = ("tiny", "40k", "s24", "s124")

RUNNER = """
import asyncio, sys
sys.path.insert(0, {benches!r})
import inprocess as b
from relay.app import RelayApp
from relay.config import parse_config
LONG = b'"max_tokens":%d' % (len(b.LONG_FRAMES) - 4)
async def send(provider, url, headers, body, timeouts, *, stream, url_encoded=False):
    long = body.rfind(LONG, max(0, len(body) - 300)) >= 0
    return b.Canned(stream, b.LONG_FRAMES if long else b.FRAMES)
case, n, hook = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
bodies = {{"tiny": b.body_of(20, False), "40k": b.body_of(40960, False),
          "s24": b.body_of(20, True), "s124": b.body_of(20, True, long=True)}}
async def main():
    config = parse_config(b.CONFIG + b.CORE, "bench")
    if hook:
        from relay.app import Extensions
        app = RelayApp(config, Extensions(stream_hooks=(b.NoOp(),), answer_hooks=(b.NoOp(),)))
    else:
        app = RelayApp(config)
    app.pool.send = send
    body = bodies[case]
    scope, proto = b.Scope(len(body)), b.Proto(body)
    for _ in range(50 + n):
        await app.__rsgi__(scope, proto)
asyncio.run(main())
"""


def count(tree: Path, runner: Path, case: str, n: int, hook: bool) -> int:
    """Instructions of one run (callgrind's total)."""
    return instructions(tree, [str(runner), case, str(n), "1" if hook else "0"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", type=Path, help="a checkout (repeatable)")
    parser.add_argument("--hook", action="store_true", help="one no-op stream and answer hook")
    parser.add_argument("--requests", type=int, default=1000)
    args = parser.parse_args()
    trees = args.tree or [HERE.parent]
    with tempfile.TemporaryDirectory() as tmp:
        jobs = {}
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            for tree in trees:
                runner = Path(tmp) / f"run-{len(jobs)}.py"
                runner.write_text(RUNNER.format(benches=str(tree / "benches")))
                for case in CASES:
                    for n in (0, args.requests):
                        key = (str(tree), case, n)
                        jobs[key] = pool.submit(count, tree, runner, case, n, args.hook)
        totals = {key: job.result() for key, job in jobs.items()}
    print(f"{'tree':<40}{'case':>8}{'instructions per request':>28}")
    for tree in trees:
        per = {}
        for case in CASES:
            per[case] = totals[(str(tree), case, args.requests)] - totals[(str(tree), case, 0)]
            per[case] /= args.requests
            print(f"{str(tree)[-40:]:<40}{case:>8}{per[case]:>28,.0f}")
        event = (per["s124"] - per["s24"]) / 100
        print(f"{str(tree)[-40:]:<40}{'event':>8}{event:>28,.0f}")


if __name__ == "__main__":
    main()
