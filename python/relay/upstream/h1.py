"""The upstream HTTP/1.1 client of the request path: one asyncio protocol per connection,
connections kept alive between requests, nothing per request but the request's own work.

Why not aiohttp here: one request through aiohttp's ``ClientSession`` costs about 200 us of
CPU on the reference box, some 45% of the bare stack's whole request (granian + aiohttp, no
policy: 454 us; the same proxy on this client: 250 us, ``benches/README.md``, "The upstream
client"). Its cost is Python glue (request and response objects, multidicts, stream readers,
timers, tracing hooks), not parsing. This module does what a provider call needs and no more:
``POST`` with a body held whole, a response read whole (bounded) or relayed as it arrives,
``Content-Length`` / chunked / close-delimited bodies, gzip and deflate, TLS, keep-alive with
a cap per host, and the connect, first-byte, idle and total timeouts. aiohttp stays for the
pass-through routes (streamed uploads, any method: :meth:`UpstreamPool.request`) and for
``server.upstream_client: aiohttp``.

An abandoned answer (a client gone mid-stream, a cancelled attempt) aborts its connection at
once, so the provider stops generating; only a response read to its end goes back to the pool.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import zlib
from collections import deque
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import aiohappyeyeballs
from yarl import URL

from relay.config.model import Timeouts
from relay.errors import GatewayError, UpstreamProtocolError, UpstreamTimeout, UpstreamUnreachable
from relay.native import ChunkedDecoder, InvalidChunkedBody
from relay.upstream.bounds import MAX_ERROR_BODY, too_large

# The largest response head accepted, and the body bytes buffered before reading pauses (a
# slow client of a fast stream must not make the worker hold the whole stream).
MAX_HEAD = 64 * 1024
HIGH_WATER = 256 * 1024
# A released answer's rest (a stream's terminator after its end event) is read for at most
# this long and this many bytes to keep its connection; past either the connection is closed.
RELEASE_S = 1.0
RELEASE_BYTES = 64 * 1024
# Idle connections are closed after this long (providers close theirs after a minute or more).
KEEPALIVE_S = 30.0
_MAX_TARGETS = 1024
# The head start of one address of a host over the next when connecting (aiohttp's too).
HAPPY_EYEBALLS_S = 0.25  # distinct URLs kept parsed (a signed URL may hold a model or a region)

# Framing of a response body.
_LENGTH, _CHUNKED, _UNTIL_CLOSE, _NONE = 0, 1, 2, 3

# Set by the client itself: a caller's value is ignored (the body's length is the real one).
_OWN = frozenset(("content-length", "transfer-encoding", "connection"))


class _Target:
    """A URL parsed once: the pool key, the request target and the ``Host`` header."""

    __slots__ = ("host", "host_header", "key", "port", "request_line", "tls")

    def __init__(self, url: URL) -> None:
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"not an http(s) URL: {url}")
        self.tls = url.scheme == "https"
        self.host = url.raw_host or url.host
        self.port = url.port or (443 if self.tls else 80)
        self.key = (self.tls, self.host, self.port)
        default = 443 if self.tls else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.host_header = host if self.port == default else f"{host}:{self.port}"
        target = url.raw_path_qs or "/"
        self.request_line = f"POST {target} HTTP/1.1\r\n"


def request_head(target: _Target, headers: Mapping[str, str], length: int) -> bytes:
    """The request's head: the caller's headers, the length, and aiohttp's defaults where the
    caller set none (``Host``, ``Accept``, ``Accept-Encoding`` without ``br``,
    ``Content-Type``). A caller's ``Host`` is sent as given (a signed request signs it).

    A name or value holding CR or LF would let a value forwarded from a client add headers or
    a second request: refused (a ``ValueError``), as aiohttp refuses it."""
    parts = [target.request_line, ""]
    accept_encoding = accept = content_type = host = False
    for name, value in headers.items():
        lower = name.lower()
        if lower in _OWN:
            continue
        if lower == "host":
            host = True
            parts[1] = f"{name}: {value}\r\n"
            continue
        if lower == "accept-encoding":
            accept_encoding = True
        elif lower == "accept":
            accept = True
        elif lower == "content-type":
            content_type = True
        parts.append(f"{name}: {value}\r\n")
    if not host:
        parts[1] = f"Host: {target.host_header}\r\n"
    if not accept:
        parts.append("Accept: */*\r\n")
    if not accept_encoding:
        parts.append("Accept-Encoding: gzip, deflate\r\n")
    if not content_type:
        parts.append("Content-Type: application/octet-stream\r\n")
    parts.append(f"Content-Length: {length}\r\n\r\n")
    text = "".join(parts)
    # Every line ends with CRLF and no CR or LF is anywhere else.
    lines = len(parts) + 1  # one line a part, and the blank line at the end
    if text.count("\n") != lines or text.count("\r") != lines:
        raise ValueError("a header name or value holds a line break")
    return text.encode("utf-8")


class _Connection(asyncio.Protocol):
    """One connection to one origin; at most one response in flight."""

    def __init__(self, pool: H1Pool, key: tuple[bool, str, int]) -> None:
        self.pool = pool
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.response: H1Response | None = None
        self.closed = False
        self.counted = False  # among the pool's open connections to its origin
        self.idle_since = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool._forget(self)
        response = self.response
        if response is not None:
            response._lost()

    def data_received(self, data: bytes) -> None:
        response = self.response
        if response is None:  # bytes nobody asked for: the connection cannot be trusted
            self.abort()
            return
        response._feed(data)

    def eof_received(self) -> bool:
        return False  # close the transport: a half-closed upstream is a closed one

    def abort(self) -> None:
        """Drop the connection now (the peer sees a reset or a close at once)."""
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.abort()


class H1Response:
    """A provider's answer on a :class:`_Connection`; the ``UpstreamResponse`` of
    :mod:`relay.stage`. Header names are in lower case; repeated ones joined with ", "."""

    __slots__ = (
        "_body_size",
        "_buffered",
        "_chunked",
        "_conn",
        "_decoder",
        "_done",
        "_drain_limit",
        "_draining",
        "_error",
        "_framing",
        "_head",
        "_idle",
        "_keep_alive",
        "_length_left",
        "_limit",
        "_loop",
        "_max_body",
        "_parts",
        "_paused",
        "_provider",
        "_read_at",
        "_read_timeout",
        "_timer",
        "_timer_at",
        "_total_at",
        "_waiter",
        "_whole",
        "headers",
        "status",
    )

    def __init__(
        self,
        conn: _Connection,
        provider: str,
        loop: asyncio.AbstractEventLoop,
        read_timeout: float | None,
        total_at: float | None,
        max_body: int,
    ) -> None:
        self._conn = conn
        self._provider = provider
        self._loop = loop
        self.status = 0
        self.headers: Mapping[str, str] = {}
        self._head = bytearray()  # bytes before the head ends
        self._framing = _NONE
        self._length_left = 0
        self._chunked: ChunkedDecoder | None = None
        self._decoder: Any = None
        self._keep_alive = True
        self._max_body = max_body
        self._limit = max_body
        self._parts: deque[bytes] = deque()
        self._buffered = 0
        self._body_size = 0  # decoded bytes delivered so far
        self._paused = False
        self._whole = False  # read whole (read()): never paused
        self._draining = False  # released (release()): the rest is read and dropped
        self._drain_limit = 0
        # The idle timeout after the first body bytes of a stream (None: the first-byte one).
        self._idle: float | None = None
        self._done = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        # Timing: reads are timed from now; ``_read_at`` is the last read's time.
        self._read_timeout = read_timeout
        self._total_at = total_at
        self._read_at = loop.time()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._arm()

    # -- the connection's side -----------------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        if self._done or self._error is not None:
            self._keep_alive = False
            return
        self._read_at = self._loop.time()
        try:
            if not self.status:
                self._head += data
                data = self._parse_head()
                if not self.status:
                    return
                self._wake()  # the head is in
            if data and not self._done:
                self._feed_body(data)
        except UpstreamProtocolError as err:
            self._fail(err)

    def _parse_head(self) -> bytes:
        """Parse the head once it is whole; the bytes after it. Informational answers
        (``100 Continue``) are skipped."""
        while True:
            buf = self._head
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    raise self._malformed(f"a response head over {MAX_HEAD} bytes")
                return b""
            lines = bytes(buf[:end]).split(b"\r\n")
            rest = bytes(buf[end + 4 :])
            buf.clear()
            status_line = lines[0]
            version, _, tail = status_line.partition(b" ")
            code = tail[:3]
            if not version.startswith(b"HTTP/1.") or len(code) != 3 or not code.isdigit():
                raise self._malformed("a response that is not HTTP/1.x")
            status = int(code)
            if 100 <= status < 200 and status != 101:
                buf += rest
                continue
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, sep, value = line.partition(b":")
                if not sep or not name or name != name.strip() or b" " in name:
                    raise self._malformed("a malformed response header")
                key = name.decode("latin-1").lower()
                text = value.strip(b" \t").decode("latin-1")
                seen = headers.get(key)
                headers[key] = text if seen is None else f"{seen}, {text}"
            self.headers = headers
            self.status = status
            if status >= 300:
                self._limit = min(self._max_body, MAX_ERROR_BODY)
            self._framing_of(status, version)
            return rest

    def _framing_of(self, status: int, version: bytes) -> None:
        headers = self.headers
        connection = headers.get("connection", "").lower()
        if version == b"HTTP/1.0" or "close" in connection:
            self._keep_alive = False
        encoding = headers.get("content-encoding", "").strip().lower()
        if encoding in ("gzip", "x-gzip"):
            self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._decoder = _Deflate()
        elif encoding not in ("", "identity"):
            raise self._malformed(f"a body in an unsupported content-encoding '{encoding}'")
        if status in (204, 304):
            self._framing = _NONE
            self._finish()
            return
        transfer = headers.get("transfer-encoding", "").lower()
        if transfer:
            if transfer.rsplit(",", 1)[-1].strip() != "chunked":
                raise self._malformed(f"a body in transfer-encoding '{transfer}'")
            self._framing = _CHUNKED
            self._chunked = ChunkedDecoder()
            return
        length = headers.get("content-length")
        if length is None:
            self._framing = _UNTIL_CLOSE
            self._keep_alive = False
            return
        if not length.isdigit():
            raise self._malformed(f"Content-Length '{length}'")
        self._framing = _LENGTH
        self._length_left = int(length)
        if not self._length_left:
            self._finish()

    def _feed_body(self, data: bytes) -> None:
        framing = self._framing
        if framing == _LENGTH:
            left = self._length_left
            if len(data) >= left:
                if len(data) > left:
                    self._keep_alive = False  # more than announced: never reuse it
                    data = data[:left]
                self._length_left = 0
                self._deliver(data)
                self._finish()
                return
            self._length_left = left - len(data)
            self._deliver(data)
        elif framing == _CHUNKED:
            self._feed_chunked(data)
        elif framing == _UNTIL_CLOSE:
            self._deliver(data)
        else:
            self._keep_alive = False

    def _feed_chunked(self, data: bytes) -> None:
        """Strip the chunked framing of one read (natively: a stream's read holds dozens of
        events, each its own chunk); its payload is delivered once."""
        chunked = self._chunked
        assert chunked is not None
        try:
            payload = chunked.feed(data)
        except InvalidChunkedBody as err:
            raise self._malformed(str(err)) from None
        if payload:
            self._deliver(payload)
        if chunked.done:
            if chunked.trailing:
                self._keep_alive = False  # more than the body: never reuse it
            if not (self._done or self._error):
                self._finish()

    def _deliver(self, data: bytes) -> None:
        if self._draining:  # released: what is left is read to keep the connection, dropped
            self._body_size += len(data)
            if self._body_size > self._drain_limit:
                self._fail(self._too_large())
            return
        decoder = self._decoder
        if decoder is not None:
            # Inflated a bounded piece at a time: a small compressed body cannot make the
            # worker hold more than the bound (plus one byte, to tell it was over).
            room = max(self._limit - self._body_size, 0) + 1
            data = decoder.decompress(data, room)
            if decoder.unconsumed_tail:
                self._body_size += len(data) + 1  # over the bound whatever the rest holds
                self._fail(self._too_large())
                return
        if not data:
            return
        self._body_size += len(data)
        self._parts.append(data)
        self._buffered += len(data)
        if (
            self._buffered > HIGH_WATER
            and not (self._paused or self._whole)
            and self._conn.transport is not None
        ):
            self._paused = True
            self._conn.transport.pause_reading()
        self._wake()

    def _finish(self) -> None:
        decoder = self._decoder
        if decoder is not None:
            try:
                tail = decoder.flush()
            except zlib.error:
                tail = b""
            if tail:
                self._body_size += len(tail)
                self._parts.append(tail)
                self._buffered += len(tail)
        self._done = True
        self._disarm()
        self._wake()
        conn = self._conn
        conn.response = None
        transport = conn.transport
        if (
            self._keep_alive
            and not self._paused
            and not conn.closed
            and transport is not None
            # Answered before the whole request was written (an early error): the rest of
            # the body would reach the provider as the next request.
            and not transport.get_write_buffer_size()
        ):
            conn.pool._release(conn)
        else:
            conn.abort()

    def _lost(self) -> None:
        if self._done:
            return
        if self.status and self._framing == _UNTIL_CLOSE:
            self._finish()
            return
        where = "in the middle of its response" if self.status else "before answering"
        self._fail(
            UpstreamUnreachable(f"provider '{self._provider}' closed the connection {where}")
        )

    def _fail(self, err: BaseException) -> None:
        if self._done:  # read to its end: its connection may serve another request now
            return
        if self._error is None:
            self._error = err
        self._disarm()
        self._conn.response = None
        self._conn.abort()
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- timeouts ------------------------------------------------------------------------------

    def _deadline(self) -> float | None:
        timeout, total_at = self._read_timeout, self._total_at
        read_by = None if timeout is None or self._paused else self._read_at + timeout
        if total_at is None:
            return read_by
        return total_at if read_by is None else min(read_by, total_at)

    def _arm(self) -> None:
        deadline = self._deadline()
        if deadline is None:
            return
        timer = self._timer
        if timer is not None:
            if self._timer_at <= deadline:
                return  # fires first and re-arms for what is left
            timer.cancel()
        self._timer_at = deadline
        self._timer = self._loop.call_at(deadline, self._on_timer)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        if self._done or self._error is not None:
            return
        deadline = self._deadline()
        if deadline is None:
            return
        if self._loop.time() < deadline:
            self._timer_at = deadline
            self._timer = self._loop.call_at(deadline, self._on_timer)
            return
        provider = self._provider
        if self.status:
            self._fail(UpstreamTimeout(f"provider '{provider}' stopped sending (idle timeout)"))
        else:
            self._fail(
                UpstreamTimeout(
                    f"provider '{provider}' did not answer within the first-byte timeout"
                )
            )

    def _set_read_timeout(self, seconds: float | None) -> None:
        self._read_timeout = seconds
        self._arm()

    # -- the caller's side ---------------------------------------------------------------------

    async def _wait(self) -> None:
        waiter = self._loop.create_future()
        self._waiter = waiter
        try:
            await waiter
        except BaseException:
            self._fail(asyncio.CancelledError())
            raise

    def _take(self) -> bytes:
        parts = self._parts
        data = parts.popleft() if len(parts) == 1 else b"".join(parts)
        parts.clear()
        self._buffered = 0
        if self._paused:
            self._resume()
        return data

    def _resume(self) -> None:
        self._paused = False
        conn = self._conn
        if conn.transport is not None and not conn.closed:
            conn.transport.resume_reading()
        if not self._done:
            self._read_at = self._loop.time()
            self._arm()

    async def _head_in(self) -> None:
        while not self.status:
            if self._error is not None:
                raise self._error
            await self._wait()

    async def read(self) -> bytes:
        """The whole body, decoded; a 502 when it is larger than the bound."""
        self._whole = True
        if self._paused:
            self._resume()
        while not self._done:
            if self._error is not None:
                raise self._error
            if self._body_size > self._limit:
                self._fail(self._too_large())
                raise self._too_large()
            await self._wait()
        if self._body_size > self._limit:
            raise self._too_large()
        return self._take() if self._parts else b""

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        """The body as it arrives, in whatever pieces the network delivers."""
        first = True
        # Leaving early closes nothing: the caller ends the answer with close() or release().
        while True:
            if self._parts:
                yield self._take()
                if first:
                    first = False
                    if self._idle is not None:
                        self._set_read_timeout(self._idle)
                continue
            if self._done:
                return
            if self._error is not None:
                raise self._error
            await self._wait()

    def release(self) -> None:
        """The caller read what it needed (a stream's end event): the rest of the body (the
        stream's terminator, usually in flight) is read and dropped, and the connection kept
        for the next call if the body ends within :data:`RELEASE_S` and
        :data:`RELEASE_BYTES`; otherwise it is closed, as :meth:`close` closes it now."""
        if self._done:
            return
        if self._error is not None or not self.status or self._framing == _UNTIL_CLOSE:
            self.close()
            return
        self._draining = True
        self._drain_limit = self._body_size + RELEASE_BYTES
        self._parts.clear()
        self._buffered = 0
        if self._paused:
            self._resume()
        until = self._loop.time() + RELEASE_S
        self._total_at = until if self._total_at is None else min(self._total_at, until)
        self._arm()

    def close(self) -> None:
        """Abort the answer (a no-op once it was read to its end)."""
        if not self._done:
            if self._error is None:
                self._error = UpstreamUnreachable(f"the answer of '{self._provider}' was closed")
            self._disarm()
            conn = self._conn
            if conn.response is self:
                conn.response = None
            conn.abort()

    def _too_large(self) -> UpstreamProtocolError:
        return too_large(self._provider, self.status, self._limit)

    def _malformed(self, what: str) -> UpstreamProtocolError:
        self._keep_alive = False
        return UpstreamProtocolError(f"provider '{self._provider}' answered with {what}")


class _Deflate:
    """``deflate`` as servers send it: zlib-wrapped (the standard) or raw (common)."""

    __slots__ = ("_inner", "unconsumed_tail")

    def __init__(self) -> None:
        self._inner: Any = None
        self.unconsumed_tail = b""

    def decompress(self, data: bytes, max_length: int) -> bytes:
        if self._inner is None:
            raw = bool(data) and (data[0] & 0x0F) != 8
            self._inner = zlib.decompressobj(-zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
        out: bytes = self._inner.decompress(data, max_length)
        self.unconsumed_tail = self._inner.unconsumed_tail
        return out

    def flush(self) -> bytes:
        return b"" if self._inner is None else bytes(self._inner.flush())


class H1Pool:
    """The worker's HTTP/1.1 connections, kept alive per origin (scheme, host, port)."""

    def __init__(
        self,
        connections_per_host: int = 0,
        max_body_bytes: int = 0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """``tls``: the context of https origins (default: the system's trust store, made at
        the first https connection)."""
        self._per_host = connections_per_host
        self._max_body = max_body_bytes
        self._idle: dict[tuple[bool, str, int], list[_Connection]] = {}
        self._open: dict[tuple[bool, str, int], int] = {}
        self._waiters: dict[tuple[bool, str, int], deque[asyncio.Future[_Connection | None]]] = {}
        self._targets: dict[tuple[str, bool], _Target] = {}
        self._tls = tls
        self._sweep: asyncio.TimerHandle | None = None
        self._closing = False

    def target(self, url: str, encoded: bool) -> _Target:
        """``url`` parsed (kept for the next time)."""
        found = self._targets.get((url, encoded))
        if found is None:
            found = _Target(URL(url, encoded=True) if encoded else URL(url))
            if len(self._targets) < _MAX_TARGETS:
                self._targets[(url, encoded)] = found
        return found

    async def send(
        self,
        provider: str,
        target: _Target,
        headers: Mapping[str, str],
        body: bytes,
        timeouts: Timeouts,
        *,
        stream: bool,
    ) -> H1Response:
        """POST ``body``; return once the response head is in."""
        loop = asyncio.get_running_loop()
        head = request_head(target, headers, len(body))  # a ValueError, as aiohttp's
        total_at = None if stream else loop.time() + timeouts.total_s
        conn = await self._acquire(provider, target, timeouts.connect_s, total_at, loop)
        first_byte, idle = timeouts.first_byte, timeouts.idle
        response = H1Response(conn, provider, loop, first_byte, total_at, self._max_body)
        if stream and idle != first_byte:
            response._idle = idle
        conn.response = response
        transport = conn.transport
        assert transport is not None
        if len(body) < 16384:
            transport.write(head + body)
        else:
            transport.writelines((head, body))
        try:
            await response._head_in()
        except GatewayError:
            raise
        except BaseException:
            response.close()
            raise
        return response

    async def _acquire(
        self,
        provider: str,
        target: _Target,
        connect_s: float,
        total_at: float | None,
        loop: asyncio.AbstractEventLoop,
    ) -> _Connection:
        key = target.key
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
        if self._per_host and self._open.get(key, 0) >= self._per_host:
            waiter: asyncio.Future[_Connection | None] = loop.create_future()
            self._waiters.setdefault(key, deque()).append(waiter)
            try:
                given = await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled() and waiter.result() is not None:
                    self._release(waiter.result())  # type: ignore[arg-type]
                raise
            if given is not None:
                return given
        self._open[key] = self._open.get(key, 0) + 1
        if total_at is not None:  # the connection is part of the whole call's time
            connect_s = min(connect_s, max(total_at - loop.time(), 0.0))
        try:
            return await self._connect(provider, target, connect_s, loop)
        except BaseException:
            self._open[key] -= 1
            self._wake_waiter(key)
            raise

    async def _connect(
        self, provider: str, target: _Target, connect_s: float, loop: asyncio.AbstractEventLoop
    ) -> _Connection:
        """A new connection to ``target``'s origin, within ``connect_s``."""
        tls = None
        if target.tls:
            if self._tls is None:
                self._tls = ssl.create_default_context()
            tls = self._tls
        made: list[_Connection] = []

        def factory() -> _Connection:
            conn = _Connection(self, target.key)
            made.append(conn)
            return conn

        sock: socket.socket | None = None
        try:
            async with asyncio.timeout(connect_s):
                addresses = await loop.getaddrinfo(
                    target.host, target.port, type=socket.SOCK_STREAM
                )
                # Happy eyeballs (RFC 8305), as aiohttp: a host whose first address does not
                # answer (IPv6 without a route) is reached on the next one 0.25 s later, not
                # after the whole connect timeout. uvloop's create_connection has no option
                # for it, so the socket is connected first and handed over.
                sock = await aiohappyeyeballs.start_connection(
                    addresses, happy_eyeballs_delay=HAPPY_EYEBALLS_S, interleave=1
                )
                _, conn = await loop.create_connection(
                    factory,
                    sock=sock,
                    ssl=tls,
                    server_hostname=target.host if tls is not None else None,
                )
        except TimeoutError:
            for conn in made:
                conn.abort()
            if sock is not None and not made:
                sock.close()
            raise UpstreamTimeout(f"could not connect to provider '{provider}' in time") from None
        except OSError as exc:
            if sock is not None and not made:
                sock.close()
            reason = exc.strerror or (str(exc) if isinstance(exc, ssl.SSLError) else "")
            raise UpstreamUnreachable(
                f"could not connect to provider '{provider}': {reason or 'connection failed'}"
            ) from None
        conn.counted = True
        return conn

    def _release(self, conn: _Connection) -> None:
        """A connection whose answer was read to its end: to a waiter, or kept idle."""
        if self._closing:
            conn.abort()
            return
        waiters = self._waiters.get(conn.key)
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        loop = asyncio.get_running_loop()
        conn.idle_since = loop.time()
        self._idle.setdefault(conn.key, []).append(conn)
        if self._sweep is None:
            self._sweep = loop.call_later(KEEPALIVE_S, self._close_stale)

    def _forget(self, conn: _Connection) -> None:
        """A closed connection: no longer counted or kept."""
        key = conn.key
        idle = self._idle.get(key)
        if idle and conn in idle:
            idle.remove(conn)
        if conn.counted:
            conn.counted = False
            self._open[key] -= 1
            self._wake_waiter(key)

    def _wake_waiter(self, key: tuple[bool, str, int]) -> None:
        waiters = self._waiters.get(key)
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # room for a new connection
                return

    def _close_stale(self) -> None:
        self._sweep = None
        loop = asyncio.get_running_loop()
        oldest = loop.time() - KEEPALIVE_S
        left = False
        for conns in self._idle.values():
            for conn in [c for c in conns if c.idle_since <= oldest]:
                conn.abort()
            left = left or bool(conns)
        if left and not self._closing:
            self._sweep = loop.call_later(KEEPALIVE_S, self._close_stale)

    async def close(self) -> None:
        """Close every connection."""
        self._closing = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for conns in list(self._idle.values()):
            for conn in list(conns):
                conn.abort()
        self._idle.clear()
