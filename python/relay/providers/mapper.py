"""The skeleton every stream mapper written in Python shares, whatever decodes its events.

A mapper is fed one network read at a time; its decoder (SSE: :class:`relay.providers.sse.
SseMapper`; AWS event-stream: Bedrock's) turns the read into the events it completes, and this
base walks them: each event goes to the mapper's :meth:`EventMapper.on_event`, which adds
frames for the client to ``out`` and fills the read's :class:`~relay.stage.Step`, until one
ends the stream; the mapper then adds what the end of the read calls for and joins the frames
once. A mapper whose events can be malformed names the exceptions of its decoding in
``bad_event``: such an event ends the stream with a :class:`~relay.errors.StreamProtocolError`
naming it, whose ``partial`` step holds what the read carried before it (still sent to the
client first).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import ClassVar, Generic, TypeVar

from relay.errors import StreamProtocolError
from relay.stage import Step

E = TypeVar("E")


class EventMapper(ABC, Generic[E]):
    """A provider's stream, event by event, as the client's frames (one per attempt)."""

    __slots__ = ("_ended", "_provider")

    # The exceptions that mean an event is malformed (none: the mapper reports its own).
    bad_event: ClassVar[tuple[type[Exception], ...]] = ()
    # What an event should have been, for the error of a malformed one.
    expected: ClassVar[str] = "a stream event"

    def __init__(self, provider: str) -> None:
        self._provider = provider
        self._ended = False

    @abstractmethod
    def on_event(self, event: E, step: Step, out: list[bytes]) -> bool:
        """Map one event: append the client's frames to ``out``, fill ``step`` (content,
        text, done, error). True when the event ended the stream (its last one, or the
        provider's error): the rest of the read is dropped and later reads map to nothing."""

    def map_events(self, events: Iterable[E], step: Step, out: list[bytes]) -> None:
        """Map one read's ``events`` into ``step`` and ``out`` (the caller joins ``out`` into
        ``step.out`` once it added what the read's end calls for)."""
        number = 0  # counted by hand: cheaper than enumerate for a read of one event
        try:
            for event in events:
                number += 1
                if self.on_event(event, step, out):
                    self._ended = True
                    return
        except self.bad_event as exc:
            # What the read carried before the bad event still goes to the client first.
            step.out = b"".join(out)
            self._ended = True
            raise StreamProtocolError(
                f"provider '{self._provider}' sent a bad stream: event {number} is not "
                f"{self.expected} ({exc})",
                partial=step,
            ) from None
