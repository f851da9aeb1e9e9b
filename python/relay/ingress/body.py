"""Reading the request body within ``server.max_body_bytes`` and ``server.body_timeout_s``."""

from __future__ import annotations

import asyncio
from typing import Any

from relay.errors import BodyTooLarge, InvalidRequest, RequestTimeout

# An oversized body up to this size is read and discarded before the 413 is sent, so that the
# client, still busy uploading, sees the answer instead of a broken pipe. Beyond it the
# connection is dropped as soon as the size is known.
DISCARD_LIMIT = 64 * 1024 * 1024


def too_slow(timeout_s: float) -> RequestTimeout:
    """The 408 for a body that stopped arriving (or arrives too slowly)."""
    return RequestTimeout(
        f"the request body did not arrive within {timeout_s:g}s (server.body_timeout_s)"
    )


async def read_body(
    proto: Any, content_length: str | None, limit: int, timeout_s: float | None = None
) -> bytes:
    """Read the whole body, refusing it once it is known to exceed ``limit``, or when it has
    not arrived whole within ``timeout_s`` (a framing that promises more than is sent would
    otherwise hold the request open for as long as the client likes). ``timeout_s`` None: the
    caller bounds the read itself (the API routes' :class:`~relay.ingress.watch.RequestWatch`)."""
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError:
            raise InvalidRequest("content-length header is not a number") from None
        if declared > limit:
            if declared <= DISCARD_LIMIT:
                await discard_body(proto, DISCARD_LIMIT, timeout_s)
            raise BodyTooLarge(f"request body is {declared} bytes; the limit is {limit} bytes")
    if timeout_s is None:
        if content_length is not None:
            body: bytes = await proto()
            return body
        return await _read_chunked(proto, limit)
    try:
        async with asyncio.timeout(timeout_s):
            if content_length is not None:
                whole: bytes = await proto()
                return whole
            return await _read_chunked(proto, limit)
    except TimeoutError:
        raise too_slow(timeout_s) from None


async def _read_chunked(proto: Any, limit: int) -> bytes:
    # Count as it arrives so a huge body is never held whole.
    parts: list[bytes] = []
    size = 0
    async for part in proto:
        size += len(part)
        if size > DISCARD_LIMIT:
            break
        if size <= limit:
            parts.append(part)
        else:
            parts.clear()  # keep reading to the end (bounded) but hold nothing
    if size > limit:
        raise BodyTooLarge(f"request body exceeds the limit of {limit} bytes")
    return b"".join(parts)


async def discard_body(proto: Any, limit: int, timeout_s: float | None) -> None:
    """Read and drop the body (up to ``limit`` bytes, for at most ``timeout_s``; None: the
    caller bounds it) so a refused client still uploading sees the answer rather than a broken
    pipe."""
    seen = 0
    try:
        async with asyncio.timeout(timeout_s):
            async for part in proto:
                seen += len(part)
                if seen > limit:
                    break
    except TimeoutError:
        pass  # the answer is sent anyway; the connection is not reused
