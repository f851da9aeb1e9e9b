"""Run an aiohttp application as a real HTTP server on loopback, in a thread of the test
process (its own event loop), and record what it received."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web


class Recorder:
    """Requests the fake received: ``{method, path, raw_path, query, headers, body}``."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    async def record(self, request: web.Request) -> dict[str, Any]:
        body = await request.read()
        entry = {
            "method": request.method,
            "path": request.path,
            "raw_path": request.raw_path,
            "query": dict(request.query),
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body": body,
        }
        self.requests.append(entry)
        return entry

    def last(self) -> dict[str, Any]:
        assert self.requests, "the fake received no request"
        return self.requests[-1]

    def reset(self) -> None:
        self.requests.clear()


@contextmanager
def serve(app: web.Application) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 (a free port); yields its base URL ``http://127.0.0.1:N``."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def start() -> None:
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        box["runner"] = runner
        box["port"] = runner.addresses[0][1]
        ready.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10), "fake server did not start"
    try:
        yield f"http://127.0.0.1:{box['port']}"
    finally:
        asyncio.run_coroutine_threadsafe(box["runner"].cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
