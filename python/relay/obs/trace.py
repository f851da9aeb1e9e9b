"""Trace context (W3C ``traceparent``) without the OpenTelemetry SDK: what the request path
needs at send time, and nothing else.

The spans themselves are built after the last byte, by the tap in :mod:`relay.obs.trace_sdk`,
from the times the exchange and its attempts recorded; only the ``traceparent`` sent upstream
must be known when an attempt is sent, so its span id is drawn then (a random 64-bit number)
and kept with the request's context. With tracing off none of this runs and the SDK is never
imported (:func:`telemetry_taps` imports it only when the configuration asks for it).
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from relay.exchange import Attempt, Exchange

_bits = random.getrandbits
_HEX = frozenset("0123456789abcdef")
_MASK64 = (1 << 64) - 1


class TraceContext:
    """One request's place in a trace: its trace id, the id of its own (server) span, the
    client's span it continues (0: none), whether it is recorded, and a span id per attempt
    sent upstream (by attempt number)."""

    __slots__ = ("attempt_spans", "parent_id", "sampled", "span_id", "trace_id", "tracestate")

    def __init__(
        self,
        trace_id: int,
        span_id: int,
        parent_id: int,
        sampled: bool,
        tracestate: str | None = None,
    ) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_id = parent_id
        self.sampled = sampled
        self.tracestate = tracestate
        self.attempt_spans: dict[int, int] = {}

    def attempt_span(self, number: int) -> int:
        """The span id of attempt ``number``, drawn on first use."""
        found = self.attempt_spans.get(number)
        if found is None:
            found = self.attempt_spans[number] = _span_id()
        return found

    def traceparent(self, span_id: int) -> str:
        """The ``traceparent`` naming ``span_id`` as the parent of what the receiver does."""
        return f"00-{self.trace_id:032x}-{span_id:016x}-{'01' if self.sampled else '00'}"


def _span_id() -> int:
    while True:
        found = _bits(64)
        if found:  # all zeroes is invalid
            return found


def parse_traceparent(value: str) -> tuple[int, int, bool] | None:
    """(trace id, parent span id, sampled) of a valid ``traceparent``, else None (ignored,
    as the W3C recommendation says: a new trace starts)."""
    parts = value.strip().split("-")
    if len(parts) < 4:
        return None
    version, trace, span, flags = parts[0], parts[1], parts[2], parts[3]
    if len(version) != 2 or version == "ff" or not _HEX.issuperset(version):
        return None
    if version == "00" and len(parts) != 4:
        return None
    if len(trace) != 32 or len(span) != 16 or len(flags) != 2:
        return None
    if not _HEX.issuperset(trace) or not _HEX.issuperset(span) or not _HEX.issuperset(flags):
        return None
    trace_id, span_id = int(trace, 16), int(span, 16)
    if not trace_id or not span_id:
        return None
    return trace_id, span_id, bool(int(flags, 16) & 1)


class Tracing:
    """Makes and finds each request's :class:`TraceContext`; writes ``traceparent`` (and the
    client's ``tracestate``) on what is sent upstream. Installed by ``app.py`` in the attempt
    loop and the pass-through only when tracing is on."""

    def __init__(self, sample_ratio: float = 1.0) -> None:
        # As OpenTelemetry's TraceIdRatioBased sampler: the trace id's low 64 bits decide.
        self.bound = round(max(0.0, min(sample_ratio, 1.0)) * (1 << 64))

    def context(self, ex: Exchange) -> TraceContext:
        """``ex``'s context: continued from the client's ``traceparent``, else a new trace."""
        state = ex.state
        if state is None:
            state = ex.state = {}
        found: TraceContext | None = state.get(Tracing)
        if found is None:
            found = state[Tracing] = self._new(ex.headers)
        return found

    def _new(self, headers: Mapping[str, str]) -> TraceContext:
        given = headers.get("traceparent")
        parsed = parse_traceparent(given) if given else None
        if parsed is not None:
            trace_id, parent, sampled = parsed
            return TraceContext(trace_id, _span_id(), parent, sampled, headers.get("tracestate"))
        trace_id = _bits(128) or 1
        return TraceContext(trace_id, _span_id(), 0, (trace_id & _MASK64) < self.bound)

    def __call__(self, ex: Exchange, attempt: Attempt, headers: dict[str, str]) -> None:
        """Add the trace headers of ``attempt`` to the request about to be sent."""
        context = self.context(ex)
        headers["traceparent"] = context.traceparent(context.attempt_span(attempt.number))
        if context.tracestate:
            headers["tracestate"] = context.tracestate
