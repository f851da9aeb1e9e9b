"""Both clients of the pool (``server.upstream_client``: the gateway's own HTTP/1.1 client and
aiohttp with its cheaper classes) time reads alike: the read timeout fires after the configured
gap (and only then); and requests carry the headers stock aiohttp sends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from relay.config.model import Timeouts
from relay.errors import UpstreamTimeout
from relay.upstream.client import FITS, LazyReadTimeout
from relay.upstream.h1 import H1Response
from relay.upstream.pool import HttpResponse, UpstreamPool
from tests.fakes.threaded import Recorder, serve

STALL_S = 5.0  # far longer than the read timeouts tested: a stalled upstream


def _app(recorder: Recorder) -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        await recorder.record(request)
        return web.json_response({"ok": True})

    def streamer(gaps: list[float], stall_after: bool) -> Callable[..., Awaitable[Any]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            await request.read()
            response = web.StreamResponse()
            await response.prepare(request)
            await response.write(b"data: 0\n\n")
            for i, gap in enumerate(gaps, 1):
                await asyncio.sleep(gap)
                await response.write(b"data: %d\n\n" % i)
            if stall_after:
                await asyncio.sleep(STALL_S)
            await response.write_eof()
            return response

        return handler

    async def late(request: web.Request) -> web.Response:
        await asyncio.sleep(STALL_S)
        return web.json_response({})

    async def peer(request: web.Request) -> web.Response:
        await request.read()
        assert request.transport is not None
        return web.Response(body=b"%d" % request.transport.get_extra_info("peername")[1])

    app = web.Application()
    app.router.add_post("/echo", echo)
    app.router.add_post("/peer", peer)
    app.router.add_post("/trickle", streamer([0.1] * 6, stall_after=False))
    app.router.add_post("/stall", streamer([0.05, 0.05], stall_after=True))
    app.router.add_post("/late", late)
    return app


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[str, Recorder]]:
    recorder = Recorder()
    with serve(_app(recorder)) as url:
        yield url, recorder


CLIENTS = ("h1", "aiohttp")


async def _pool(client: Any = "aiohttp") -> UpstreamPool:
    pool = UpstreamPool(client=client)
    await pool.start()
    return pool


async def _chunks(response: HttpResponse | H1Response) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.chunks():
            yield chunk
    finally:
        response.close()


def test_the_cheaper_classes_fit_the_pinned_aiohttp() -> None:
    assert FITS


@pytest.mark.parametrize("client", CLIENTS)
def test_a_trickle_longer_than_the_read_timeout_completes(
    upstream: tuple[str, Recorder], client: str
) -> None:
    """Every gap (0.1 s) is within the timeout (0.35 s); the whole stream is not: a timer
    armed at the first read must move with the later ones."""

    async def run() -> bytes:
        pool = await _pool(client)
        try:
            response = await pool.send(
                "p", upstream[0] + "/trickle", {}, b"{}", Timeouts(read_s=0.35), stream=True
            )
            if client == "aiohttp":
                assert isinstance(response, HttpResponse)
                protocol = response._response.connection.protocol  # type: ignore[union-attr]
                assert isinstance(protocol, LazyReadTimeout)
            else:
                assert isinstance(response, H1Response)
            return b"".join([chunk async for chunk in _chunks(response)])
        finally:
            await pool.close()

    body = asyncio.run(run())
    assert body == b"".join(b"data: %d\n\n" % i for i in range(7))


@pytest.mark.parametrize("client", CLIENTS)
def test_a_stall_after_chunks_is_an_idle_timeout(
    upstream: tuple[str, Recorder], client: str
) -> None:
    """The first-byte timeout is long, the idle one short: once chunks flow, the shorter
    timeout replaces the armed one (else the stall would last the first-byte timeout)."""

    async def run() -> list[bytes]:
        pool = await _pool(client)
        got: list[bytes] = []
        try:
            response = await pool.send(
                "p",
                upstream[0] + "/stall",
                {},
                b"{}",
                Timeouts(first_byte_s=STALL_S * 2, idle_s=0.3),
                stream=True,
            )
            with pytest.raises(UpstreamTimeout, match="idle timeout"):
                async for chunk in _chunks(response):
                    got.append(chunk)
            return got
        finally:
            await pool.close()

    got = asyncio.run(asyncio.wait_for(run(), STALL_S * 3))
    assert b"".join(got) == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("stream", [False, True])
def test_no_answer_is_a_first_byte_timeout(
    upstream: tuple[str, Recorder], stream: bool, client: str
) -> None:
    async def run() -> None:
        pool = await _pool(client)
        try:
            with pytest.raises(UpstreamTimeout, match="first-byte timeout"):
                await pool.send(
                    "p", upstream[0] + "/late", {}, b"{}", Timeouts(read_s=0.3), stream=stream
                )
        finally:
            await pool.close()

    asyncio.run(run())


@pytest.mark.parametrize("client", CLIENTS)
def test_a_read_timer_left_armed_on_an_idle_connection_fires_for_nothing(
    upstream: tuple[str, Recorder], client: str
) -> None:
    """The answer read, the timer is not cancelled: when it fires with the connection idle in
    the pool, the connection stays usable for the next request."""

    async def run() -> list[bytes]:
        pool = await _pool(client)
        ports: list[bytes] = []
        try:
            for _ in range(2):
                response = await pool.send(
                    "p", upstream[0] + "/peer", {}, b"{}", Timeouts(read_s=0.2), stream=False
                )
                ports.append(await response.read())
                response.close()
                await asyncio.sleep(0.5)  # past the read timeout: the idle timer fires
        finally:
            await pool.close()
        return ports

    first, second = asyncio.run(run())
    assert first == second  # the same kept-alive connection


@pytest.mark.parametrize("client", CLIENTS)
def test_the_next_request_on_a_connection_gets_its_own_shorter_timeout(
    upstream: tuple[str, Recorder], client: str
) -> None:
    """A request with a long read timeout leaves the timer armed far ahead; the next one on
    the same connection, with a short timeout, must not wait for it."""

    async def run() -> None:
        pool = await _pool(client)
        try:
            response = await pool.send(
                "p", upstream[0] + "/peer", {}, b"{}", Timeouts(read_s=STALL_S * 2), stream=False
            )
            await response.read()
            response.close()
            with pytest.raises(UpstreamTimeout, match="first-byte timeout"):
                await pool.send(
                    "p", upstream[0] + "/late", {}, b"{}", Timeouts(read_s=0.3), stream=False
                )
        finally:
            await pool.close()

    asyncio.run(asyncio.wait_for(run(), STALL_S * 3))


def _sent_by(url: str, recorder: Recorder, session_of: Callable[[], Any], **kw: Any) -> Any:
    async def run() -> dict[str, str]:
        recorder.reset()
        send = await session_of()
        await send(url + "/echo", **kw)
        headers: dict[str, str] = recorder.last()["headers"]
        return headers

    return asyncio.run(run())


@pytest.mark.parametrize(
    "headers",
    [
        {"content-type": "application/json", "authorization": "Bearer k", "x-request-id": "r1"},
        {},  # no content type: aiohttp adds its own, as before
        {"accept": "text/event-stream", "accept-encoding": "identity"},
    ],
)
@pytest.mark.parametrize("client", CLIENTS)
def test_requests_carry_the_headers_aiohttp_sends_with_user_agent_skipped(
    upstream: tuple[str, Recorder], headers: dict[str, str], client: str
) -> None:
    """The same headers as stock aiohttp, but for ``br``: the gateway's own client does not
    offer brotli (it decodes gzip and deflate)."""
    url, recorder = upstream

    def pool_session() -> Any:
        async def make() -> Callable[..., Awaitable[None]]:
            pool = await _pool(client)

            async def send(target: str) -> None:
                for method in ("send", "request"):
                    if method == "send":
                        response = await pool.send(
                            "p", target, headers, b"{}", Timeouts(), stream=False
                        )
                    else:
                        response = await pool.request(
                            "p", "POST", target, headers, b"{}", Timeouts()
                        )
                    await response.read()
                    response.close()
                    got.append(recorder.last()["headers"])
                await pool.close()

            return send

        return make()

    def stock_session() -> Any:
        async def make() -> Callable[..., Awaitable[None]]:
            session = aiohttp.ClientSession(skip_auto_headers=("User-Agent",))

            async def send(target: str) -> None:
                async with session.post(target, data=b"{}", headers=headers) as response:
                    await response.read()
                await session.close()

            return send

        return make()

    got: list[dict[str, str]] = []
    stock = _sent_by(url, recorder, stock_session)
    _sent_by(url, recorder, pool_session)
    assert "user-agent" not in stock
    if client == "h1":
        sent, passed = got
        assert sent == {
            **stock,
            "accept-encoding": stock["accept-encoding"].replace(", br", ""),
        }
        assert passed == stock  # pass-through requests: aiohttp
    else:
        assert got == [stock, stock]
