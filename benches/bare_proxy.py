"""Reference floors for the gateway: what the serving stack costs without any of Relay's code.

Two RSGI apps for granian, on the same stack as Relay (granian RSGI + uvloop, aiohttp client):

* ``bare_proxy:proxy`` forwards ``POST /v1/chat/completions`` to the upstream and relays the
  answer (whole JSON body, or an SSE stream chunk by chunk) with no parsing, routing,
  accounting or error mapping: the least any gateway on this stack can cost;
* ``bare_proxy:h1proxy`` is the same pass-through on Relay's own upstream client
  (``relay.upstream.h1``, ``python/`` on ``PYTHONPATH``) instead of aiohttp: the floor with
  the client Relay uses for provider calls;
* ``bare_proxy:static`` answers every request with fixed bytes: granian alone.

Run one pinned like the gateway and point ``loadgen.py`` at it, e.g.::

    BARE_UPSTREAM=http://127.0.0.1:9101/v1 taskset -c 0 granian --interface rsgi \\
        --loop uvloop --workers 1 --port 8090 --working-dir benches bare_proxy:proxy
    python3 benches/loadgen.py --url http://127.0.0.1:8090/v1 --rate 500 --cpu 1

Not part of ``run.py``; see "Where the added latency goes" in benches/README.md.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import aiohttp

UPSTREAM = os.environ.get("BARE_UPSTREAM", "http://127.0.0.1:9101/v1").rstrip("/")
JSON = ("content-type", "application/json")


class Proxy:
    """Forward to ``$BARE_UPSTREAM`` with one pooled aiohttp session per worker."""

    session: aiohttp.ClientSession

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        async def start() -> aiohttp.ClientSession:
            return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

        self.session = loop.run_until_complete(start())

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.run_until_complete(self.session.close())

    async def __rsgi__(self, scope: Any, proto: Any) -> None:
        if scope.path != "/v1/chat/completions":
            proto.response_bytes(200 if scope.path == "/readyz" else 404, [JSON], b"{}")
            return
        body = await proto()
        async with self.session.post(
            UPSTREAM + "/chat/completions", data=body, headers=dict([JSON])
        ) as upstream:
            if not upstream.content_type.startswith("text/event-stream"):
                data = await upstream.read()
                proto.response_bytes(upstream.status, [JSON], data)
                return
            transport = proto.response_stream(
                upstream.status, [("content-type", "text/event-stream")]
            )
            async for chunk in upstream.content.iter_any():
                await transport.send_bytes(chunk)


class H1Proxy:
    """``Proxy`` on Relay's own HTTP/1.1 client (imported when the app is first called)."""

    pool: Any
    target: Any
    timeouts: Any

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        from relay.config.model import Timeouts
        from relay.upstream.h1 import H1Pool

        self.timeouts = Timeouts()
        self.pool = H1Pool(0, 128 * 1024 * 1024)
        self.target = self.pool.target(UPSTREAM + "/chat/completions", False)

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.run_until_complete(self.pool.close())

    async def __rsgi__(self, scope: Any, proto: Any) -> None:
        if scope.path != "/v1/chat/completions":
            proto.response_bytes(200 if scope.path == "/readyz" else 404, [JSON], b"{}")
            return
        body = await proto()
        stream = b'"stream":true' in body or b'"stream": true' in body
        upstream = await self.pool.send(
            "bare", self.target, dict([JSON]), body, self.timeouts, stream=stream
        )
        if not upstream.headers.get("content-type", "").startswith("text/event-stream"):
            proto.response_bytes(upstream.status, [JSON], await upstream.read())
            return
        transport = proto.response_stream(upstream.status, [("content-type", "text/event-stream")])
        async for chunk in upstream.chunks():
            await transport.send_bytes(chunk)


class Static:
    """Fixed bytes for every request: the cost of granian itself."""

    async def __rsgi__(self, scope: Any, proto: Any) -> None:
        await proto()
        proto.response_bytes(200, [JSON], b'{"choices":[{"message":{"content":"hi"}}]}')


proxy = Proxy()
h1proxy = H1Proxy()
static = Static()
