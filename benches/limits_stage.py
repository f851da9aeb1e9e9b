"""CPU per request the limits stage adds, in process, side by side with limits off.

    PYTHONPATH=python python3 benches/limits_stage.py [--requests 20000] [--rounds 7]
        [--instructions]

The real app (auth, the limits stage and its settler, routing, the attempt loop, accounting)
with granian and aiohttp replaced by benches/inprocess.py's in-memory stand-ins, so only
Relay's code is timed (thread CPU, best of ``--rounds``, the cases taken in turns so that a
busy moment of a shared machine hits them alike). The caller is a gateway key of a tenant (a
gate puts the principal on each request, as ``auth.mode: keys`` does), with:

* ``off``: no limit anywhere (the stage and its settler are not listed);
* ``key rpm``: the key's requests per minute (one charge; the prompt is not counted);
* ``key rpm + tenant TPM``: and its tenant's tokens per minute (two charges, the prompt
  counted, the reservation settled after the last byte).

The limits never run out, so every request is allowed and charges its cells, in a private
shared-memory table (as under ``relay serve``, where every worker maps one).

``--instructions`` counts instructions under valgrind's callgrind instead (exact on a busy
machine, see ``instructions.py``): 0 and ``--requests`` (at most 2,000) requests of each case,
the difference per request; about 8,000 to 9,000 instructions make a microsecond here.
Figures are printed, never asserted. See benches/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "python"), str(REPO)]

from benches.inprocess import CONFIG, CORE, body_of, in_memory, per_request  # noqa: E402
from relay.app import Extensions, RelayApp  # noqa: E402
from relay.config import parse_config  # noqa: E402
from relay.exchange import Exchange, Limits, Principal  # noqa: E402
from relay.limits.budget import BudgetRule  # noqa: E402
from relay.limits.budget_watch import BudgetWatch  # noqa: E402
from relay.limits.rules import PrincipalRule  # noqa: E402
from relay.limits.stage import LimitsStage  # noqa: E402

NEVER_OUT = 10**12
CASES = ("off", "key rpm", "key rpm + tenant TPM", "+ tenant budget")
BODIES = {"tiny": ("JSON, tiny body", False), "s24": ("stream, 24 events", True)}
# One run under callgrind: ``case`` is "<limits case>:<body>", then the number of requests.
RUNNER = """
import asyncio, sys
sys.path.insert(0, {root!r})
from benches.limits_stage import BODIES, app_for
from benches.inprocess import Proto, Scope, body_of
limits, kind = sys.argv[1].split(":")
n = int(sys.argv[2])
body = body_of(20, BODIES[kind][1])
async def main():
    app = app_for(limits)
    scope, proto = Scope(len(body)), Proto(body)
    for _ in range(50 + n):
        await app.__rsgi__(scope, proto)
asyncio.run(main())
"""


class AsKey:
    """A gate that makes every caller the same key of one tenant, with ``key``/``tenant``
    limits (what ``KeyAuth`` does from its cache)."""

    def __init__(self, key: Limits | None, tenant: Limits | None) -> None:
        self.key, self.tenant = key, tenant

    def admit(self, ex: Exchange) -> None:
        ex.principal = Principal(
            tenant="bench",
            key_id="key_bench",
            tenant_id="ten_bench",
            key_limits=self.key,
            tenant_limits=self.tenant,
        )


def app_for(case: str) -> RelayApp:
    key = Limits(rate_limit_rpm=NEVER_OUT) if case != "off" else None
    tenant = None
    if case == "key rpm + tenant TPM":
        tenant = Limits(tokens_per_minute=NEVER_OUT)
    elif case == "+ tenant budget":  # a month's budget that never runs out, its alert watched
        tenant = Limits(tokens_per_minute=NEVER_OUT, budget_usd=1e9)
    # Keys carry limits under auth.mode keys; here a default TPM lists the same rule without
    # a database (the tenant's own TPM, when set, is the one charged).
    text = CONFIG + CORE + ("limits: {tokens_per_minute: 1000000000000}\n" if key else "")
    app = RelayApp(parse_config(text, "bench"), Extensions(gates=(AsKey(key, tenant),)))
    in_memory(app)
    if case == "key rpm":  # no TPM at all: the default was only there to list the rule
        stage = app.stages[1]
        assert isinstance(stage, LimitsStage)
        stage.rules = (PrincipalRule(),)
    if case == "+ tenant budget":  # budgets are listed under auth.mode keys or none
        stage = app.stages[1]
        assert isinstance(stage, LimitsStage)
        budgets = BudgetRule()
        stage.rules = (*stage.rules, budgets)
        pipeline = app.api.pipeline
        pipeline.settlers = (*pipeline.settlers, BudgetWatch(budgets, stage.store))
    return app


def cpu_main(requests: int, rounds: int) -> None:
    apps = {case: app_for(case) for case in CASES}
    loop = asyncio.new_event_loop()
    print(f"us CPU per request, best of {rounds} x {requests}")
    print(f"{'body':<20}" + "".join(f"{c:>24}" for c in CASES))
    for name, stream in BODIES.values():
        body = body_of(20, stream)
        best = {case: float("inf") for case in CASES}
        n = requests if not stream else requests // 4
        for _ in range(rounds):
            for case in CASES:
                took = loop.run_until_complete(per_request(apps[case], body, n))
                best[case] = min(best[case], took)
        off = best["off"]
        cells = [f"{off:.1f}"] + [f"{best[c]:.1f} (+{best[c] - off:.1f})" for c in CASES[1:]]
        print(f"{name:<20}" + "".join(f"{c:>24}" for c in cells))


def instructions_main(requests: int) -> None:
    from benches.instructions import count

    with tempfile.TemporaryDirectory() as tmp:
        runner = Path(tmp) / "run.py"
        runner.write_text(RUNNER.format(root=str(REPO)))
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            jobs = {
                (case, kind, n): pool.submit(count, REPO, runner, f"{case}:{kind}", n, False)
                for case in CASES
                for kind in BODIES
                for n in (0, requests)
            }
            totals = {key: job.result() for key, job in jobs.items()}
    print(f"instructions per request (callgrind, {requests} requests)")
    print(f"{'body':<20}" + "".join(f"{c:>24}" for c in CASES))
    for kind, (name, _) in BODIES.items():
        per = {c: (totals[c, kind, requests] - totals[c, kind, 0]) / requests for c in CASES}
        off = per["off"]
        cells = [f"{off:,.0f}"] + [f"{per[c]:,.0f} (+{per[c] - off:,.0f})" for c in CASES[1:]]
        print(f"{name:<20}" + "".join(f"{c:>24}" for c in cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--instructions", action="store_true", help="count under callgrind")
    args = parser.parse_args()
    if args.instructions:
        instructions_main(min(args.requests, 2000))
    else:
        cpu_main(args.requests, args.rounds)


if __name__ == "__main__":
    main()
