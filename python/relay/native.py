"""The only importer of :mod:`relay._native`; everything else goes through here.

Token counters are built once per encoding per process (the ranks are compiled into the
extension, loading them takes a moment the first time) and shared.
"""

from __future__ import annotations

from functools import cache

from relay._native import (
    EventStreamDecoder,
    EventStreamMessage,
    GcraDecision,
    InvalidEventStream,
    InvalidJson,
    InvalidStreamEvent,
    LocalLimiter,
    NativeError,
    OpenAIStreamScanner,
    SseDecoder,
    SseEvent,
    SseEventTooLarge,
    StreamScan,
    TokenCounter,
    UnknownEncoding,
    cache_key,
    encoding_for_model,
    gcra,
    monotonic,
    splice_top_level,
    top_level_value,
)

__all__ = [
    "EventStreamDecoder",
    "EventStreamMessage",
    "GcraDecision",
    "InvalidEventStream",
    "InvalidJson",
    "InvalidStreamEvent",
    "LocalLimiter",
    "NativeError",
    "OpenAIStreamScanner",
    "SseDecoder",
    "SseEvent",
    "SseEventTooLarge",
    "StreamScan",
    "TokenCounter",
    "UnknownEncoding",
    "cache_key",
    "counter_for",
    "encoding_for_model",
    "gcra",
    "monotonic",
    "splice_top_level",
    "top_level_value",
]


@cache
def counter_for(encoding: str) -> TokenCounter:
    """The shared :class:`TokenCounter` of ``encoding`` (built on first use)."""
    return TokenCounter(encoding)
