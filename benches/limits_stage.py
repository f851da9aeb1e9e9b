"""CPU per request the limits stage adds, in process, side by side with limits off.

    PYTHONPATH=python python3 benches/limits_stage.py [--requests 20000] [--rounds 7]

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
shared-memory table (as under ``relay serve``, where every worker maps one). Figures are
printed, never asserted. See benches/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "python"), str(REPO)]

from benches.inprocess import CONFIG, CORE, Proto, Scope, body_of, in_memory  # noqa: E402
from relay.app import Extensions, RelayApp  # noqa: E402
from relay.config import parse_config  # noqa: E402
from relay.exchange import Exchange, Limits, Principal  # noqa: E402

NEVER_OUT = 10**12


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
    tenant = Limits(tokens_per_minute=NEVER_OUT) if case == "key rpm + tenant TPM" else None
    # Keys carry limits under auth.mode keys; here a default TPM lists the same rule without
    # a database (the tenant's own TPM, when set, is the one charged).
    text = CONFIG + CORE + ("limits: {tokens_per_minute: 1000000000000}\n" if key else "")
    app = RelayApp(parse_config(text, "bench"), Extensions(gates=(AsKey(key, tenant),)))
    in_memory(app)
    if case == "key rpm":  # no TPM at all: the default is only there to list the rule
        app.stages[1].rules[0]._default_tpm = None  # type: ignore[attr-defined]
    return app


async def per_request(app: RelayApp, body: bytes, n: int) -> float:
    scope, proto = Scope(len(body)), Proto(body)
    scope.client = "127.0.0.1:40000"  # type: ignore[attr-defined]
    for _ in range(200):
        await app.__rsgi__(scope, proto)
    start = time.thread_time_ns()
    for _ in range(n):
        await app.__rsgi__(scope, proto)
    return (time.thread_time_ns() - start) / n / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    cases = ("off", "key rpm", "key rpm + tenant TPM")
    apps = {case: app_for(case) for case in cases}
    bodies = [("JSON, tiny body", body_of(20, False)), ("stream, 24 events", body_of(20, True))]
    loop = asyncio.new_event_loop()
    print(f"us CPU per request, best of {args.rounds} x {args.requests}")
    print(f"{'body':<20}" + "".join(f"{c:>24}" for c in cases))
    for name, body in bodies:
        best = {case: float("inf") for case in cases}
        n = args.requests if "JSON" in name else args.requests // 4
        for _ in range(args.rounds):
            for case in cases:
                best[case] = min(
                    best[case], loop.run_until_complete(per_request(apps[case], body, n))
                )
        off = best["off"]
        cells = [f"{best['off']:.1f}"] + [
            f"{best[c]:.1f} (+{best[c] - off:.1f})" for c in cases[1:]
        ]
        print(f"{name:<20}" + "".join(f"{c:>24}" for c in cells))


if __name__ == "__main__":
    main()
