"""An open-loop load generator for OpenAI-shaped ``/chat/completions`` endpoints.

Open loop: request ``i`` is due at ``t0 + i / rate`` whatever happened to the earlier ones, and
its latency is measured from that *intended* send time, not from when it actually left. A
stalled server (or a stalled load generator) therefore shows up as latency instead of silently
lowering the offered rate, which is the coordinated-omission correction of wrk2 and oha's
``--latency-correction``. The time from the intended to the actual start is reported as
``send_lag_ms``: when it grows, the load generator itself is the bottleneck.

The first ``--warmup`` seconds of arrivals are sent at the same rate but not recorded; the next
``--duration`` seconds are. Non-stream mode records the total latency of each response; stream
mode records the time to the first content token (the first SSE ``data:`` event whose
``choices[0].delta.content`` is non-empty) and the total.

    python benches/loadgen.py --url http://127.0.0.1:9101/v1 --rate 500 --duration 20 \\
        --warmup 3 [--stream] [--cpu 1] [--out result.json]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import ipaddress
import json
import math
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

PERCENTILES = (50.0, 90.0, 99.0, 99.9)


@dataclass
class Settings:
    """What to send, how fast and for how long."""

    url: str
    rate: float
    duration: float
    warmup: float = 3.0
    stream: bool = False
    connections: int = 256
    timeout: float = 30.0
    model: str = "bench-model"
    api_key: str = "sk-bench"
    max_tokens: int = 32
    spin_us: float = 1000.0


@dataclass
class Samples:
    """Raw measurements of the recorded (post-warm-up) requests, in seconds."""

    latency: list[float] = field(default_factory=list)  # intended send -> last byte
    service: list[float] = field(default_factory=list)  # actual send -> last byte
    ttft: list[float] = field(default_factory=list)  # intended send -> first content token
    ttft_service: list[float] = field(default_factory=list)  # actual send -> first token
    send_lag: list[float] = field(default_factory=list)  # intended -> actual send
    errors: Counter[str] = field(default_factory=Counter)
    first_start: float = math.inf
    last_start: float = 0.0
    first_done: float = math.inf
    last_done: float = 0.0


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list (NaN when it is empty)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summarize(values: list[float]) -> dict[str, float]:
    """p50/p90/p99/p99.9/max/mean of ``values`` (seconds) in milliseconds."""
    ordered = sorted(values)
    out = {f"p{p:g}": round(percentile(ordered, p) * 1000, 3) for p in PERCENTILES}
    out["max"] = round(ordered[-1] * 1000, 3) if ordered else math.nan
    out["mean"] = round(sum(ordered) / len(ordered) * 1000, 3) if ordered else math.nan
    return out


def request_body(settings: Settings) -> bytes:
    """The compact JSON body every request sends."""
    body: dict[str, Any] = {
        "model": settings.model,
        "messages": [{"role": "user", "content": "Say hello in a few words."}],
        "max_tokens": settings.max_tokens,
    }
    if settings.stream:
        body["stream"] = True
    return json.dumps(body, separators=(",", ":")).encode()


def first_content(line: bytes) -> bool:
    """True when an SSE line is a ``data:`` event carrying a non-empty content delta."""
    if not line.startswith(b"data:"):
        return False
    payload = line[5:].strip()
    if not payload or payload == b"[DONE]" or b'"content"' not in payload:
        return False
    try:
        event = json.loads(payload)
        return bool(event["choices"][0]["delta"].get("content"))
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return False


class LoadGen:
    """One open-loop run against one URL."""

    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.endpoint = settings.url.rstrip("/") + "/chat/completions"
        self.body = request_body(settings)
        self.headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {settings.api_key}",
        }
        self.samples = Samples()
        self.session: aiohttp.ClientSession | None = None

    async def one(self, intended: float, record: bool) -> None:
        """Send one request; record its timings when ``record``."""
        assert self.session is not None
        started = time.perf_counter()
        first: float | None = None
        error: str | None = None
        try:
            async with self.session.post(
                self.endpoint, data=self.body, headers=self.headers
            ) as resp:
                if resp.status != 200:
                    await resp.read()
                    error = f"status {resp.status}"
                elif self.s.stream:
                    done = False
                    async for line in resp.content:
                        if first is None and first_content(line):
                            first = time.perf_counter()
                        elif line.startswith(b"data: [DONE]"):
                            done = True
                    if first is None:
                        error = "stream without content"
                    elif not done:
                        error = "stream without [DONE]"
                else:
                    data = await resp.read()
                    if b'"choices"' not in data:
                        error = "body without choices"
        except TimeoutError:
            error = "timeout"
        except aiohttp.ClientError as exc:
            error = type(exc).__name__
        except OSError as exc:
            error = f"OSError {exc.errno}"
        ended = time.perf_counter()
        if not record:
            return
        s = self.samples
        s.first_start = min(s.first_start, started)
        s.last_start = max(s.last_start, started)
        s.send_lag.append(started - intended)
        if error is not None:
            s.errors[error] += 1
            return
        s.first_done = min(s.first_done, ended)
        s.last_done = max(s.last_done, ended)
        s.latency.append(ended - intended)
        s.service.append(ended - started)
        if first is not None:
            s.ttft.append(first - intended)
            s.ttft_service.append(first - started)

    async def run(self) -> dict[str, Any]:
        """Offer the load, wait for the stragglers and return the report."""
        s = self.s
        connector = aiohttp.TCPConnector(
            limit=s.connections, limit_per_host=0, keepalive_timeout=60, use_dns_cache=True
        )
        timeout = aiohttp.ClientTimeout(total=s.timeout)
        self.session = aiohttp.ClientSession(
            connector=connector, timeout=timeout, auto_decompress=False
        )
        warm = round(s.warmup * s.rate)
        total = warm + round(s.duration * s.rate)
        pending: set[asyncio.Task[None]] = set()
        interval = 1.0 / s.rate
        spin = s.spin_us / 1e6
        gc.collect()
        gc.freeze()
        gc.disable()  # collector pauses would show up as latency of whatever is in flight
        try:
            t0 = time.perf_counter() + 0.05
            measure_from = t0 + warm * interval
            i = 0
            while i < total:
                now = time.perf_counter()
                due = t0 + i * interval
                if due > now:
                    # Sleep on a timer until ``spin`` before the due time, then yield to the
                    # loop until it comes: loop timers have millisecond resolution and a halted
                    # (virtual) CPU takes long to wake, both of which would delay the send.
                    wait = due - now - spin
                    await asyncio.sleep(wait if wait > 0 else 0)
                    continue
                while i < total and t0 + i * interval <= now:
                    task = asyncio.create_task(self.one(t0 + i * interval, i >= warm))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                    i += 1
            end_of_offer = time.perf_counter()
            if pending:
                _, left = await asyncio.wait(set(pending), timeout=s.timeout + 5)
                for task in left:
                    task.cancel()
                if left:
                    await asyncio.wait(left, timeout=5)
            await self.session.close()
        finally:
            gc.enable()
            gc.unfreeze()
        return self.report(measure_from, end_of_offer)

    def report(self, measure_from: float, end_of_offer: float) -> dict[str, Any]:
        """The JSON report of the recorded requests."""
        s, smp = self.s, self.samples
        ok = len(smp.latency)
        sent = ok + sum(smp.errors.values())
        # Completions per second between the first and the last recorded completion: equal to
        # the offered rate in a steady state, lower when latency grows through the run.
        span = max(smp.last_done - smp.first_done, 1e-9)
        send_span = max(smp.last_start - smp.first_start, 1e-9)
        out: dict[str, Any] = {
            "url": self.endpoint,
            "mode": "stream" if s.stream else "json",
            "target_rps": s.rate,
            "duration_s": s.duration,
            "warmup_s": s.warmup,
            "connections": s.connections,
            "spin_us": s.spin_us,
            "count": sent,
            "ok": ok,
            "errors": sum(smp.errors.values()),
            "error_kinds": dict(smp.errors),
            "achieved_rps": round((ok - 1) / span, 1) if ok > 1 else 0.0,
            "sent_rps": round((sent - 1) / send_span, 1) if sent > 1 else 0.0,
            "offer_overrun_s": round(end_of_offer - (measure_from + s.duration), 4),
            "latency_ms": summarize(smp.latency),
            "service_ms": summarize(smp.service),
            "send_lag_ms": summarize(smp.send_lag),
            "cpu_affinity": sorted(os.sched_getaffinity(0)),
            "cpu_s": round(time.process_time(), 3),  # this process, start to report
        }
        if s.stream:
            out["ttft_ms"] = summarize(smp.ttft)
            out["ttft_service_ms"] = summarize(smp.ttft_service)
        return out


def is_loopback(url: str) -> bool:
    """True when the URL's host is a loopback address (or ``localhost``)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--url", required=True, help="base URL, e.g. http://127.0.0.1:9101/v1")
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--duration", type=float, default=20.0, help="recorded seconds")
    parser.add_argument("--warmup", type=float, default=3.0, help="unrecorded seconds first")
    parser.add_argument("--stream", action="store_true", help="stream and measure TTFT")
    parser.add_argument("--connections", type=int, default=256, help="connection pool size")
    parser.add_argument("--timeout", type=float, default=30.0, help="per-request timeout (s)")
    parser.add_argument("--model", default="bench-model")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument(
        "--spin-us",
        type=float,
        default=1000.0,
        help="yield-spin this long before each send instead of sleeping on a timer (0: never)",
    )
    parser.add_argument("--cpu", type=int, default=None, help="pin this process to one CPU")
    parser.add_argument("--out", default=None, help="write the JSON report here (else stdout)")
    parser.add_argument(
        "--allow-remote", action="store_true", help="allow a non-loopback target URL"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run once and print (or write) the JSON report."""
    args = parse_args(argv)
    if not is_loopback(args.url) and not args.allow_remote:
        print(f"refusing non-loopback target {args.url} (use --allow-remote)", file=sys.stderr)
        return 2
    if args.rate <= 0:
        print("--rate must be positive", file=sys.stderr)
        return 2
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    settings = Settings(
        url=args.url,
        rate=args.rate,
        duration=args.duration,
        warmup=args.warmup,
        stream=args.stream,
        connections=args.connections,
        timeout=args.timeout,
        model=args.model,
        max_tokens=args.max_tokens,
        spin_us=args.spin_us,
    )
    gen = LoadGen(settings)
    try:
        import uvloop
    except ImportError:
        report = asyncio.run(gen.run())
    else:
        report = uvloop.run(gen.run())
    text = json.dumps(report, indent=2)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
