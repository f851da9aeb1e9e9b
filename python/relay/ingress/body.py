"""Reading the request body within ``server.max_body_bytes``."""

from __future__ import annotations

from typing import Any

from relay.errors import BodyTooLarge, InvalidRequest

# An oversized body up to this size is read and discarded before the 413 is sent, so that the
# client, still busy uploading, sees the answer instead of a broken pipe. Beyond it the
# connection is dropped as soon as the size is known.
DISCARD_LIMIT = 64 * 1024 * 1024


async def read_body(proto: Any, content_length: str | None, limit: int) -> bytes:
    """Read the whole body, refusing it once it is known to exceed ``limit``."""
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError:
            raise InvalidRequest("content-length header is not a number") from None
        if declared > limit:
            if declared <= DISCARD_LIMIT:
                await discard_body(proto)
            raise BodyTooLarge(f"request body is {declared} bytes; the limit is {limit} bytes")
        body: bytes = await proto()
        return body
    # Chunked upload: count as it arrives so a huge body is never held whole.
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


async def discard_body(proto: Any, limit: int = DISCARD_LIMIT) -> None:
    """Read and drop the body (up to ``limit`` bytes) so a refused client still uploading
    sees the answer rather than a broken pipe."""
    seen = 0
    async for part in proto:
        seen += len(part)
        if seen > limit:
            break
