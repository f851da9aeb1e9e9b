"""What routing costs: CPU per request of the router and the attempt policy in process, and
the latency a retry and a fallback add beyond the upstream's own time, through the real server.

    python3 benches/routing.py [--calls 200000] [--requests 300]

Part 1 (in process, no network): one request's routing work, ``Router`` + ``RoutingPolicy``
(a model of three weighted targets, breakers on, the retry budget counted, the request's
timeouts looked up, the success recorded), against the core path (the plan looked up in a
dict, the first deployment, no policy), each timed over many calls with
``time.thread_time_ns`` (CPU) and ``time.perf_counter_ns`` (wall). The figure that matters is
the difference. Part 2 (real server, fake providers on loopback, one request at a time):
``x-relay-overhead-ms`` (gateway time minus time waiting on providers) of a plain request, a
request whose first target fails (a retry on the model's second target), and a request whose
model fails and falls back to a model on a second provider; medians.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "python"), str(ROOT)]
# The gateway process must run this checkout too, not an installed Relay.
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(ROOT / "python"), *filter(None, [os.environ.get("PYTHONPATH")])]
)

from relay.config import parse_config  # noqa: E402
from relay.exchange import Attempt, Endpoint, Exchange  # noqa: E402
from relay.forward.loop import FirstAnswer  # noqa: E402
from relay.routing.policy import RoutingPolicy  # noqa: E402
from relay.routing.router import Router  # noqa: E402

CONFIG = """
providers:
  a: {kind: openai, base_url: "http://a/v1"}
  b: {kind: openai, base_url: "http://b/v1"}
  c: {kind: openai, base_url: "http://c/v1"}
models:
  three:
    targets:
      - {provider: a, model: m1, weight: 5}
      - {provider: b, model: m2, weight: 3}
      - {provider: c, model: m3, weight: 2}
    retries: 2
    fallbacks: [one]
  one: {provider: a, model: m4}
"""


def drive(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never suspends (no event loop needed)."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    raise RuntimeError("the coroutine suspended")


def measure(step: Callable[[], None], calls: int) -> tuple[float, float]:
    """Median over 5 runs of (CPU ns, wall ns) per call."""
    cpu, wall = [], []
    for _ in range(5):
        gc.collect()
        t0, w0 = time.thread_time_ns(), time.perf_counter_ns()
        for _ in range(calls):
            step()
        cpu.append((time.thread_time_ns() - t0) / calls)
        wall.append((time.perf_counter_ns() - w0) / calls)
    return statistics.median(cpu), statistics.median(wall)


def in_process(calls: int) -> dict[str, tuple[float, float]]:
    config = parse_config(CONFIG, "bench", {})
    router = Router(config)
    policy = RoutingPolicy(router)
    first = FirstAnswer()
    headers: dict[str, str] = {}
    plans = {"three": router.routes["three"].balancer.orders[0]}

    def exchange() -> Exchange:
        return Exchange("req", Endpoint.CHAT, b"", headers, model="three")

    def bare() -> None:  # the exchange and the attempt alone: subtracted from both
        ex = exchange()
        ex.attempts.append(Attempt(plans["three"][0], 0))

    def core() -> None:
        ex = exchange()
        plan = plans.get(ex.model)
        assert plan is not None
        ex.plan, ex.deployment = plan, plan[0]
        deployment = drive(first.next(ex, None, None))
        attempt = Attempt(deployment, 0, timeouts=first.timeouts(ex, deployment))
        ex.attempts.append(attempt)
        attempt.started, attempt.headers_at = 1.0, 1.001
        first.finished(ex, attempt, None)

    def routed() -> None:
        ex = exchange()
        drive(router(ex))
        deployment = drive(policy.next(ex, None, None))
        attempt = Attempt(deployment, 0, timeouts=policy.timeouts(ex, deployment))
        ex.attempts.append(attempt)
        attempt.started, attempt.headers_at = 1.0, 1.001  # a time to first byte to average
        policy.finished(ex, attempt, None)

    for step in (bare, core, routed):  # warm up
        measure(step, calls // 10)
    return {
        name: measure(step, calls)
        for name, step in (("bare", bare), ("core", core), ("routed", routed))
    }


def through_server(requests: int) -> dict[str, float]:
    from tests.fakes.openai_upstream import start_fake_upstream
    from tests.integration.gateway import Gateway

    key = "sk-bench"
    with start_fake_upstream(key) as a, start_fake_upstream(key) as b:
        config = {
            "server": {"log_level": "warning"},
            "providers": {
                "a": {"kind": "openai", "base_url": a.base_url, "api_key": key},
                "b": {"kind": "openai", "base_url": b.base_url, "api_key": key},
            },
            "routing": {"retry_budget": {"ratio": 1.0, "min_retries": 100000}},
            "models": {
                "plain": {"provider": "a", "model": "gpt-4o-mini"},
                # The first target always fails; the second (weight 0: never first) answers.
                "retry": {
                    "targets": [
                        {"provider": "a", "model": "fault-503-all-bench"},
                        {"provider": "a", "model": "gpt-4o-mini", "weight": 0},
                    ]
                },
                "fallback": {
                    "provider": "a",
                    "model": "fault-500-all-bench",
                    "retries": 0,
                    "fallbacks": ["backup"],
                },
                "backup": {"provider": "b", "model": "gpt-4o-mini"},
            },
        }
        # Breakers would (rightly) stop calling the always-failing deployments.
        config["routing"]["breaker"] = {"enabled": False}  # type: ignore[index]
        gateway = Gateway(config, Path(tempfile.mkdtemp()))
        try:
            body = b'{"model":"%s","messages":[{"role":"user","content":"hello world"}]}'
            out: dict[str, float] = {}
            for model in ("plain", "retry", "fallback"):
                overhead, attempts = [], set()
                for i in range(requests + 20):
                    request = urllib.request.Request(
                        gateway.base_url + "/chat/completions",
                        data=body % model.encode(),
                        headers={"content-type": "application/json"},
                    )
                    with urllib.request.urlopen(request, timeout=10) as response:
                        response.read()
                        if i >= 20:  # warm-up
                            overhead.append(float(response.headers["x-relay-overhead-ms"]))
                            attempts.add(response.headers["x-relay-attempts"])
                out[model] = statistics.median(overhead)
                out[model + " attempts"] = float(max(attempts))
            return out
        finally:
            gateway.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--no-server", action="store_true", help="part 1 only")
    args = parser.parse_args()
    figures = in_process(args.calls)
    bare = figures["bare"]
    print(f"in process, {args.calls} calls x 5 runs (median), per request:")
    print("  path                          CPU us   wall us   minus exchange+attempt (CPU us)")
    for name, label in (
        ("core", "core path (plan lookup)"),
        ("routed", "router + policy, 3 targets"),
    ):
        cpu, wall = figures[name]
        print(
            f"  {label:28s} {cpu / 1000:7.3f}  {wall / 1000:7.3f}   {(cpu - bare[0]) / 1000:7.3f}"
        )
    added = (figures["routed"][0] - figures["core"][0]) / 1000
    print(f"  routing adds {added:.3f} us of CPU per request over the core path (target: <= 10)")
    if args.no_server:
        return
    out = through_server(args.requests)
    print(
        f"\nthrough the server, {args.requests} sequential requests each, median x-relay-overhead-ms:"
    )
    for model in ("plain", "retry", "fallback"):
        extra = out[model] - out["plain"]
        print(
            f"  {model:9s} {out[model]:6.3f} ms  ({int(out[model + ' attempts'])} attempts; "
            f"{extra:+.3f} ms beyond the plain request)"
        )


if __name__ == "__main__":
    main()
