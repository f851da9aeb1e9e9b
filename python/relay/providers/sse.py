"""The base of the stream mappers written in Python over a provider's SSE stream: the native
decoder with its limit and its error, and the read's steps."""

from __future__ import annotations

from typing import ClassVar

import msgspec

from relay.errors import UpstreamProtocolError
from relay.native import SseDecoder, SseEvent, SseEventTooLarge
from relay.providers.mapper import EventMapper
from relay.stage import Step
from relay.wire.usage import Usage

# One event larger than this is a broken provider, not a long answer.
MAX_EVENT_BYTES = 4 * 1024 * 1024


class SseMapper(EventMapper[SseEvent]):
    """A provider's SSE stream, decoded natively, mapped event by event (see
    :class:`~relay.providers.mapper.EventMapper`). An event over ``MAX_EVENT_BYTES`` is an
    :class:`~relay.errors.UpstreamProtocolError`, one whose data does not decode a
    :class:`~relay.errors.StreamProtocolError`. The usage a mapper keeps in ``_usage``
    (reported cumulatively by most providers) goes on every step from the read that set it."""

    __slots__ = ("_decoder", "_usage")

    bad_event: ClassVar[tuple[type[Exception], ...]] = (
        msgspec.DecodeError,
        msgspec.ValidationError,
        UnicodeDecodeError,
    )

    def __init__(self, provider: str) -> None:
        super().__init__(provider)
        self._decoder = SseDecoder(MAX_EVENT_BYTES)
        self._usage: Usage | None = None

    def feed(self, chunk: bytes) -> Step:
        """Map one network read (nothing once the stream ended)."""
        step = Step()
        if self._ended:
            return step
        try:
            events = self._decoder.feed(chunk)
        except SseEventTooLarge:
            raise UpstreamProtocolError(
                f"provider '{self._provider}' sent a stream event over {MAX_EVENT_BYTES} bytes"
            ) from None
        out: list[bytes] = []
        self.map_events(events, step, out)
        if self._usage is not None:
            step.usage = self._usage.counts()
        step.out = b"".join(out)
        return step
