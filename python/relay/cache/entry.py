"""One cached answer as stored: the bytes the client received and what replaying them needs.

An answer recorded from a stream keeps its events (without the usage-only chunk: usage is
kept apart and sent again only to a client that asks); one recorded from a JSON answer keeps
its body. Either can answer either kind of request (:mod:`relay.cache.replay` converts).
"""

from __future__ import annotations

import msgspec


class Entry(msgspec.Struct, array_like=True, frozen=True):
    """A cached answer (encoded with msgspec, compact: field order is the format)."""

    # When it was written (Unix seconds): ``max-age`` compares against it.
    stored_at: float
    # Recorded from a stream (``body`` holds its events, each ending with a blank line).
    stream: bool
    body: bytes
    # The answer's own id and ``created`` as they appear in ``body`` (refreshed on replay).
    answer_id: str
    created: int
    # The model that answered (the provider's name for it) and its provider.
    model: str
    provider: str
    # prompt, completion and cached tokens of the recorded answer.
    usage: tuple[int, int, int]
    # What the recorded answer cost: what a hit saves.
    cost_usd: float
    # Why it ended (OpenAI's finish_reason or Anthropic's stop_reason), for conversions.
    stop: str = ""


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Entry)


def encode(entry: Entry) -> bytes:
    """The stored bytes of ``entry``."""
    return _encoder.encode(entry)


def decode(data: bytes) -> Entry | None:
    """The entry stored as ``data``; None when it is not one (another version's, damaged)."""
    try:
        return _decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
