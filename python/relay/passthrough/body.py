"""A pass-through request body: its ``model`` when it names one, and the bytes as a stream.

JSON bodies are small (``server.max_body_bytes``) and read whole: ``model`` is a top-level
member, replaced by the provider's name for it without re-encoding the rest. Multipart bodies
(file and audio uploads) are never held whole: the first parts are read until the ``model``
field has passed, a file part starts, or 64 KiB were seen; the rest streams from the client to
the provider as it arrives, counted against ``server.max_upload_bytes``. Any other body streams.
A streamed body that pauses longer than ``server.body_timeout_s`` between two reads is a 408.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import msgspec

from relay.errors import BodyTooLarge, GatewayError, InvalidRequest
from relay.ingress.body import too_slow
from relay.native import InvalidJson, splice_top_level, top_level_value
from relay.wire.decode import check_utf8, string_value

PEEK_BYTES = 64 * 1024
_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)
_NAME = re.compile(rb'\bname="([^"]*)"', re.IGNORECASE)


async def chunks(reader: Any, timeout_s: float) -> AsyncIterator[bytes]:
    """The client's body chunks from granian's reader (one per request: granian's protocol
    cannot be iterated twice, so a peek and the rest share one reader); a 408 when the next
    one takes longer than ``timeout_s``."""
    while True:
        try:
            async with asyncio.timeout(timeout_s):
                part: bytes = await reader.__anext__()
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise too_slow(timeout_s) from None
        if part:
            yield part


class Body:
    """The request body on its way upstream: a prefix already read, then the client's rest."""

    def __init__(
        self, reader: Any, prefix: list[bytes], limit: int, streaming: bool, timeout_s: float
    ) -> None:
        self._reader = reader
        self.prefix = prefix
        self.limit = limit
        self.timeout_s = timeout_s
        # False: the prefix is the whole body (JSON, or none).
        self.streaming = streaming
        self.size = sum(map(len, prefix))
        # Why the client's upload was cut (too large, too slow): the client's answer, whatever
        # error the upstream request ended with.
        self.failure: GatewayError | None = None

    def payload(self) -> bytes | AsyncIterator[bytes] | None:
        """What the upstream client sends."""
        if not self.streaming:
            return b"".join(self.prefix) if self.prefix else None
        return self._stream()

    async def _stream(self) -> AsyncIterator[bytes]:
        for part in self.prefix:
            yield part
        try:
            async for part in chunks(self._reader, self.timeout_s):
                self.size += len(part)
                if self.size > self.limit:
                    raise BodyTooLarge(f"request body exceeds the limit of {self.limit} bytes")
                yield part
        except GatewayError as err:
            self.failure = err
            raise


def check_length(declared: str | None, limit: int) -> int | None:
    """The declared length, refused when over ``limit``."""
    if declared is None:
        return None
    try:
        length = int(declared)
    except ValueError:
        raise InvalidRequest("content-length header is not a number") from None
    if length > limit:
        raise BodyTooLarge(f"request body is {length} bytes; the limit is {limit} bytes")
    return length


def json_model(body: bytes) -> str | None:
    """The top-level ``model`` of a JSON body (None when absent or null); a body that is not
    UTF-8 throughout, or a ``model`` that is not a string, is a 400."""
    check_utf8(body)
    try:
        raw = top_level_value(body, "model")
    except InvalidJson as exc:
        raise InvalidRequest(f"invalid JSON in request body: {_detail(exc)}") from None
    return None if raw is None else string_value(raw, "model")


def _detail(exc: InvalidJson) -> str:
    return str(exc).removeprefix("invalid JSON: ")


def json_with_model(body: bytes, model: str) -> bytes:
    """The JSON body with ``model`` replaced."""
    return splice_top_level(body, [("model", msgspec.json.encode(model))])


async def peek_multipart(
    reader: Any, content_type: str, limit: int, timeout_s: float
) -> tuple[list[bytes], str | None]:
    """Read the first parts of a multipart body: (the chunks read, the ``model`` field)."""
    match = _BOUNDARY.search(content_type)
    if match is None:
        raise InvalidRequest("content-type: multipart without a boundary")
    delimiter = b"--" + match.group(1).encode()
    read: list[bytes] = []
    buffer = b""
    async for part in chunks(reader, timeout_s):
        read.append(part)
        buffer += part
        if len(buffer) > limit:
            raise BodyTooLarge(f"request body exceeds the limit of {limit} bytes")
        found, settled = _model_field(buffer, delimiter)
        if settled or len(buffer) >= PEEK_BYTES:
            return read, found
    return read, _model_field(buffer, delimiter)[0]


def _model_field(buffer: bytes, delimiter: bytes) -> tuple[str | None, bool]:
    """(model, settled): settled once the model field or a file part was seen."""
    parts = buffer.split(delimiter)[1:]
    for i, part in enumerate(parts):
        head, sep, value = part.partition(b"\r\n\r\n")
        if not sep:
            return None, False  # headers not complete yet
        if b"filename=" in head:
            return None, True  # a file: the model field, if any, is not before it
        name = _NAME.search(head)
        if name is not None and name.group(1) == b"model":
            if i == len(parts) - 1:  # its value runs up to a delimiter not read yet
                return None, False
            return value.removesuffix(b"\r\n").decode("utf-8", "replace"), True
    return None, False


def multipart_with_model(chunks: list[bytes], model: str) -> list[bytes]:
    """The peeked chunks with the ``model`` field's value replaced."""
    data = b"".join(chunks)
    name = re.search(rb'name="model"', data, re.IGNORECASE)
    if name is None:
        return chunks
    start = data.index(b"\r\n\r\n", name.end()) + 4
    end = data.index(b"\r\n", start)
    return [data[:start] + model.encode() + data[end:]]
