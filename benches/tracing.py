#!/usr/bin/env python3
"""What the access line and OpenTelemetry cost per request, in one run.

Through the server: three gateways in front of the fake OpenAI provider, measured in turns
(one request at a time on a kept-alive connection, the gateway's CPU read from ``/proc`` for
all its processes and threads, the exporters' threads included):

  off      ``server.access_log: false``, no telemetry
  access   the access line (the default), no telemetry
  tracing  the access line, and spans and metrics to a local OTLP collector (http/protobuf;
           a small aiohttp server in this process that reads and counts what it receives)

In process: the pieces alone (the ``traceparent`` an attempt sends, the access line to a
discarding stream, the telemetry tap building two spans and four metric points).

    PYTHONPATH=python python3 benches/tracing.py [--count 1000] [--turns 5]
    PYTHONPATH=python python3 benches/tracing.py --instructions [--requests 1000]

``--instructions`` counts instructions under valgrind's callgrind instead (exact on a busy
machine; see ``instructions.py``), in process (``inprocess.py``'s app, granian and aiohttp
replaced by in-memory stand-ins): 0 and ``--requests`` requests of each variant, the
difference per request. There the span exporter encodes each batch exactly as the OTLP
exporter does (``encode_spans``) and drops it instead of posting it; metrics are collected once
at the end. About 8,000 to 9,000 instructions make a microsecond on this machine.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "python"), str(ROOT)]

from benches.translation import tree_cpu  # noqa: E402


def per_call_us(fn: Callable[[], object], seconds: float = 0.5) -> float:
    """Median over 5 rounds of the CPU time per call of ``fn``."""
    rounds = []
    for _ in range(5):
        n, start = 0, time.process_time()
        while time.process_time() - start < seconds / 5:
            for _ in range(100):
                fn()
            n += 100
        rounds.append((time.process_time() - start) / n * 1e6)
    return statistics.median(rounds)


def in_process() -> dict[str, float]:
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    from relay.config.model import TelemetryConfig
    from relay.exchange import Attempt, Deployment, Endpoint, Exchange, Principal, Usage
    from relay.obs.log import AccessLog, RelayHandler
    from relay.obs.trace import Tracing
    from relay.obs.trace_sdk import TelemetryTap

    class Dropping(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    def exchange() -> Exchange:
        deployment = Deployment("fake", "gpt-4o-mini", "gpt-4o-mini")
        ex = Exchange("req_1", Endpoint.CHAT, b"", {"traceparent": f"00-{'a' * 32}-{'b' * 16}-01"})
        ex.model, ex.status, ex.cost_usd = "gpt-4o-mini", 200, 0.0001
        ex.principal = Principal(tenant="acme", key_prefix="gw-sk-abcd")
        attempt = Attempt(deployment, 0, status=200, started=ex.started)
        attempt.ready_at = attempt.ended = ex.started + 0.001
        attempt.usage = ex.usage = Usage(prompt_tokens=10, completion_tokens=20)
        ex.attempts, ex.answer, ex.deployment = [attempt], attempt, deployment
        ex.finished = ex.started + 0.002
        return ex

    tracing = Tracing()
    ex = exchange()
    headers: dict[str, str] = {}

    def propagate() -> None:
        ex.state = None  # a new request each time: its context made, then the header
        tracing(ex, ex.attempts[0], headers)

    root = logging.getLogger()
    saved = list(root.handlers)
    handler = RelayHandler("json")
    handler.setStream(io.StringIO())  # type: ignore[arg-type]
    root.handlers[:] = [handler]
    logging.getLogger("relay").setLevel(logging.INFO)
    logging.getLogger("relay").propagate = True
    access = AccessLog()
    try:
        access_us = per_call_us(lambda: (handler.stream.seek(0), access.on_finish(ex)))
    finally:
        root.handlers[:] = saved
    tap = TelemetryTap(
        TelemetryConfig(),
        tracing,
        {"fake": "openai"},
        models=frozenset({"gpt-4o-mini"}),
        processor=BatchSpanProcessor(Dropping()),
        reader=InMemoryMetricReader(),
    )

    def finish() -> None:
        ex.state = None
        tap.on_finish(ex)

    try:
        return {
            "traceparent for one attempt (on the send path)": per_call_us(propagate),
            "access line (JSON, to memory)": access_us,
            "telemetry tap: 2 spans + metrics": per_call_us(finish),
        }
    finally:
        tap.shutdown()


class Collector:
    """A local OTLP/HTTP endpoint: accepts and counts exports."""

    def __init__(self) -> None:
        self.bytes = 0
        self.exports = 0
        self.lock = threading.Lock()

    def app(self) -> Any:
        from aiohttp import web

        async def take(request: web.Request) -> web.Response:
            body = await request.read()
            with self.lock:
                self.bytes += len(body)
                self.exports += 1
            return web.Response(content_type="application/x-protobuf", body=b"")

        app = web.Application()
        app.router.add_post("/v1/traces", take)
        app.router.add_post("/v1/metrics", take)
        return app


def through_server(count: int, turns: int) -> tuple[dict[str, float], int]:
    import relay
    from tests.fakes.openai_upstream import start_fake_upstream
    from tests.fakes.threaded import serve
    from tests.integration.gateway import Gateway

    package_root = str(Path(relay.__file__).resolve().parents[1])
    os.environ["PYTHONPATH"] = os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")])
    collector = Collector()
    body = json.dumps(
        {"model": "gpt", "messages": [{"role": "user", "content": "hello there, how are you"}]}
    ).encode()
    with start_fake_upstream("k") as up, serve(collector.app()) as endpoint:

        def config(access: bool, telemetry: dict[str, Any]) -> dict[str, Any]:
            return {
                "server": {"access_log": access},
                "providers": {
                    "openai": {"kind": "openai", "base_url": up.base_url, "api_key": "k"}
                },
                "models": {"gpt": {"provider": "openai", "pricing": {"input": 1, "output": 2}}},
                "database": {"url": "none"},
                "telemetry": telemetry,
            }

        variants = {
            "off": config(False, {}),
            "access": config(True, {}),
            "tracing": config(True, {"endpoint": endpoint}),
        }
        gateways = {
            name: Gateway(
                cfg, Path(tempfile.mkdtemp()), env={"PYTHONPATH": os.environ["PYTHONPATH"]}
            )
            for name, cfg in variants.items()
        }
        try:
            conns = {
                name: http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
                for name, gw in gateways.items()
            }

            def send(name: str) -> None:
                conn = conns[name]
                conn.request(
                    "POST",
                    "/v1/chat/completions",
                    body=body,
                    headers={"content-type": "application/json"},
                )
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    raise RuntimeError(f"{name}: {response.status}")

            for name in gateways:
                for _ in range(200):  # warm-up
                    send(name)
            samples: dict[str, list[float]] = {name: [] for name in gateways}
            for _ in range(turns):
                for name, gw in gateways.items():
                    before = tree_cpu(gw.process.pid)
                    for _ in range(count):
                        send(name)
                    samples[name].append((tree_cpu(gw.process.pid) - before) / count * 1e6)
            for conn in conns.values():
                conn.close()
        finally:
            for gw in gateways.values():
                gw.stop()
        return {
            name: statistics.median(values) for name, values in samples.items()
        }, collector.exports


RUNNER = """
import asyncio, os, sys
sys.stderr = open(os.devnull, "w")  # the log lines are written, to nowhere
sys.path.insert(0, {benches!r})
import inprocess as b
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from relay.app import RelayApp
from relay.config import parse_config
from relay.obs import trace_sdk
from relay.obs.log import configure_logging

class Encoding(SpanExporter):
    def export(self, spans):
        encode_spans(spans).SerializeToString()
        return SpanExportResult.SUCCESS

reader = InMemoryMetricReader()
trace_sdk.span_exporter = lambda config: Encoding()
trace_sdk.metric_reader = lambda config: reader
case, n = sys.argv[1], int(sys.argv[2])
body = b.body_of(20, case == "s24")
config = parse_config(b.CONFIG + b.CORE + {extra!r}, "bench", env={{}})
configure_logging("info", "json")
async def main():
    app = b.in_memory(RelayApp(config))
    scope, proto = b.Scope(len(body)), b.Proto(body)
    for i in range(50 + n):
        await app.__rsgi__(scope, proto)
    if app.telemetry is not None:
        reader.get_metrics_data()
        app.telemetry.shutdown()  # the last spans encoded
asyncio.run(main())
"""
VARIANTS = {
    "off": "server: {access_log: false}\n",
    "access": "server: {access_log: true}\n",
    "tracing": "telemetry: {traces_exporter: otlp, endpoint: 'http://127.0.0.1:9'}\n",
}


def instructions_main(requests: int) -> None:
    import concurrent.futures

    sys.path.insert(0, str(ROOT / "benches"))
    from instructions import count

    with tempfile.TemporaryDirectory() as tmp:
        runners = {}
        for label, extra in VARIANTS.items():
            runners[label] = Path(tmp) / f"run-{label}.py"
            runners[label].write_text(RUNNER.format(benches=str(ROOT / "benches"), extra=extra))
        jobs = {}
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            for label, runner in runners.items():
                for case in ("tiny", "s24"):
                    for n in (0, requests):
                        jobs[label, case, n] = pool.submit(count, ROOT, runner, case, n, False)
        totals = {key: job.result() for key, job in jobs.items()}
    print(f"{'case':<8}" + "".join(f"{v:>12}" for v in VARIANTS) + f"{'access':>12}{'tracing':>12}")
    print(f"{'':<8}" + "".join(f"{'':>12}" for _ in VARIANTS) + f"{'-off':>12}{'-access':>12}")
    for case in ("tiny", "s24"):
        per = {
            label: (totals[label, case, requests] - totals[label, case, 0]) / requests
            for label in VARIANTS
        }
        cells = "".join(f"{per[v]:>12,.0f}" for v in VARIANTS)
        print(
            f"{case:<8}{cells}{per['access'] - per['off']:>12,.0f}"
            f"{per['tracing'] - per['access']:>12,.0f}  instructions per request"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="requests per gateway per turn")
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--instructions", action="store_true", help="count under callgrind")
    parser.add_argument("--requests", type=int, default=1000, help="with --instructions")
    args = parser.parse_args()
    if args.instructions:
        instructions_main(min(args.requests, 1000))
        return
    print("In process (CPU per call, median):")
    for name, value in in_process().items():
        print(f"  {name:<48} {value:8.1f} us")
    results, exports = through_server(args.count, args.turns)
    print(
        f"\nThrough the server (gateway CPU per request, median of {args.turns} turns of {args.count}):"
    )
    for name, value in results.items():
        print(f"  {name:<48} {value:8.1f} us")
    print(f"  access line: +{results['access'] - results['off']:.1f} us")
    print(
        f"  tracing (spans + metrics to a local collector): +{results['tracing'] - results['access']:.1f} us"
    )
    print(f"  collector received {exports} exports")


if __name__ == "__main__":
    main()
