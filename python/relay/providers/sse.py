"""SSE decoding shared by the stream mappers written in Python, with its limit and its error."""

from __future__ import annotations

from relay.errors import UpstreamProtocolError
from relay.native import SseDecoder, SseEvent, SseEventTooLarge

# One event larger than this is a broken provider, not a long answer.
MAX_EVENT_BYTES = 4 * 1024 * 1024


def new_decoder() -> SseDecoder:
    """A decoder for one stream."""
    return SseDecoder(MAX_EVENT_BYTES)


def events_of(decoder: SseDecoder, chunk: bytes, provider: str) -> list[SseEvent]:
    """The events one network read completes; an oversized event is a protocol error."""
    try:
        return decoder.feed(chunk)
    except SseEventTooLarge:
        raise UpstreamProtocolError(
            f"provider '{provider}' sent a stream event over {MAX_EVENT_BYTES} bytes"
        ) from None
