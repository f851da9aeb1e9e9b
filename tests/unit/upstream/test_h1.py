"""The gateway's own HTTP/1.1 client (``relay.upstream.h1``) against a raw TCP server that
writes exactly the bytes each test needs: framings, encodings, cuts, stalls, keep-alive, the
cap per host, and an abandoned answer closed at once."""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import ipaddress
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from relay.config.model import Timeouts
from relay.errors import UpstreamProtocolError, UpstreamTimeout, UpstreamUnreachable
from relay.upstream.h1 import HAPPY_EYEBALLS_S, H1Pool, H1Response, request_head

CERT_LIFE = dt.timedelta(days=1)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
FAST = Timeouts(connect_s=2.0, read_s=2.0, total_s=5.0)


class RawServer:
    """A TCP server on loopback in its own thread; ``handler`` serves each connection."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.handler: Handler | None = None
        self.generation = 0
        self.connections = 0
        self.active = 0
        self.most_active = 0
        self.closed_at: list[float] = []
        ready = threading.Event()

        async def start() -> None:
            self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()

        self.thread = threading.Thread(
            target=lambda: (self.loop.run_until_complete(start()), self.loop.run_forever()),
            daemon=True,
        )
        self.thread.start()
        ready.wait(5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        generation = self.generation  # a connection of an earlier test counts for none
        self.connections += 1
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        try:
            assert self.handler is not None
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if generation == self.generation:
                self.active -= 1
                self.closed_at.append(time.monotonic())
            writer.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/x"

    def reset(self, handler: Handler) -> None:
        self.generation += 1
        self.handler = handler
        self.connections = self.active = self.most_active = 0
        self.closed_at.clear()

    def stop(self) -> None:
        async def shut() -> None:
            self.server.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(shut(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture(scope="module")
def raw() -> Iterator[RawServer]:
    server = RawServer()
    yield server
    server.stop()


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One request's head and body (Content-Length framed, as the client sends)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head, await reader.readexactly(length)


def answering(*responses: bytes, then_close: bool = False) -> Handler:
    """Answer each request on a connection with the next of ``responses`` (the last repeats)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        i = 0
        while True:
            try:
                await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            writer.write(responses[min(i, len(responses) - 1)])
            await writer.drain()
            i += 1
            if then_close:
                return

    return handler


def json_answer(body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s"
        % (
            len(body),
            extra,
            body,
        )
    )


def run(coro_fn: Callable[[H1Pool], Awaitable[Any]], **pool_kw: Any) -> Any:
    async def main() -> Any:
        pool = H1Pool(**{"max_body_bytes": 1 << 20, **pool_kw})
        try:
            return await asyncio.wait_for(coro_fn(pool), 10)
        finally:
            await pool.close()

    return asyncio.run(main())


async def post(
    pool: H1Pool, url: str, *, stream: bool = False, timeouts: Timeouts = FAST
) -> H1Response:
    return await pool.send(
        "p",
        pool.target(url, False),
        {"content-type": "application/json"},
        b"{}",
        timeouts,
        stream=stream,
    )


def test_answers_are_read_and_the_connection_is_kept_alive(raw: RawServer) -> None:
    raw.reset(answering(json_answer(b'{"a":1}', b"X-Request-Id: r1\r\nx-ratelimit-a: 1\r\n")))

    async def go(pool: H1Pool) -> list[Any]:
        out = []
        for _ in range(3):
            response = await post(pool, raw.url)
            out.append((response.status, response.headers, await response.read()))
        return out

    answers = run(go)
    assert [body for _, _, body in answers] == [b'{"a":1}'] * 3
    status, headers, _ = answers[0]
    assert status == 200 and headers["x-request-id"] == "r1" and headers["x-ratelimit-a"] == "1"
    assert raw.connections == 1  # one connection for the three


@pytest.mark.parametrize(
    "wire",
    [
        # chunked, with an extension and a trailer, split in awkward places
        [
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nab",
            b"c\r\n",
            b"4\r\n",
            b"defg\r\n0\r\nTrailer: t\r\n\r\n",
        ],
        # an informational answer first
        [b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nabcdefg"],
        # the head and body a byte at a time
        [bytes([b]) for b in b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nabcdefg"],
    ],
)
def test_framings(raw: RawServer, wire: list[bytes]) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        for piece in wire:
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.001)
        await reader.read()  # kept open: the client must know the end from the framing

    raw.reset(handler)

    async def go(pool: H1Pool) -> bytes:
        return await (await post(pool, raw.url)).read()

    assert run(go) == b"abcdefg"


def test_a_body_delimited_by_the_close(raw: RawServer) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n\r\nuntil")
        await writer.drain()
        writer.write(b" the end")

    raw.reset(handler)

    async def go(pool: H1Pool) -> bytes:
        return b"".join([c async for c in (await post(pool, raw.url, stream=True)).chunks()])

    assert run(go) == b"until the end"


@pytest.mark.parametrize(
    ("encoding", "pack"),
    [
        (b"gzip", gzip.compress),
        (b"deflate", zlib.compress),
        (b"deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, as some send
    ],
)
def test_compressed_answers_are_decoded(raw: RawServer, encoding: bytes, pack: Any) -> None:
    body = b'{"text": "' + b"relay " * 2000 + b'"}'
    raw.reset(answering(json_answer(pack(body), b"Content-Encoding: " + encoding + b"\r\n")))

    async def go(pool: H1Pool) -> bytes:
        return await (await post(pool, raw.url)).read()

    assert run(go) == body


def test_a_compressed_answer_is_inflated_only_up_to_the_bound(raw: RawServer) -> None:
    bomb = gzip.compress(b"0" * (8 << 20))  # a few KiB on the wire
    raw.reset(answering(json_answer(bomb, b"Content-Encoding: gzip\r\n")))

    async def go(pool: H1Pool) -> None:
        response = await post(pool, raw.url)
        with pytest.raises(UpstreamProtocolError, match=r"over 1048576 bytes \(decompressed\)"):
            await response.read()

    run(go)


def test_an_error_answer_is_bounded_at_one_mebibyte(raw: RawServer) -> None:
    big = b"x" * (1 << 20 | 1)
    raw.reset(answering(b"HTTP/1.1 500 Oops\r\nContent-Length: %d\r\n\r\n%s" % (len(big), big)))

    async def go(pool: H1Pool) -> None:
        response = await post(pool, raw.url)
        assert response.status == 500
        with pytest.raises(UpstreamProtocolError, match="answered 500 with an error body over"):
            await response.read()

    run(go, max_body_bytes=8 << 20)


@pytest.mark.parametrize(
    ("wire", "error", "message"),
    [
        (b"", UpstreamUnreachable, "closed the connection before answering"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
            UpstreamUnreachable,
            "closed the connection in the middle of its response",
        ),
        (b"SMTP ready\r\n\r\n", UpstreamProtocolError, "not HTTP/1.x"),
        (
            b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n",
            UpstreamProtocolError,
            "malformed response header",
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", UpstreamProtocolError, "Content-Length"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            UpstreamProtocolError,
            "chunk size",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 1\r\n\r\nx",
            UpstreamProtocolError,
            "unsupported content-encoding 'br'",
        ),
    ],
)
def test_cut_and_malformed_answers(
    raw: RawServer, wire: bytes, error: type[Exception], message: str
) -> None:
    raw.reset(answering(wire, then_close=True))

    async def go(pool: H1Pool) -> None:
        with pytest.raises(error, match=message) as info:
            await (await post(pool, raw.url)).read()
        assert "provider 'p'" in str(info.value)

    run(go)


def test_an_unreachable_provider_says_why() -> None:
    async def go(pool: H1Pool) -> None:
        with pytest.raises(UpstreamUnreachable, match="could not connect to provider 'p': "):
            await post(pool, "http://127.0.0.1:9/v1/x")

    run(go)


def test_first_byte_and_total_timeouts(raw: RawServer) -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        for _ in range(100):  # a byte every 50 ms: every gap within the read timeout
            await asyncio.sleep(0.05)
            writer.write(b"x")
            await writer.drain()

    raw.reset(slow)

    async def go(pool: H1Pool) -> float:
        started = time.monotonic()
        response = await post(pool, raw.url, timeouts=Timeouts(read_s=1.0, total_s=0.5))
        with pytest.raises(UpstreamTimeout, match="idle timeout"):
            await response.read()
        return time.monotonic() - started

    assert 0.45 < run(go) < 1.5  # the total bound, not the 5 s the body would take


def test_an_abandoned_stream_is_closed_at_once(raw: RawServer) -> None:
    """The provider must stop generating: its connection is closed within 100 ms of the
    caller dropping the answer (aiohttp: within 50 ms; pyreqwest 0.15: never)."""

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        while True:
            writer.write(b"9\r\ndata: x\n\n\r\n")
            await writer.drain()
            await asyncio.sleep(0.01)

    raw.reset(endless)

    async def go(pool: H1Pool) -> float:
        response = await post(pool, raw.url, stream=True)
        async for _ in response.chunks():
            break
        dropped = time.monotonic()
        response.close()
        while not raw.closed_at:  # noqa: ASYNC110 (set by the server's thread)
            await asyncio.sleep(0.005)
        return raw.closed_at[0] - dropped

    assert run(go) < 0.1


def test_a_slow_reader_pauses_the_connection_and_misses_nothing(raw: RawServer) -> None:
    events = [b"data: %06d\n\n" % i for i in range(40000)]  # about 560 KB, written at once

    async def fast(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % sum(map(len, events)))
        writer.write(b"".join(events))
        await writer.drain()
        await reader.read()

    raw.reset(fast)

    async def go(pool: H1Pool) -> tuple[bytes, int]:
        response = await post(pool, raw.url, stream=True)
        got, most = [], 0
        async for chunk in response.chunks():
            most = max(most, len(chunk))
            got.append(chunk)
            await asyncio.sleep(0.002)
        return b"".join(got), most

    body, most = run(go)
    assert body == b"".join(events)
    assert most < 600_000


def test_the_cap_per_host_queues_requests_on_its_connections(raw: RawServer) -> None:
    async def slowish(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            await asyncio.sleep(0.02)
            writer.write(json_answer(b"{}"))
            await writer.drain()

    raw.reset(slowish)

    async def go(pool: H1Pool) -> list[bytes]:
        async def one() -> bytes:
            return await (await post(pool, raw.url)).read()

        return await asyncio.gather(*(one() for _ in range(6)))

    assert run(go, connections_per_host=2) == [b"{}"] * 6
    assert raw.connections == 2 and raw.most_active == 2


def test_more_bytes_than_announced_are_never_reused(raw: RawServer) -> None:
    raw.reset(answering(json_answer(b"{}") + b"HTTP/1.1 200 OK\r\n"))

    async def go(pool: H1Pool) -> list[bytes]:
        return [await (await post(pool, raw.url)).read() for _ in range(2)]

    assert run(go) == [b"{}", b"{}"]
    assert raw.connections == 2


def test_a_line_break_in_a_header_is_refused() -> None:
    target = H1Pool().target("http://example.test/v1/x", False)
    with pytest.raises(ValueError, match="line break"):
        request_head(target, {"x-forwarded": "a\r\nInjected: yes"}, 2)
    with pytest.raises(ValueError, match="line break"):
        request_head(target, {"host": "a\nb"}, 2)
    head = request_head(target, {"content-length": "99", "x-a": "b"}, 2)
    assert head == (
        b"POST /v1/x HTTP/1.1\r\nHost: example.test\r\nx-a: b\r\nAccept: */*\r\n"
        b"Accept-Encoding: gzip, deflate\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Length: 2\r\n\r\n"
    )
    # A signed request's Host is sent as signed, in the place of the client's own.
    signed = request_head(target, {"x-a": "b", "host": "example.test:443"}, 0)
    assert signed.startswith(b"POST /v1/x HTTP/1.1\r\nhost: example.test:443\r\nx-a: b\r\n")
    assert signed.count(b"ost: ") == 1


def _self_signed(tmp: Any) -> tuple[str, str]:
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "relay test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CERT_LIFE)
        .not_valid_after(now + CERT_LIFE)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


def test_https_verifies_the_provider_certificate(tmp_path: Any) -> None:
    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=cert)
    answer = json_answer(b'{"tls":true}')

    async def main() -> tuple[str, bytes]:
        server = await asyncio.start_server(answering(answer), "127.0.0.1", 0, ssl=server_ctx)
        url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/x"
        try:
            default = H1Pool(0, 1 << 20)  # the system's trust store: the test CA is not in it
            try:
                with pytest.raises(UpstreamUnreachable, match="could not connect") as refused:
                    await post(default, url)
            finally:
                await default.close()
            trusted = H1Pool(0, 1 << 20, tls=trusting)
            try:
                body = await (await post(trusted, url)).read()
            finally:
                await trusted.close()
        finally:
            server.close()
        return str(refused.value), body

    refused, body = asyncio.run(asyncio.wait_for(main(), 10))
    assert "certificate" in refused.lower()
    assert body == b'{"tls":true}'


def test_an_answer_before_the_whole_body_was_sent_is_not_reused(raw: RawServer) -> None:
    """A provider may refuse a large body from its head (413) while it is still being sent:
    the connection is not reused, or the rest of the body would be its next request."""

    async def early(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if b"content-length: 2\r\n" in head.lower():
            await reader.readexactly(2)
            writer.write(json_answer(b'{"small":1}'))
        else:
            writer.write(b"HTTP/1.1 413 Too Large\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()
        await reader.read()  # the body, if it still comes, is never read as a request

    raw.reset(early)

    async def go(pool: H1Pool) -> list[tuple[int, bytes]]:
        target = pool.target(raw.url, False)
        big = await pool.send("p", target, {}, b"x" * (16 << 20), FAST, stream=False)
        first = (big.status, await big.read())
        small = await post(pool, raw.url)
        return [first, (small.status, await small.read())]

    assert run(go) == [(413, b"{}"), (200, b'{"small":1}')]
    assert raw.connections == 2


def test_an_address_that_does_not_answer_is_passed_over_quickly(
    raw: RawServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host's first address swallows the connection (as IPv6 without a route does); the
    next one is tried after the happy-eyeballs delay, not after the connect timeout."""
    raw.reset(answering(json_answer(b"{}")))
    swallow = socket.socket()
    swallow.bind(("127.0.0.1", 0))
    swallow.listen(0)
    filler = socket.create_connection(swallow.getsockname())  # the backlog is full now
    dead = ("127.0.0.1", swallow.getsockname()[1])
    live = ("127.0.0.1", raw.port)

    async def resolve(host: str, port: int, **kw: Any) -> list[Any]:
        assert host == "provider.test"  # the name is resolved, then each address tried
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", addr) for addr in (dead, live)]

    async def go(pool: H1Pool) -> tuple[bytes, float]:
        monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", resolve)
        started = time.monotonic()
        response = await post(pool, f"http://provider.test:{raw.port}/v1/x")
        return await response.read(), time.monotonic() - started

    try:
        body, took = run(go)
    finally:
        filler.close()
        swallow.close()
    assert body == b"{}"
    assert HAPPY_EYEBALLS_S <= took < 1.5  # FAST's connect timeout is 2 s


def _stream_with_late_end(gap_s: float) -> Handler:
    """A stream whose end event and the body's terminator come ``gap_s`` apart."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            writer.write(b"10\r\ndata: [DONE]\n\n\n\n\r\n")
            await writer.drain()
            await asyncio.sleep(gap_s)
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    return handler


async def _to_the_end_event(pool: H1Pool, url: str) -> None:
    response = await post(pool, url, stream=True)
    async for chunk in response.chunks():
        if b"[DONE]" in chunk:
            break
    response.release()


@pytest.mark.parametrize(("gap_s", "connections"), [(0.05, 1), (1.5, 2)])
def test_a_released_stream_keeps_its_connection_when_its_end_follows(
    raw: RawServer, gap_s: float, connections: int
) -> None:
    """Released at the end event, a stream's connection serves the next call once the
    terminator arrives (50 ms later); one that does not arrive within a second is closed."""
    raw.reset(_stream_with_late_end(gap_s))

    async def go(pool: H1Pool) -> None:
        for _ in range(2):
            await _to_the_end_event(pool, raw.url)
            await asyncio.sleep(gap_s + 0.1)

    run(go)
    assert raw.connections == connections
