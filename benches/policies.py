"""CPU per request that prompt policies add, in process, side by side with no policies.

    PYTHONPATH=python python3 benches/policies.py [--requests 10000] [--rounds 7]

The real app (the policies stage, routing, the attempt loop, the answer and stream hooks,
accounting) with granian and aiohttp replaced by benches/inprocess.py's in-memory stand-ins,
so only Relay's code is timed (thread CPU, best of ``--rounds``, the two apps taken in turns
so that a busy moment of a shared machine hits them alike). ``policies`` is a typical pair:

* a ``rewrite`` (a system prefix with two template variables, ``temperature`` forced,
  ``max_tokens`` capped, ``logit_bias`` forbidden),
* a ``guardrail`` (two input regexes and a deny list, one output regex, ``max_prompt_tokens``).

Bodies: a tiny prompt, a 1k-token prompt (about 4 KB), and a stream of 24 events (each event's
text scanned by the output guard). Figures are printed, never asserted (benches/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "python"), str(REPO)]

from benches.inprocess import CONFIG, CORE, body_of, in_memory, per_request  # noqa: E402
from relay.app import RelayApp  # noqa: E402
from relay.config import parse_config  # noqa: E402

POLICIES = """
policies:
  style:
    kind: rewrite
    system_prefix: "Answer briefly. Tenant {tenant}, model {model}."
    set: {temperature: 0}
    cap: {max_tokens: 512}
    forbid: [logit_bias]
  guard:
    kind: guardrail
    input_deny: ["(?i)ignore (all )?previous instructions", "(?i)system prompt"]
    input_deny_terms: [project aurora, zeta-9]
    output_deny: ["(?i)internal use only"]
    max_prompt_tokens: 8000
middleware: [style, guard]
"""
CASES = [
    ("JSON, tiny prompt", 20, False),
    ("JSON, 1k-token prompt", 4300, False),
    ("stream, 24 events", 20, True),
]


def app_for(policies: bool) -> RelayApp:
    text = CONFIG + CORE + (POLICIES if policies else "")
    return in_memory(RelayApp(parse_config(text, "bench")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    apps = {"none": app_for(False), "policies": app_for(True)}
    loop = asyncio.new_event_loop()
    print(f"{'case':<24}{'no policies':>14}{'rewrite+guard':>16}{'added':>10}   (us CPU/request)")
    for name, size, stream in CASES:
        body = body_of(size, stream)
        n = args.requests // (4 if stream else 1)
        best = {key: float("inf") for key in apps}
        for _ in range(args.rounds):
            for key, app in apps.items():
                best[key] = min(best[key], loop.run_until_complete(per_request(app, body, n)))
        added = best["policies"] - best["none"]
        print(f"{name:<24}{best['none']:>14.1f}{best['policies']:>16.1f}{added:>+10.1f}")


if __name__ == "__main__":
    main()
