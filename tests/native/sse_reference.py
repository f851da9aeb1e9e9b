"""A deliberately simple SSE parser that follows the WHATWG HTML spec text,
used as the oracle for relay._native.SseDecoder.

https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation

It parses a *whole* stream at once (no chunking), so it is easy to check by
reading. The only choices beyond the spec mirror the decoder's documented API:
``event``/``id`` are None when empty, ``data`` stays bytes, ``id`` and
``retry`` are the stream state at dispatch, a retry that does not fit in 64
bits is ignored, and ``discarded`` says whether the stream ended inside an
event (a partial line, or field lines not followed by a blank line).
"""

from __future__ import annotations

from dataclasses import dataclass

BOM = b"\xef\xbb\xbf"
U64_MAX = 2**64 - 1


@dataclass(frozen=True)
class RefEvent:
    event: str | None
    data: bytes
    id: str | None
    retry: int | None


def parse_retry(value: bytes, current: int | None) -> int | None:
    """Only ASCII digits set the reconnection time; anything else is ignored."""
    if value and all(c in b"0123456789" for c in value) and int(value) <= U64_MAX:
        return int(value)
    return current


def split_lines(stream: bytes) -> tuple[list[bytes], bytes]:
    """Complete lines (terminator removed) and the unterminated rest.

    end-of-line = ( cr lf / cr / lf )
    """
    lines = []
    line = bytearray()
    i = 0
    while i < len(stream):
        b = stream[i : i + 1]
        if b == b"\r":
            lines.append(bytes(line))
            line.clear()
            if stream[i + 1 : i + 2] == b"\n":
                i += 1
        elif b == b"\n":
            lines.append(bytes(line))
            line.clear()
        else:
            line += b
        i += 1
    return lines, bytes(line)


def parse(stream: bytes) -> tuple[list[RefEvent], bool]:
    """All events of ``stream`` and whether an incomplete event was discarded."""
    if stream.startswith(BOM):
        stream = stream[len(BOM) :]
    lines, rest = split_lines(stream)

    events: list[RefEvent] = []
    data = b""
    event_type = b""
    last_event_id = b""
    retry: int | None = None
    fields_pending = False

    for line in lines:
        if line == b"":
            # Dispatch the event.
            fields_pending = False
            if data == b"":
                event_type = b""
                continue
            if data.endswith(b"\n"):
                data = data[:-1]
            events.append(
                RefEvent(
                    event=event_type.decode("utf-8", "replace") or None,
                    data=data,
                    id=last_event_id.decode("utf-8", "replace") or None,
                    retry=retry,
                )
            )
            data = b""
            event_type = b""
            continue
        if line.startswith(b":"):
            continue  # comment
        fields_pending = True
        if b":" in line:
            name, _, value = line.partition(b":")
            if value.startswith(b" "):
                value = value[1:]
        else:
            name, value = line, b""
        if name == b"event":
            event_type = value
        elif name == b"data":
            data += value + b"\n"
        elif name == b"id":
            if b"\x00" not in value:
                last_event_id = value
        elif name == b"retry":
            retry = parse_retry(value, retry)
        # any other field is ignored

    # "If the file ends in the middle of an event, before the final empty
    # line, the incomplete event is not dispatched."
    discarded = fields_pending or rest != b""
    return events, discarded


def oversized(stream: bytes, max_event_bytes: int) -> bool:
    """Whether the decoder must raise SseEventTooLarge for ``stream``.

    The size of the event being assembled is len(data buffer) + len(event
    type) + len(the current line, complete or not); it must never exceed the
    limit. Blank lines are never counted (they carry no bytes). A stream that
    is only the start of a BOM is never checked: it may still become one.
    """
    if len(stream) < len(BOM) and BOM.startswith(stream):
        return False
    if stream.startswith(BOM):
        stream = stream[len(BOM) :]
    lines, rest = split_lines(stream)
    data = b""
    event_type = b""
    for line in [*lines, rest]:
        if line == b"":
            data = b""
            event_type = b""
            continue
        if len(data) + len(event_type) + len(line) > max_event_bytes:
            return True
        if line.startswith(b":"):
            continue
        name, colon, value = line.partition(b":")
        if colon and value.startswith(b" "):
            value = value[1:]
        if name == b"event":
            event_type = value
        elif name == b"data":
            data += value + b"\n"
    return False
