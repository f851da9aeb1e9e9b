"""The only importer of :mod:`relay._native`; everything else goes through here.

Token counters are built once per encoding per process (the ranks are compiled into the
extension, loading them takes a moment the first time) and shared. :func:`count_off_loop` is the
one place that decides where a count runs: on the event loop when the text is small, on a
worker thread otherwise.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import cache
from typing import TypeVar, TypeVarTuple, Unpack

from relay._native import (
    ChunkedDecoder,
    EventStreamDecoder,
    EventStreamMessage,
    GcraDecision,
    InvalidChunkedBody,
    InvalidEventStream,
    InvalidJson,
    InvalidStreamEvent,
    LimitTableFull,
    LocalLimiter,
    NativeError,
    OpenAIStreamScanner,
    PiiBlocked,
    RedactionTable,
    Redactor,
    RedactorConfigError,
    SharedLimitTable,
    SseDecoder,
    SseEvent,
    SseEventTooLarge,
    StreamRestorer,
    StreamScan,
    TokenCounter,
    UnknownEncoding,
    cache_key,
    encoding_for_model,
    gcra,
    monotonic,
    restore_json,
    splice_top_level,
    top_level_value,
)

__all__ = [
    "ON_LOOP_BYTES",
    "ChunkedDecoder",
    "EventStreamDecoder",
    "EventStreamMessage",
    "GcraDecision",
    "InvalidChunkedBody",
    "InvalidEventStream",
    "InvalidJson",
    "InvalidStreamEvent",
    "LimitTableFull",
    "LocalLimiter",
    "NativeError",
    "OpenAIStreamScanner",
    "PiiBlocked",
    "RedactionTable",
    "Redactor",
    "RedactorConfigError",
    "SharedLimitTable",
    "SseDecoder",
    "SseEvent",
    "SseEventTooLarge",
    "StreamRestorer",
    "StreamScan",
    "TokenCounter",
    "UnknownEncoding",
    "cache_key",
    "count_off_loop",
    "counter_for",
    "encoding_for_model",
    "gcra",
    "monotonic",
    "restore_json",
    "splice_top_level",
    "top_level_value",
]


@cache
def counter_for(encoding: str) -> TokenCounter:
    """The shared :class:`TokenCounter` of ``encoding`` (built on first use)."""
    return TokenCounter(encoding)


# Below this many bytes of text, counting on the loop costs well under a millisecond (the
# tokenizer takes about 0.02 to 0.4 us per byte, depending on the text). Above it the count
# runs on a worker thread, where the extension releases the GIL for inputs of 8 KiB or more.
ON_LOOP_BYTES = 2048

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")


async def count_off_loop(size: int, count: Callable[[Unpack[_Ts]], _T], *args: *_Ts) -> _T:
    """``count(*args)``, a token count of about ``size`` bytes of text: run on the event loop
    when that is at most :data:`ON_LOOP_BYTES`, else on the loop's default executor, so a large
    prompt or completion never stalls the worker. ``size`` is the size of what is counted
    (a translated request, the text kept), not of the client's body."""
    if size <= ON_LOOP_BYTES:
        return count(*args)
    return await asyncio.get_running_loop().run_in_executor(None, count, *args)
