"""A miss records its answer on the way out and writes it after the last byte.

:class:`StreamRecorder` (a stream hook) keeps each event the client receives and
:class:`AnswerRecorder` (an answer hook) the JSON body it receives: both only append to the
request's :class:`Recording` (left on the exchange by the cache stage), so a request the cache
does not record pays one dictionary look-up per event. :class:`CacheWriter` (a settler) decides
after the last byte whether the answer may be kept (complete, not an error, not a refusal, tool
calls only when configured), makes the :class:`~relay.cache.entry.Entry` and stores it.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import msgspec

from relay.cache.convert import events_of
from relay.cache.entry import Entry
from relay.exchange import Endpoint, Exchange

log = logging.getLogger("relay.cache")

# The owner of the request's recording in ``Exchange.state``.
RECORDING = object()
_decode = msgspec.json.decode
_CREATED = re.compile(rb'"created"\s*:\s*(\d+)')


class Recording:
    """What a miss recorded for the cache: the key, how long to keep it, and the answer."""

    __slots__ = ("body", "events", "key", "over", "size", "tags", "ttl_s")

    def __init__(self, key: str, ttl_s: float, tags: tuple[str, str]) -> None:
        self.key = key
        self.ttl_s = ttl_s
        self.tags = tags
        self.events: list[bytes] = []
        self.size = 0
        # Larger than an entry may be: recording stopped.
        self.over = False
        self.body: bytes | None = None


def recording(ex: Exchange) -> Recording | None:
    """The request's recording, if the cache stage started one."""
    state = ex.state
    return state.get(RECORDING) if state is not None else None


class StreamRecorder:
    """Keeps every event of a recorded stream (a stream hook that never changes one)."""

    __slots__ = ("max_entry_bytes",)

    def __init__(self, max_entry_bytes: int) -> None:
        self.max_entry_bytes = max_entry_bytes

    def on_event(self, ex: Exchange, event: bytes) -> bytes:
        """Record ``event`` and pass it on unchanged."""
        state = ex.state
        if state is None:
            return event
        rec: Recording | None = state.get(RECORDING)
        if rec is not None and not rec.over:
            rec.size += len(event)
            if rec.size > self.max_entry_bytes:
                rec.over = True
                rec.events.clear()
            else:
                rec.events.append(event)
        return event

    def on_end(self, ex: Exchange) -> bytes:
        """Nothing is held back."""
        return b""


class AnswerRecorder:
    """Keeps the JSON body a recorded request's client receives (never changes it)."""

    __slots__ = ()

    def on_answer(self, ex: Exchange, body: bytes) -> bytes:
        """Record ``body`` and pass it on unchanged."""
        rec = recording(ex)
        if rec is not None:
            rec.body = body
        return body


class NotKept(Exception):
    """The answer may not be cached (a refusal, tool calls, several choices, no answer)."""


def entry_of(ex: Exchange, rec: Recording, *, tool_calls: bool) -> Entry | None:
    """The entry for a finished exchange, or None when its answer may not be kept."""
    if (
        ex.status != 200
        or ex.truncated
        or ex.client_gone
        or ex.error_type is not None
        or ex.answer is None
        or rec.over
    ):
        return None
    attempt = ex.answer
    usage = ex.usage
    counts = (
        (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens) if usage else (0, 0, 0)
    )
    try:
        if ex.stream:
            blob, answer_id, created, stop = _from_stream(ex.endpoint, rec.events, tool_calls)
        else:
            if rec.body is None:
                return None
            blob = rec.body
            answer_id, created, stop = _from_json(ex.endpoint, blob, tool_calls)
    except NotKept:
        return None
    except (msgspec.DecodeError, ValueError, TypeError, AttributeError):
        log.warning("request %s: an answer the cache could not read was not cached", ex.request_id)
        return None
    return Entry(
        time.time(),
        ex.stream,
        blob,
        answer_id,
        created,
        attempt.upstream_model,
        attempt.provider,
        counts,
        ex.cost_usd or 0.0,
        stop,
    )


def _from_json(endpoint: Endpoint, body: bytes, tool_calls: bool) -> tuple[str, int, str]:
    answer: dict[str, Any] = _decode(body)
    if endpoint is Endpoint.EMBEDDINGS:
        return "", 0, ""
    if endpoint is Endpoint.MESSAGES:
        stop = answer.get("stop_reason") or ""
        _check_stop(stop, tool_calls)
        for block in answer.get("content") or ():
            if block.get("type") == "tool_use" and not tool_calls:
                raise NotKept
        return str(answer.get("id") or ""), 0, stop
    choices = answer.get("choices") or []
    if len(choices) != 1:
        raise NotKept
    choice = choices[0]
    stop = choice.get("finish_reason") or ""
    _check_stop(stop, tool_calls)
    message = choice.get("message") or {}
    if message.get("refusal"):
        raise NotKept
    if (message.get("tool_calls") or message.get("function_call")) and not tool_calls:
        raise NotKept
    return str(answer.get("id") or ""), int(answer.get("created") or 0), stop


def _from_stream(
    endpoint: Endpoint, events: list[bytes], tool_calls: bool
) -> tuple[bytes, str, int, str]:
    """The events to keep (usage-only chunks left out), the answer's id, created and stop."""
    kept: list[bytes] = []
    answer_id, created, stop = "", 0, ""
    anthropic = endpoint is Endpoint.MESSAGES
    for event in events:
        for kind, data in events_of(event):
            payload: dict[str, Any] = _decode(data)
            if anthropic:
                stop = _check_anthropic(kind, payload, tool_calls) or stop
                if kind == b"message_start" or payload.get("type") == "message_start":
                    answer_id = str((payload.get("message") or {}).get("id") or "")
                continue
            choices = payload.get("choices")
            if not answer_id:
                answer_id = str(payload.get("id") or "")
                found = _CREATED.search(event)
                created = int(found.group(1)) if found else 0
            if not choices:
                if payload.get("usage") is not None:
                    break  # the usage-only chunk: sent again only to a client that asks
                continue
            if len(choices) != 1 or choices[0].get("index", 0) != 0:
                raise NotKept
            choice = choices[0]
            stop = choice.get("finish_reason") or stop
            delta = choice.get("delta") or {}
            if delta.get("refusal"):
                raise NotKept
            if (delta.get("tool_calls") or delta.get("function_call")) and not tool_calls:
                raise NotKept
        else:
            kept.append(event)
    _check_stop(stop, tool_calls)
    return b"".join(kept), answer_id, created, stop


def _check_anthropic(kind: bytes, payload: dict[str, Any], tool_calls: bool) -> str:
    kind_name = payload.get("type")
    if kind_name == "content_block_start":
        block = payload.get("content_block") or {}
        if block.get("type") == "tool_use" and not tool_calls:
            raise NotKept
    elif kind_name == "message_delta":
        return str((payload.get("delta") or {}).get("stop_reason") or "")
    elif kind_name == "error":
        raise NotKept
    return ""


def _check_stop(stop: str, tool_calls: bool) -> None:
    if stop in ("refusal", "content_filter"):
        raise NotKept
    if stop in ("tool_calls", "tool_use", "function_call") and not tool_calls:
        raise NotKept
