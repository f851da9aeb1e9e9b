"""A small, obviously-correct encoder of AWS event-stream messages (every header type), the
reference the native decoder is tested against, and the fake Bedrock's framing."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

# Header value types of the wire format.
TRUE, FALSE, BYTE, SHORT, INT, LONG, BYTES, STRING, TIMESTAMP, UUID = range(10)


@dataclass(frozen=True)
class Header:
    name: str
    kind: int
    value: bool | int | bytes | str

    def encode(self) -> bytes:
        name = self.name.encode()
        out = struct.pack(">B", len(name)) + name + struct.pack(">B", self.kind)
        v = self.value
        if self.kind in (TRUE, FALSE):
            return out
        if self.kind == BYTE:
            return out + struct.pack(">b", v)
        if self.kind == SHORT:
            return out + struct.pack(">h", v)
        if self.kind == INT:
            return out + struct.pack(">i", v)
        if self.kind in (LONG, TIMESTAMP):
            return out + struct.pack(">q", v)
        if self.kind == UUID:
            assert isinstance(v, bytes) and len(v) == 16
            return out + v
        raw = v.encode() if isinstance(v, str) else v
        assert isinstance(raw, bytes)
        return out + struct.pack(">H", len(raw)) + raw

    def decoded(self) -> bool | int | bytes | str:
        """The value as the native decoder gives it."""
        return {TRUE: True, FALSE: False}.get(self.kind, self.value)


def encode(headers: list[Header], payload: bytes) -> bytes:
    """One message: prelude (lengths, CRC), headers, payload, message CRC."""
    header_bytes = b"".join(h.encode() for h in headers)
    total = 16 + len(header_bytes) + len(payload)
    prelude = struct.pack(">II", total, len(header_bytes))
    head = prelude + struct.pack(">I", zlib.crc32(prelude))
    body = head + header_bytes + payload
    return body + struct.pack(">I", zlib.crc32(body))


def event(event_type: str, payload: bytes) -> bytes:
    """A Bedrock event message (string headers, JSON payload)."""
    return encode(
        [
            Header(":event-type", STRING, event_type),
            Header(":content-type", STRING, "application/json"),
            Header(":message-type", STRING, "event"),
        ],
        payload,
    )


def exception(exception_type: str, payload: bytes) -> bytes:
    """A Bedrock exception message."""
    return encode(
        [
            Header(":exception-type", STRING, exception_type),
            Header(":content-type", STRING, "application/json"),
            Header(":message-type", STRING, "exception"),
        ],
        payload,
    )
