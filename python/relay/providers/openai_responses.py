"""OpenAI's Responses API passed through (kind ``openai``; ``azure`` when it serves it): the
answer is relayed as sent, read once for its usage and text; the stream is relayed event by
event, its data never re-encoded.

Stream events are read for what the gateway needs: the commit point (the first event other than
``response.created``/``queued``/``in_progress``), usage and the end (``response.completed``,
``response.incomplete`` or ``response.failed``, relayed), a provider's ``error`` event (not
relayed: the dialect writes the error event, numbered after the last one relayed), and the text
of deltas for local counting when usage is missing.
"""

from __future__ import annotations

import msgspec

from relay.errors import UpstreamProtocolError
from relay.exchange import Attempt, Exchange
from relay.native import SseEvent
from relay.providers.sse import SseMapper
from relay.stage import Step
from relay.wire.responses import EVENT_DECODER, RESPONSE_DECODER, usage_from_wire
from relay.wire.sse import frame

_QUIET = frozenset({"response.created", "response.queued", "response.in_progress"})
_END = frozenset({"response.completed", "response.incomplete", "response.failed"})
_TEXT_DELTAS = frozenset(
    {
        "response.output_text.delta",
        "response.refusal.delta",
        "response.function_call_arguments.delta",
    }
)


def map_json(provider: str, attempt: Attempt, body: bytes) -> bytes:
    """The provider's Response as is; fills ``attempt.usage`` and ``attempt.text``."""
    try:
        probe = RESPONSE_DECODER.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        raise UpstreamProtocolError(
            f"provider '{provider}' answered with a body that is not a Response"
        ) from None
    if probe.usage is not None:
        attempt.usage = usage_from_wire(probe.usage)
    text = "".join(item.generated_text() for item in probe.output or ())
    attempt.text = lambda: text
    return body


class EventRelay(SseMapper):
    """A Responses stream relayed to a Responses client (see the module docstring)."""

    __slots__ = ("_ex",)
    expected = "a Responses stream event"

    def __init__(self, provider: str, ex: Exchange) -> None:
        super().__init__(provider)
        self._ex = ex

    def on_event(self, event: SseEvent, step: Step, out: list[bytes]) -> bool:
        raw = event.data
        data = EVENT_DECODER.decode(raw)
        kind = data.type
        if kind == "error":
            step.error = raw
            return True
        if data.sequence_number is not None:
            draft = self._ex.translation
            if draft is not None:
                draft.seq = data.sequence_number + 1
        if kind in _TEXT_DELTAS and data.delta:
            step.text += data.delta
        elif kind == "response.output_item.added" and data.item is not None:
            step.text += data.item.name or ""
        if kind not in _QUIET:
            step.content = True
        out.append(frame(kind.encode(), raw))
        if kind in _END:
            response = data.response
            if response is not None and response.usage is not None:
                u = usage_from_wire(response.usage)
                step.usage = (u.prompt_tokens, u.completion_tokens, u.cached_tokens)
            step.done = True
            return True
        return False
