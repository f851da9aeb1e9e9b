"""The response cache, in one run (issue 25).

1. In process: the CPU a miss adds (the stage's policy and key, a memory look-up, the
   recorder, and after the last byte the entry made and stored) against the cache off (no
   stage listed: nothing at all), per request, for a 1.4 KB chat body.
2. Through ``relay serve`` (one worker) in front of ``benches/mock_upstream.py``, one request
   at a time on a kept-alive connection: the full response time of a request with the cache
   off, of a memory hit and of a Redis hit (a local redis-server), and the gateway's own
   added time on the cache-off request (its ``x-relay-overhead-ms``).

    PYTHONPATH=python python3 benches/cache.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from relay.cache.memory import MemoryBackend  # noqa: E402
from relay.cache.policy import Policy  # noqa: E402
from relay.cache.record import AnswerRecorder  # noqa: E402
from relay.cache.stage import CacheStage, CacheWriter  # noqa: E402
from relay.cache.store import Cache  # noqa: E402
from relay.config.load import parse_config  # noqa: E402
from relay.dialects import OPENAI_DIALECTS  # noqa: E402
from relay.exchange import Attempt, Deployment, Endpoint, Exchange, Usage  # noqa: E402
from relay.wire.openai import ChatRequest  # noqa: E402
from tests.integration.gateway import Gateway, free_port  # noqa: E402

CONFIG = "providers: {p: {kind: echo}}\nmodels: {m: {provider: p}}\ncache: {mode: deterministic}\n"
ANSWER = json.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "x " * 100},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 300, "completion_tokens": 100, "total_tokens": 400},
    }
).encode()


def body(n: int) -> bytes:
    text = "lorem ipsum dolor sit amet " * 50
    return msgspec.json.encode(
        {"model": "m", "temperature": 0, "messages": [{"role": "user", "content": f"{n} {text}"}]}
    )


def in_process(count: int) -> tuple[float, float, float]:
    """Microseconds of CPU a miss adds (see the module docstring), and the CPU of the
    stage answering a JSON hit and a streamed hit (the reply made, not yet sent)."""
    config = parse_config(CONFIG, "bench", env={})
    memory = MemoryBackend(config.cache.max_bytes)
    cache = Cache(memory)
    stage = CacheStage(Policy(config), cache)
    recorder = AnswerRecorder()
    writer = CacheWriter(cache, tool_calls=False)
    decoder = msgspec.json.Decoder(ChatRequest)
    deployment = Deployment("p", "m", "m")
    bodies = [body(n) for n in range(count)]

    def exchange(raw: bytes, stream: bool = False) -> Exchange:
        ex = Exchange("req_1", Endpoint.CHAT, raw, {}, dialect=OPENAI_DIALECTS[0], stream=stream)
        ex.request = decoder.decode(raw)
        ex.model = "m"
        ex.deployment = deployment
        return ex

    async def run(cached: bool) -> float:
        memory.purge_now()  # every request a miss
        exchanges = [exchange(b) for b in bodies]
        start = time.process_time()
        for ex in exchanges:
            if cached:
                await stage(ex)
                recorder.on_answer(ex, ANSWER)
            ex.status, ex.answer, ex.usage, ex.cost_usd = (
                200,
                Attempt(deployment),
                Usage(300, 100, 0),
                0.001,
            )
            if cached:
                await writer.settle(ex)
        return (time.process_time() - start) / count * 1e6

    async def hits(stream: bool) -> float:
        exchanges = [exchange(b, stream) for b in bodies]  # stored by the last miss round
        start = time.process_time()
        for ex in exchanges:
            reply = await stage(ex)
            assert reply is not None
            if reply.stream is not None:
                async for _ in reply.stream:
                    pass
        return (time.process_time() - start) / count * 1e6

    loop = asyncio.new_event_loop()
    try:
        runs = [
            (loop.run_until_complete(run(False)), loop.run_until_complete(run(True)))
            for _ in range(5)
        ]
        json_hit = statistics.median(loop.run_until_complete(hits(False)) for _ in range(5))
        stream_hit = statistics.median(loop.run_until_complete(hits(True)) for _ in range(5))
    finally:
        loop.close()
    return statistics.median(on - off for off, on in runs), json_hit, stream_hit


def timed(port: int, count: int, payload: bytes) -> tuple[list[float], list[float], str]:
    """Response times (ms), the gateway's added time (ms) and the last x-relay-cache."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    times, overhead, status = [], [], ""
    for _ in range(count):
        start = time.perf_counter()
        conn.request(
            "POST",
            "/v1/chat/completions",
            body=payload,
            headers={"content-type": "application/json"},
        )
        response = conn.getresponse()
        response.read()
        times.append((time.perf_counter() - start) * 1000)
        if response.getheader("x-relay-overhead-ms"):
            overhead.append(float(response.getheader("x-relay-overhead-ms") or 0))
        status = response.getheader("x-relay-cache") or "-"
    conn.close()
    return times, overhead, status


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * q), len(ordered) - 1)]


def served(count: int) -> list[tuple[str, list[float], list[float], str]]:
    tmp = Path(tempfile.mkdtemp(prefix="relay-bench-cache-"))
    port = free_port()
    mock = subprocess.Popen(
        [sys.executable, str(ROOT / "benches" / "mock_upstream.py"), "--port", str(port)]
    )
    redis_port = free_port()
    binary = shutil.which("redis-server") or "redis-server"
    redis = subprocess.Popen(
        [binary, "--port", str(redis_port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    results = []
    try:
        payload = body(1)
        timed(port, 200, payload)
        times, _, _ = timed(port, count, payload)
        results.append(("upstream", times, [], "(direct, no gateway)"))
        for name, cache in (
            ("cache off", {"mode": "off"}),
            ("memory hit", {"mode": "deterministic", "backend": "memory"}),
            ("redis hit", {"mode": "deterministic", "backend": "redis"}),
        ):
            config: dict[str, Any] = {
                "providers": {
                    "up": {
                        "kind": "openai",
                        "base_url": f"http://127.0.0.1:{port}/v1",
                        "api_key": "k",
                    }
                },
                "models": {"m": {"provider": "up", "model": "gpt-4o-mini"}},
                "database": {"url": "none"},
                "redis": {"address": f"127.0.0.1:{redis_port}"},
                "cache": cache,
                "server": {"log_level": "warning"},
            }
            gateway = Gateway(config, tmp)
            try:
                timed(gateway.port, 200, payload)  # warm-up (and the entry written)
                times, overhead, status = timed(gateway.port, count, payload)
                results.append((name, times, overhead, status))
            finally:
                gateway.stop()
    finally:
        mock.terminate()
        redis.terminate()
        mock.wait()
        redis.wait()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    added, json_hit, stream_hit = in_process(args.requests)
    print(f"a miss adds {added:.1f} us of CPU per request against the cache off (target <= 30)")
    print(
        f"the stage answers a hit in {json_hit:.1f} us of CPU (JSON), {stream_hit:.1f} us (stream)"
    )
    print(f"{'':12} {'p50 ms':>8} {'p99 ms':>8} {'overhead-ms':>12} x-relay-cache")
    rows = served(args.requests)
    for name, times, overhead, status in rows:
        extra = f"{statistics.median(overhead):12.3f}" if overhead else f"{'-':>12}"
        print(f"{name:12} {pct(times, 0.5):8.3f} {pct(times, 0.99):8.3f} {extra} {status}")
    p50 = {name: pct(times, 0.5) for name, times, _, _ in rows}
    added = p50["cache off"] - p50["upstream"]
    print(
        f"the gateway adds {added:.3f} ms at p50 to a call it forwards (cache off - upstream); "
        f"a memory hit answers in {p50['memory hit']:.3f} ms, a Redis hit in {p50['redis hit']:.3f} ms"
    )


if __name__ == "__main__":
    main()
