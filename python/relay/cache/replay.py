"""A hit's answer: the recorded bytes with the answer's id and ``created`` refreshed, in the
shape the request asks for (JSON or stream, whatever was recorded), with the dialect's own
end frames and the usage chunk only for a client that asked for it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import msgspec

from relay.cache.convert import assemble, explode, usage_json
from relay.cache.entry import Entry
from relay.exchange import Endpoint, Exchange
from relay.ids import new_id

_encode = msgspec.json.encode


def fresh_id(old: str) -> str:
    """A new id of the recorded id's kind (``chatcmpl-``, ``cmpl-``, ``msg_``)."""
    if not old:
        return ""
    cuts = [i for i in (old.find("-"), old.find("_")) if i >= 0]
    return new_id(old[: min(cuts) + 1] if cuts else "")


def refreshed(data: bytes, entry: Entry, answer_id: str, created: int) -> bytes:
    """``data`` with the recorded id and ``created`` replaced. The id is replaced where it is
    a whole JSON string (as text in a message it would be escaped: never matched)."""
    if entry.answer_id:
        old = b'"' + entry.answer_id.encode() + b'"'
        data = data.replace(old, b'"' + answer_id.encode() + b'"')
    if entry.created:
        new = str(created).encode()
        old_value = str(entry.created).encode()
        data = data.replace(b'"created":' + old_value, b'"created":' + new)
        data = data.replace(b'"created": ' + old_value, b'"created": ' + new)
    return data


def json_body(ex: Exchange, entry: Entry) -> bytes:
    """The JSON answer for a hit."""
    answer_id, created = fresh_id(entry.answer_id), int(time.time())
    if not entry.stream:
        return refreshed(entry.body, entry, answer_id, created)
    return assemble(ex.endpoint, entry.body, answer_id, created, entry.usage)


def stream_frames(ex: Exchange, entry: Entry) -> bytes:
    """The whole stream for a hit: its events, the usage chunk if asked, the end frames."""
    answer_id, created = fresh_id(entry.answer_id), int(time.time())
    recorded = entry.body if entry.stream else explode(ex.endpoint, entry.body)
    events = refreshed(recorded, entry, answer_id, created)
    if ex.client_wants_usage and ex.endpoint is not Endpoint.MESSAGES:
        chat = ex.endpoint is Endpoint.CHAT
        chunk: dict[str, object] = {
            "id": answer_id,
            "object": "chat.completion.chunk" if chat else "text_completion",
            "created": created,
            "model": entry.model,
            "choices": [],
            "usage": usage_json(ex.endpoint, entry.usage),
        }
        events += b"data: " + _encode(chunk) + b"\n\n"
    assert ex.dialect is not None
    return events + ex.dialect.end_frames(ex, None)


async def once(frames: bytes) -> AsyncIterator[bytes]:
    """A stream reply of one write."""
    yield frames
