"""Relay's own Python cost per request, in process: the real app, stages, attempt loop, stream
relay and accounting, with granian and aiohttp replaced by in-memory stand-ins so that only
Relay's code is timed (thread CPU time, best of several rounds).

    python3 benches/inprocess.py [--requests 20000] [--rounds 5] [--hook]

``--hook`` installs one no-op stream hook and one no-op answer hook (what a hook costs per
relayed event and per JSON answer, against a run without).

What it leaves out (granian's request handling, aiohttp's HTTP client) is the floor the
side-by-side benchmark (compare.py) measures; this one shows what Relay adds on top of it
and how each change moves it, without the noise of a shared machine's scheduler.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncGenerator, Mapping

from relay.app import Extensions, RelayApp
from relay.config import parse_config
from relay.exchange import Exchange

REPLY = (
    b'{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,'
    b'"message":{"role":"assistant","content":"Hello there, how can I help?"},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":12,"completion_tokens":8,"total_tokens":20}}'
)


def _chunk(delta: bytes, finish: bytes = b"null") -> bytes:
    return (
        b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m",'
        b'"choices":[{"index":0,"delta":' + delta + b',"finish_reason":' + finish + b"}]}\n\n"
    )


def _frames(chunks: int) -> list[bytes]:
    """A stream of ``chunks`` content chunks: role, content..., finish, usage, [DONE]."""
    return [
        _chunk(b'{"role":"assistant","content":""}'),
        *[_chunk(b'{"content":"tok%d "}' % i) for i in range(chunks)],
        _chunk(b"{}", b'"stop"'),
        b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m",'
        b'"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":20,"total_tokens":32}}\n\n',
        b"data: [DONE]\n\n",
    ]


FRAMES = _frames(20)
# A request with max_tokens 120 gets the long stream: the difference between the two is the
# marginal cost of a relayed event, free of each stream's fixed costs.
LONG_FRAMES = _frames(120)
# A request with max_tokens 1 gets the 24 events in one read, as a provider that writes quickly
# delivers them (compare.py's mock writes a whole stream at once): a stream's fixed cost.
ONE_READ = [b"".join(FRAMES)]


class Canned:
    """An upstream response from memory: the whole body, or one frame per network read."""

    status = 200

    def __init__(self, stream: bool, frames: list[bytes] = FRAMES) -> None:
        self.frames = frames
        self.headers: Mapping[str, str] = {
            "content-type": "text/event-stream" if stream else "application/json",
            "x-request-id": "up-1",
            "openai-processing-ms": "3",
        }

    async def read(self) -> bytes:
        return REPLY

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        for frame in self.frames:
            yield frame

    def close(self) -> None:
        pass

    def release(self) -> None:
        pass


class InMemoryPool:
    """The upstream pool with the network replaced by canned answers: the adapter still
    builds the real request (body edits included); nothing is sent."""

    async def send(
        self,
        provider: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        timeouts: object,
        *,
        stream: bool,
        url_encoded: bool = False,
    ) -> Canned:
        if b'"max_tokens":1}' in body:
            return Canned(stream, ONE_READ)
        long = b'"max_tokens":%d' % (len(LONG_FRAMES) - 4) in body
        return Canned(stream, LONG_FRAMES if long else FRAMES)


def in_memory(app: RelayApp) -> RelayApp:
    """``app`` with its attempt loop sending to canned answers."""
    app.attempts.pool = InMemoryPool()  # type: ignore[assignment]
    return app


class Scope:
    proto = "http"
    method = "POST"
    path = "/v1/chat/completions"
    client = "127.0.0.1:40000"  # the caller's address (the limits key callers by it)

    def __init__(self, length: int) -> None:
        self.headers = {"content-type": "application/json", "content-length": str(length)}


class Proto:
    def __init__(self, body: bytes) -> None:
        self.body = body

    async def __call__(self) -> bytes:
        return self.body

    def client_disconnect(self) -> asyncio.Future[None]:
        return asyncio.get_running_loop().create_future()

    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        pass

    def response_stream(self, status: int, headers: list[tuple[str, str]]) -> Proto:
        return self

    async def send_bytes(self, data: bytes) -> None:
        pass


CONFIG = """
providers: {up: {kind: openai, base_url: "http://127.0.0.1:9/v1", api_key: sk-bench}}
models: {bench-model: {provider: up, pricing: {input: 1.0, output: 2.0}}}
"""
# The core path: no ledger (benches/tenancy.py measures keys and the ledger on top of it).
CORE = "database: {ledger: {enabled: false}}\n"


class NoOp:
    """A hook that observes and changes nothing."""

    def on_event(self, ex: Exchange, event: bytes) -> bytes:
        return event

    def on_end(self, ex: Exchange) -> bytes:
        return b""

    def on_answer(self, ex: Exchange, body: bytes) -> bytes:
        return body


def body_of(size: int, stream: bool, long: bool = False, one_read: bool = False) -> bytes:
    text = ("The quick brown fox jumps over the lazy dog. " * (size // 45 + 1))[:size]
    extra = b',"stream":true' if stream else b""
    if long:
        extra += b',"max_tokens":%d' % (len(LONG_FRAMES) - 4)
    elif one_read:
        extra += b',"max_tokens":1'
    return (
        b'{"model":"bench-model","messages":[{"role":"system","content":"be brief"},'
        b'{"role":"user","content":"' + text.encode() + b'"}]' + extra + b"}"
    )


async def per_request(app: RelayApp, body: bytes, n: int) -> float:
    scope, proto = Scope(len(body)), Proto(body)
    for _ in range(200):
        await app.__rsgi__(scope, proto)
    start = time.thread_time_ns()
    for _ in range(n):
        await app.__rsgi__(scope, proto)
    return (time.thread_time_ns() - start) / n / 1000


async def with_ledger(ledger: bool, n: int, tmp: str) -> float:
    """Process CPU (every thread: the SQLite writer too) per tiny request, flush included."""
    database = f"database: {{url: 'sqlite:///{tmp}/{ledger:d}-{time.monotonic_ns()}.db'"
    database += "}\n" if ledger else ", ledger: {enabled: false}}\n"
    app = RelayApp(parse_config(CONFIG + database, "bench"))
    in_memory(app)
    await app.tenancy.start()
    body = body_of(20, False)
    scope, proto = Scope(len(body)), Proto(body)
    for _ in range(300):
        await app.__rsgi__(scope, proto)
    start = time.process_time()
    for i in range(n):
        await app.__rsgi__(scope, proto)
        if i % 200 == 0:
            await asyncio.sleep(0)  # let the writer drain, as the server's loop would
    await app.tenancy.stop()  # the last flush counts too
    return (time.process_time() - start) / n * 1e6


def ledger_main(requests: int, rounds: int) -> None:
    """The default SQLite ledger against the core path, whole process."""
    import tempfile

    tmp = tempfile.mkdtemp()
    loop = asyncio.new_event_loop()
    results: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(rounds):
        for ledger in (False, True):
            results[ledger].append(loop.run_until_complete(with_ledger(ledger, requests, tmp)))
    core, ledger_on = min(results[False]), min(results[True])
    print(
        f"process CPU per tiny request (best of {rounds}): core path {core:.1f} us, "
        f"SQLite ledger on {ledger_on:.1f} us (+{ledger_on - core:.1f} us)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--ledger", action="store_true", help="the SQLite ledger's whole-process cost instead"
    )
    parser.add_argument("--hook", action="store_true", help="one no-op stream and answer hook")
    args = parser.parse_args()
    if args.ledger:
        return ledger_main(args.requests // 4, args.rounds)
    hook = NoOp()
    extensions = Extensions(stream_hooks=(hook,), answer_hooks=(hook,)) if args.hook else None
    app = RelayApp(parse_config(CONFIG + CORE, "bench"), extensions)
    in_memory(app)
    cases = [
        ("JSON, tiny body", body_of(20, False), args.requests),
        ("JSON, 4 KB prompt", body_of(4096, False), args.requests),
        ("JSON, 40 KB prompt", body_of(40960, False), args.requests // 4),
        ("stream, 24 events", body_of(20, True), args.requests // 4),
        ("stream, one read", body_of(20, True, one_read=True), args.requests // 4),
        ("stream, 124 events", body_of(20, True, long=True), args.requests // 10),
    ]
    loop = asyncio.new_event_loop()
    print(f"{'case':<22}{'us CPU per request (best of ' + str(args.rounds) + ')':>36}")
    results = {}
    for name, body, n in cases:
        best = min(loop.run_until_complete(per_request(app, body, n)) for _ in range(args.rounds))
        results[name] = best
        print(f"{name:<22}{best:>36.1f}")
    per_event = (results["stream, 124 events"] - results["stream, 24 events"]) / (
        len(LONG_FRAMES) - len(FRAMES)
    )
    print(f"{'stream, per event':<22}{per_event:>36.2f}  (marginal: 124 vs 24 events)")


if __name__ == "__main__":
    main()
