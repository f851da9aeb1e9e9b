"""One aiohttp session per worker, behind a small interface: send a body, read JSON or a byte
stream, abort. Transport errors are mapped to :mod:`relay.errors` here and nowhere else.

A body read whole (a JSON answer, an error answer) is read within a bound counted after
decompression (``server.max_upstream_body_bytes``; error answers at most
:data:`MAX_ERROR_BODY`): aiohttp inflates a compressed body a bounded piece at a time, so a
small compressed answer cannot make the worker hold gigabytes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterable, Mapping
from typing import Literal

import aiohttp
from yarl import URL

from relay.config.model import Timeouts
from relay.errors import (
    GatewayError,
    UpstreamProtocolError,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from relay.stage import UpstreamResponse
from relay.upstream.bounds import MAX_BODY, MAX_ERROR_BODY, too_large
from relay.upstream.client import session_options
from relay.upstream.h1 import H1Pool


class HttpResponse:
    """An aiohttp response with transport errors mapped to gateway errors.

    Until the first body bytes the socket read timeout is the first-byte timeout; from then
    on, the idle timeout (the longest gap between two reads)."""

    __slots__ = ("_idle", "_limit", "_provider", "_response", "headers", "status")

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        provider: str,
        idle_s: float | None = None,
        max_body: int = MAX_BODY,
    ) -> None:
        self._response = response
        self._provider = provider
        self._idle = idle_s
        self.status = status = response.status
        self.headers: Mapping[str, str] = response.headers
        self._limit = max_body if status < 300 else min(max_body, MAX_ERROR_BODY)

    async def read(self) -> bytes:
        """The whole body, decompressed; a 502 when it is larger than the bound."""
        response = self._response
        limit = self._limit
        try:
            content = response.content
            size = 0
            parts: list[bytes] = []
            while data := await content.readany():
                size += len(data)
                if size > limit:
                    raise self._too_large(limit)
                parts.append(data)
                if content.at_eof():  # the usual answer, whole in one read: no second await
                    break
            return parts[0] if len(parts) == 1 else b"".join(parts)
        except BaseException as exc:
            response.close()
            raise map_transport_error(exc, self._provider, mid_body=True) from None

    def _too_large(self, limit: int) -> UpstreamProtocolError:
        return too_large(self._provider, self.status, limit)

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        content = self._response.content
        try:
            data = await content.readany()
            if self._idle is not None:
                self._set_read_timeout(self._idle)
            while data:
                yield data
                data = await content.readany()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            self._response.close()
            raise map_transport_error(exc, self._provider, mid_body=True) from None

    def close(self) -> None:
        self._response.close()

    def release(self) -> None:
        """As :meth:`close`: aiohttp keeps a connection only once its body was read whole."""
        self._response.close()

    def _set_read_timeout(self, seconds: float) -> None:
        connection = self._response.connection
        protocol = connection.protocol if connection is not None else None
        if protocol is not None:
            protocol.read_timeout = seconds


def map_transport_error(exc: BaseException, provider: str, *, mid_body: bool) -> BaseException:
    """Map an aiohttp/asyncio failure to the gateway error a client sees (others pass as is)."""
    if isinstance(exc, GatewayError | asyncio.CancelledError):
        return exc
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            return UpstreamTimeout(f"could not connect to provider '{provider}' in time")
        if mid_body:
            return UpstreamTimeout(f"provider '{provider}' stopped sending (idle timeout)")
        return UpstreamTimeout(
            f"provider '{provider}' did not answer within the first-byte timeout"
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamUnreachable(
            f"could not connect to provider '{provider}': {exc.os_error.strerror or 'connection failed'}"
        )
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError):
        where = "in the middle of its response" if mid_body else "before answering"
        return UpstreamUnreachable(f"provider '{provider}' closed the connection {where}")
    if isinstance(exc, aiohttp.ClientError | OSError):
        return UpstreamUnreachable(
            f"provider '{provider}' could not be reached ({type(exc).__name__})"
        )
    return exc


class UpstreamPool:
    """The worker's outbound HTTP pool; started on the worker's loop, closed on shutdown."""

    def __init__(
        self,
        connections_per_host: int = 0,
        max_body_bytes: int = MAX_BODY,
        *,
        client: Literal["h1", "aiohttp"] = "h1",
    ) -> None:
        # 0: no cap. A cap keeps a burst from opening thousands of sockets to one provider.
        self._per_host = connections_per_host
        self._max_body = max_body_bytes
        self._session: aiohttp.ClientSession | None = None
        # Provider calls (send) go through the gateway's own HTTP/1.1 client unless
        # ``server.upstream_client`` is ``aiohttp``; pass-through requests always use aiohttp.
        self._h1 = H1Pool(connections_per_host, max_body_bytes) if client == "h1" else None
        # Per (timeouts, stream): aiohttp's timeout and the idle timeout to switch to after
        # the first bytes (None: the same as the first-byte one).
        self._timeouts: dict[tuple[Timeouts, bool], tuple[aiohttp.ClientTimeout, float | None]]
        self._timeouts = {}
        # Parsed URLs per (url, encoded): yarl parses a string on every request otherwise.
        self._urls: dict[tuple[str, bool], URL] = {}

    _MAX_TIMEOUTS = 256  # distinct timeouts kept (requests may set their own)
    _MAX_URLS = 1024  # distinct URLs kept (a signed URL may hold a model or a deployment)

    @property
    def ready(self) -> bool:
        """True once the session exists and is open."""
        return self._session is not None and not self._session.closed

    async def start(self) -> None:
        """Create the session (must run on the worker's event loop)."""
        connector = aiohttp.TCPConnector(
            limit=0, limit_per_host=self._per_host, ttl_dns_cache=300, keepalive_timeout=30
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            skip_auto_headers=("User-Agent",),
            auto_decompress=True,
            **session_options(connector),
        )

    async def close(self) -> None:
        """Close every pooled connection."""
        if self._h1 is not None:
            await self._h1.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(
        self,
        provider: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        timeouts: Timeouts,
        *,
        stream: bool,
        url_encoded: bool = False,
    ) -> UpstreamResponse:
        """POST ``body`` and return once the response headers are in.

        ``url_encoded``: the URL is sent exactly as given, its percent-escapes untouched
        (a signed request, such as AWS SigV4's, must reach the server as it was signed).
        """
        session = self._session
        if session is None:
            raise UpstreamUnreachable("the upstream pool is not started")
        h1 = self._h1
        if h1 is not None:
            try:
                target = h1.target(url, url_encoded)
            except ValueError:
                pass  # not http(s): aiohttp's to answer (or refuse)
            else:
                return await h1.send(provider, target, headers, body, timeouts, stream=stream)
        timeout, idle = self._timeouts.get((timeouts, stream)) or self._timeout(timeouts, stream)
        try:
            response = await session.post(
                self._urls.get((url, url_encoded)) or self._url(url, url_encoded),
                data=body,
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
            )
        except BaseException as exc:
            raise map_transport_error(exc, provider, mid_body=False) from None
        return HttpResponse(response, provider, idle, self._max_body)

    async def request(
        self,
        provider: str,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | AsyncIterable[bytes] | None,
        timeouts: Timeouts,
    ) -> HttpResponse:
        """Any method, with a body that may be streamed (an async iterable is sent as it is
        produced, never held whole); the answer is read as a stream. ``url`` is sent exactly
        as given (the caller built it from a configured root and a checked route)."""
        session = self._session
        if session is None:
            raise UpstreamUnreachable("the upstream pool is not started")
        timeout, idle = self._timeouts.get((timeouts, True)) or self._timeout(timeouts, True)
        try:
            response = await session.request(
                method,
                URL(url, encoded=True),
                data=body,
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
            )
        except BaseException as exc:
            raise map_transport_error(exc, provider, mid_body=False) from None
        return HttpResponse(response, provider, idle, self._max_body)

    def _timeout(
        self, timeouts: Timeouts, stream: bool
    ) -> tuple[aiohttp.ClientTimeout, float | None]:
        """aiohttp's timeout for ``timeouts``, and the idle one (kept for the next time)."""
        first_byte, idle = timeouts.first_byte, timeouts.idle
        found = (
            aiohttp.ClientTimeout(
                total=None if stream else timeouts.total_s,
                connect=timeouts.connect_s,
                sock_read=first_byte,
            ),
            idle if idle != first_byte else None,
        )
        if len(self._timeouts) < self._MAX_TIMEOUTS:
            self._timeouts[(timeouts, stream)] = found
        return found

    def _url(self, url: str, encoded: bool) -> URL:
        """``url`` parsed (kept for the next time); ``encoded``: its escapes sent as given."""
        parsed = URL(url, encoded=True) if encoded else URL(url)
        if len(self._urls) < self._MAX_URLS:
            self._urls[(url, encoded)] = parsed
        return parsed
