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

from relay.errors import StreamProtocolError, UpstreamProtocolError
from relay.exchange import Attempt, Exchange
from relay.providers.sse import events_of, new_decoder
from relay.stage import Step
from relay.wire.responses import EVENT_DECODER, RESPONSE_DECODER, usage_from_wire

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


class EventRelay:
    """A Responses stream relayed to a Responses client (see the module docstring)."""

    __slots__ = ("_decoder", "_ended", "_ex", "_provider")

    def __init__(self, provider: str, ex: Exchange) -> None:
        self._provider = provider
        self._ex = ex
        self._decoder = new_decoder()
        self._ended = False

    def feed(self, chunk: bytes) -> Step:
        step = Step()
        if self._ended:
            return step
        events = events_of(self._decoder, chunk, self._provider)
        out: list[bytes] = []
        draft = self._ex.translation
        for number, sse in enumerate(events):
            raw = sse.data
            try:
                data = EVENT_DECODER.decode(raw)
            except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
                step.out = b"".join(out)
                self._ended = True
                raise StreamProtocolError(
                    f"provider '{self._provider}' sent a bad stream: event {number + 1} "
                    f"is not a Responses stream event ({exc})",
                    partial=step,
                ) from None
            kind = data.type
            if kind == "error":
                step.error = raw
                self._ended = True
                break
            if data.sequence_number is not None and draft is not None:
                draft.seq = data.sequence_number + 1
            if kind in _TEXT_DELTAS and data.delta:
                step.text += data.delta
            elif kind == "response.output_item.added" and data.item is not None:
                step.text += data.item.name or ""
            if kind not in _QUIET:
                step.content = True
            if b"\n" in raw:
                raw = raw.replace(b"\n", b"\ndata: ")
            out.append(b"event: " + kind.encode() + b"\ndata: " + raw + b"\n\n")
            if kind in _END:
                response = data.response
                if response is not None and response.usage is not None:
                    u = usage_from_wire(response.usage)
                    step.usage = (u.prompt_tokens, u.completion_tokens, u.cached_tokens)
                step.done = self._ended = True
                break
        step.out = b"".join(out)
        return step
