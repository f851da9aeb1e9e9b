"""Instructions per upstream request of Relay's pool against the bare aiohttp use of
``bare_proxy.py``, counted by callgrind (exact on a busy machine).

    python3 benches/pool_instructions.py [--tree DIR ...] [--requests 1000] [--case CASE ...]

``mock_upstream.py`` runs outside valgrind; one process under callgrind sends 50 warm-up
requests and then 0 or ``--requests`` more, one at a time on one keep-alive connection
(uvloop, as a worker runs); the difference over the count is the marginal cost of one request.
Cases: ``bare`` (``session.post`` as ``bare_proxy.py`` does, the body read whole), ``pool``
(``UpstreamPool.send`` with the headers an OpenAI-shaped provider sends, read whole and closed
as the attempt loop does), and their 20-chunk stream twins ``bare-stream`` and
``pool-stream``. With ``--chunk-gap-ms`` the chunks come apart (how many network reads a stream
takes then depends on timing: those counts are not exact). The cyclic garbage collector is
off: where its passes fall in a run moves the count by thousands of instructions a request (a
worker spaces them, ``app.tune_gc``).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from callgrind import instructions

HERE = Path(__file__).resolve().parent
CASES = ("bare", "pool", "bare-stream", "pool-stream")

RUNNER = """
import asyncio, gc, sys
import aiohttp, uvloop
gc.disable()  # a collection's place in the run would move the count by thousands a request
case, n, port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
URL = f"http://127.0.0.1:{port}/v1/chat/completions"
stream = case.endswith("stream")
BODY = b'{"model":"bench-model","messages":[{"role":"user","content":"hi"}]' + (
    b',"stream":true}' if stream else b"}")

async def bare():
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    headers = {"content-type": "application/json"}
    async def one():
        async with session.post(URL, data=BODY, headers=dict(headers)) as r:
            if stream:
                async for chunk in r.content.iter_any():
                    pass
            else:
                await r.read()
    for _ in range(50 + n):
        await one()
    await session.close()

async def pool():
    from relay.config.model import Timeouts
    from relay.upstream.pool import UpstreamPool
    p = UpstreamPool()
    await p.start()
    timeouts = Timeouts()
    static = {"content-type": "application/json", "authorization": "Bearer sk-bench"}
    async def one(i):
        headers = dict(static)
        headers["x-request-id"] = "req_%032x" % i
        if stream:
            headers["accept"] = "text/event-stream"
        r = await p.send("mock", URL, headers, BODY, timeouts, stream=stream)
        try:
            if stream:
                async for chunk in r.chunks():
                    pass
            else:
                await r.read()
        finally:
            r.close()
    for i in range(50 + n):
        await one(i)
    await p.close()

uvloop.run(bare() if case.startswith("bare") else pool())
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def count(tree: Path, runner: Path, case: str, n: int, port: int) -> int:
    """Instructions of one run (callgrind's total)."""
    return instructions(tree, [str(runner), case, str(n), str(port)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", type=Path, help="a checkout (repeatable)")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--case", action="append", choices=CASES)
    parser.add_argument(
        "--chunk-gap-ms", type=float, default=0.0, help="the mock's gap between stream chunks"
    )
    args = parser.parse_args()
    trees = args.tree or [HERE.parent]
    cases = args.case or list(CASES)
    port = free_port()
    mock = subprocess.Popen(
        [sys.executable, str(HERE / "mock_upstream.py"), "--port", str(port), "--chunks", "20",
         "--chunk-gap-ms", str(args.chunk_gap_ms)]
    )  # fmt: skip
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        with tempfile.TemporaryDirectory() as tmp:
            runner = Path(tmp) / "run.py"
            runner.write_text(RUNNER)
            jobs = {}
            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                for tree in trees:
                    for case in cases:
                        if case.startswith("bare") and tree != trees[0]:
                            continue  # the bare cases do not depend on the tree
                        for n in (0, args.requests):
                            key = (str(tree), case, n)
                            jobs[key] = pool.submit(count, tree, runner, case, n, port)
            totals = {key: job.result() for key, job in jobs.items()}
    finally:
        mock.terminate()
        mock.wait()
    print(f"{'tree':<40}{'case':>14}{'instructions per request':>28}")
    for tree in trees:
        for case in cases:
            if (str(tree), case, 0) not in totals:
                continue
            per = totals[(str(tree), case, args.requests)] - totals[(str(tree), case, 0)]
            print(f"{str(tree)[-40:]:<40}{case:>14}{per / args.requests:>28,.0f}")


if __name__ == "__main__":
    main()
