"""What translating OpenAI <-> Anthropic costs, against the OpenAI pass-through, in one run.

1. In process (always): the provider-side Python work of one request on the recorded bodies of
   tests/contracts, timed with ``time.process_time`` in alternating turns:
   * JSON: the upstream body (model renamed) + mapping the answer.
     pass-through = ``upstream_body`` (a splice) + ``OpenAIWire.map_json`` (a probe);
     translated = ``openai_to_anthropic.request`` + ``openai_to_anthropic.response``.
   * a 20-chunk stream delivered one event per network read:
     pass-through = ``OpenAIStreamMapper`` (the native scanner) on the OpenAI stream;
     translated = ``ChunkStream`` on the Anthropic stream (same text);
     and for Anthropic clients: ``EventRelay`` (pass-through) and ``EventStream`` (from OpenAI).
2. Through the real server (``--server``): ``relay serve`` in front of the fake OpenAI and fake
   Anthropic servers (tests/fakes), N sequential requests per path in turns; the gateway's CPU
   (main process and workers, from /proc) per request and per 20-chunk stream.

Run from the repository root with the extension in place:
    PYTHONPATH=python python3 benches/translation.py [--server] [--requests 400]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from relay.config.model import ProviderConfig  # noqa: E402
from relay.dialects import ANTHROPIC_DIALECTS, OPENAI_DIALECTS  # noqa: E402
from relay.exchange import Attempt, Deployment, Exchange  # noqa: E402
from relay.providers.anthropic import EventRelay  # noqa: E402
from relay.providers.openai_compat import OpenAICompatible  # noqa: E402
from relay.providers.openai_wire import OpenAIStreamMapper, upstream_body  # noqa: E402
from relay.providers.translate import anthropic_to_openai, openai_to_anthropic  # noqa: E402

CONTRACTS = ROOT / "tests" / "contracts"
CHAT_BODY = msgspec.json.encode(
    {
        "model": "m",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant. Answer briefly."},
            {"role": "user", "content": "What is the weather like in Paris today, and tomorrow?"},
            {"role": "assistant", "content": "Let me think about that for a moment."},
            {"role": "user", "content": "Please answer in twenty words or so, no more."},
        ],
        "temperature": 0.2,
        "max_tokens": 200,
    }
)
OPENAI = OpenAICompatible(
    "openai", ProviderConfig(kind="openai", base_url="http://h/v1", api_key="k")
)


def events(name: str) -> list[bytes]:
    data = (CONTRACTS / name).read_bytes()
    return [e + b"\n\n" for e in data.split(b"\n\n") if e.strip()]


def exchange(body: bytes, dialect: Any, stream: bool = False) -> tuple[Exchange, Attempt]:
    ex = Exchange("req_bench", dialect.endpoint, body, {}, dialect=dialect)
    dialect.parse(ex)
    ex.stream = stream
    return ex, Attempt(Deployment("p", "upstream-model", "m"))


def per_call_us(fn: Callable[[], object], seconds: float) -> float:
    """CPU microseconds per call, over about ``seconds`` of CPU."""
    calls, spent = 0, 0.0
    start = time.process_time()
    while spent < seconds:
        for _ in range(200):
            fn()
        calls += 200
        spent = time.process_time() - start
    return spent / calls * 1e6


def in_process(turns: int, seconds: float) -> dict[str, float]:
    chat, messages = OPENAI_DIALECTS[0], ANTHROPIC_DIALECTS[0]
    openai_json = (CONTRACTS / "openai_chat_completion.json").read_bytes()
    anthropic_json = (CONTRACTS / "anthropic_message_text.json").read_bytes()
    openai_stream, anthropic_stream = (
        events("openai_stream_text.sse"),
        events("anthropic_stream_text.sse"),
    )
    messages_body = msgspec.json.encode(
        {
            "model": "m",
            "max_tokens": 200,
            "system": "You are a helpful assistant. Answer briefly.",
            "messages": [
                {
                    "role": "user",
                    "content": "What is the weather like in Paris today, and tomorrow?",
                },
                {"role": "assistant", "content": "Let me think about that for a moment."},
                {"role": "user", "content": "Please answer in twenty words or so, no more."},
            ],
        }
    )

    def json_pass() -> None:
        ex, attempt = exchange(CHAT_BODY, chat)
        upstream_body(ex, attempt)
        OPENAI.map_json(ex, attempt, openai_json)

    def json_translated() -> None:
        ex, attempt = exchange(CHAT_BODY, chat)
        openai_to_anthropic.request(ex, attempt, 4096)
        openai_to_anthropic.response("claude", attempt, anthropic_json)

    def json_to_openai() -> None:  # an Anthropic client, an OpenAI provider
        ex, attempt = exchange(messages_body, messages)
        anthropic_to_openai.request(ex, attempt)
        anthropic_to_openai.response("openai", attempt, openai_json)

    def run(mapper: Any, frames: list[bytes]) -> None:
        for frame in frames:
            mapper.feed(frame)

    attempt = Attempt(Deployment("p", "upstream-model", "m"))
    cases: dict[str, Callable[[], object]] = {
        "json: openai pass-through": json_pass,
        "json: openai client -> anthropic": json_translated,
        "json: anthropic client -> openai": json_to_openai,
        "stream: openai pass-through": lambda: run(
            OpenAIStreamMapper("p", strip_usage=True), openai_stream
        ),
        "stream: openai client <- anthropic": lambda: run(
            openai_to_anthropic.ChunkStream("p", attempt, include_usage=False), anthropic_stream
        ),
        "stream: anthropic pass-through": lambda: run(EventRelay("p", attempt), anthropic_stream),
        "stream: anthropic client <- openai": lambda: run(
            anthropic_to_openai.EventStream("p", attempt), openai_stream
        ),
    }
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(turns):
        for name, fn in cases.items():
            samples[name].append(per_call_us(fn, seconds))
    return {name: statistics.median(values) for name, values in samples.items()}


# -- through the server ------------------------------------------------------------------------


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` and its descendants."""
    ticks = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        stats[int(entry)] = fields
        children.setdefault(int(fields[1]), []).append(int(entry))
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        if current in stats:
            fields = stats[current]
            total += (int(fields[11]) + int(fields[12])) / ticks
        todo.extend(children.get(current, ()))
    return total


def request(port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", path, body=body, headers={"content-type": "application/json", **headers})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    if response.status != 200:
        raise RuntimeError(f"{path}: {response.status} {data[:200]!r}")
    return data


def through_server(count: int, turns: int) -> dict[str, float]:
    import relay
    from tests.fakes.anthropic_upstream import start_fake_anthropic
    from tests.fakes.openai_upstream import start_fake_upstream
    from tests.integration.gateway import Gateway

    # The server runs in a temporary directory: point it at this checkout's package.
    package_root = str(Path(relay.__file__).resolve().parents[1])
    os.environ["PYTHONPATH"] = os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")])
    words = " ".join(f"w{i}" for i in range(18))  # "Echo: " + 18 words = 20 deltas
    with start_fake_upstream("k") as oa, start_fake_anthropic("k") as an:
        config = {
            "server": {"log_level": "warning"},
            "providers": {
                "openai": {"kind": "openai", "base_url": oa.base_url, "api_key": "k"},
                "claude": {"kind": "anthropic", "base_url": an.base_url, "api_key": "k"},
            },
            "models": {"gpt": {"provider": "openai"}, "claude": {"provider": "claude"}},
        }
        gw = Gateway(config, Path(tempfile.mkdtemp()))
        try:
            cases = {}
            for stream in (False, True):
                kind = "stream" if stream else "json"
                for model in ("gpt", "claude"):
                    body = {
                        "model": model,
                        "messages": [{"role": "user", "content": words}],
                        "stream": stream,
                    }
                    label = f"{kind}: openai client -> {'openai (pass-through)' if model == 'gpt' else 'anthropic'}"
                    cases[label] = ("/v1/chat/completions", msgspec.json.encode(body))
                anthropic_body = {
                    "model": "claude",
                    "max_tokens": 100,
                    "stream": stream,
                    "messages": [{"role": "user", "content": words}],
                }
                cases[f"{kind}: anthropic client -> anthropic (pass-through)"] = (
                    "/v1/messages",
                    msgspec.json.encode(anthropic_body),
                )
                cases[f"{kind}: anthropic client -> openai"] = (
                    "/v1/messages",
                    msgspec.json.encode({**anthropic_body, "model": "gpt"}),
                )
            return server_cpu_us(gw, cases, turns, count)
        finally:
            gw.stop()


def server_cpu_us(
    gw: Any, cases: dict[str, tuple[str, bytes]], turns: int, count: int
) -> dict[str, float]:
    """The gateway's CPU (all its processes) per request of each case, median over turns
    taken in turn, after a warm-up."""
    for path, body in cases.values():
        for _ in range(20):
            request(gw.port, path, body, {})
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(turns):
        for name, (path, body) in cases.items():
            before = tree_cpu(gw.process.pid)
            for _ in range(count):
                request(gw.port, path, body, {})
            samples[name].append((tree_cpu(gw.process.pid) - before) / count * 1e6)
    return {name: statistics.median(values) for name, values in samples.items()}


def report(title: str, results: dict[str, float], pairs: list[tuple[str, str]]) -> None:
    print(f"\n{title}")
    for name, value in results.items():
        print(f"  {name:<52} {value:9.1f} us")
    for translated, passthrough in pairs:
        ratio = results[translated] / results[passthrough]
        print(
            f"  {translated} / {passthrough}: {ratio:.2f}x (+{results[translated] - results[passthrough]:.1f} us)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.2, help="CPU per case and turn")
    parser.add_argument("--server", action="store_true", help="also measure through relay serve")
    parser.add_argument("--requests", type=int, default=300, help="per case and turn (--server)")
    args = parser.parse_args()
    results = in_process(args.turns, args.seconds)
    report(
        "in process (provider-side Python CPU, median of turns)",
        results,
        [
            ("json: openai client -> anthropic", "json: openai pass-through"),
            ("stream: openai client <- anthropic", "stream: openai pass-through"),
            ("stream: anthropic client <- openai", "stream: anthropic pass-through"),
        ],
    )
    if args.server:
        served = through_server(args.requests, max(args.turns // 2, 2))
        keys = list(served)
        report(
            "through relay serve (gateway CPU per request, all processes, median of turns)",
            served,
            [(keys[1], keys[0]), (keys[3], keys[2]), (keys[5], keys[4]), (keys[7], keys[6])],
        )
    print(json.dumps({"python": sys.version.split()[0]}))


if __name__ == "__main__":
    main()
