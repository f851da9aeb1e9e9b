"""The native AWS event-stream decoder against the Python reference encoder (and botocore's
own decoder as a check of the reference)."""

from __future__ import annotations

import itertools

import pytest
from botocore.eventstream import EventStreamBuffer
from eventstream_reference import (
    BYTE,
    BYTES,
    FALSE,
    INT,
    LONG,
    SHORT,
    STRING,
    TIMESTAMP,
    TRUE,
    UUID,
    Header,
    encode,
    event,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.native import EventStreamDecoder, InvalidEventStream, NativeError

_VALUES = {
    TRUE: st.just(True),
    FALSE: st.just(False),
    BYTE: st.integers(-128, 127),
    SHORT: st.integers(-(2**15), 2**15 - 1),
    INT: st.integers(-(2**31), 2**31 - 1),
    LONG: st.integers(-(2**63), 2**63 - 1),
    TIMESTAMP: st.integers(0, 2**62),
    BYTES: st.binary(max_size=40),
    STRING: st.text(max_size=30),
    UUID: st.binary(min_size=16, max_size=16),
}
headers = st.integers(0, 9).flatmap(
    lambda kind: st.builds(
        Header,
        st.text(min_size=1, max_size=12).filter(lambda n: len(n.encode()) < 256),
        st.just(kind),
        _VALUES[kind],
    )
)
messages = st.lists(
    st.tuples(
        st.lists(headers, max_size=5, unique_by=lambda h: h.name),
        st.binary(max_size=300),
    ),
    min_size=1,
    max_size=6,
)


def expected(msgs: list[tuple[list[Header], bytes]]) -> list[tuple[dict[str, object], bytes]]:
    return [({h.name: h.decoded() for h in hs}, payload) for hs, payload in msgs]


def decoded(decoder: EventStreamDecoder, *chunks: bytes) -> list[tuple[dict[str, object], bytes]]:
    return [(dict(m.headers), m.payload) for c in chunks for m in decoder.feed(c)]


@settings(max_examples=200, deadline=None)
@given(msgs=messages, cuts=st.lists(st.integers(0, 10_000), max_size=6))
def test_any_messages_split_anywhere_decode_to_what_was_encoded(
    msgs: list[tuple[list[Header], bytes]], cuts: list[int]
) -> None:
    wire = b"".join(encode(hs, payload) for hs, payload in msgs)
    points = sorted({0, len(wire), *(c % (len(wire) + 1) for c in cuts)})
    chunks = [wire[a:b] for a, b in itertools.pairwise(points)]
    decoder = EventStreamDecoder()
    assert decoded(decoder, *chunks) == expected(msgs)
    assert decoder.pending == 0
    assert decoder.decoded == len(msgs)


@settings(max_examples=100, deadline=None)
@given(msgs=messages)
def test_the_reference_encoder_agrees_with_botocore(
    msgs: list[tuple[list[Header], bytes]],
) -> None:
    buffer = EventStreamBuffer()
    buffer.add_data(b"".join(encode(hs, payload) for hs, payload in msgs))
    got = [(m.headers, m.payload) for m in buffer]
    # botocore gives UUIDs as uuid.UUID and booleans as bools; compare payloads and names.
    assert [(sorted(h), p) for h, p in got] == [
        (sorted(h.name for h in hs), payload) for hs, payload in msgs
    ]


def test_every_split_of_a_bedrock_stream() -> None:
    wire = event("messageStart", b'{"role":"assistant"}') + event(
        "contentBlockDelta", b'{"delta":{"text":"Hi"},"contentBlockIndex":0}'
    )
    for cut in range(len(wire) + 1):
        got = decoded(EventStreamDecoder(), wire[:cut], wire[cut:])
        assert [h[":event-type"] for h, _ in got] == ["messageStart", "contentBlockDelta"]


@settings(max_examples=150, deadline=None)
@given(msgs=messages, data=st.data())
def test_any_flipped_bit_is_a_clean_error_keeping_the_messages_before(
    msgs: list[tuple[list[Header], bytes]], data: st.DataObject
) -> None:
    frames = [encode(hs, payload) for hs, payload in msgs]
    victim = data.draw(st.integers(0, len(frames) - 1))
    frame = bytearray(frames[victim])
    at = data.draw(st.integers(0, len(frame) - 1))
    frame[at] ^= 1 << data.draw(st.integers(0, 7))
    wire = b"".join(frames[:victim]) + bytes(frame) + b"".join(frames[victim + 1 :])
    decoder = EventStreamDecoder()
    with pytest.raises(InvalidEventStream) as err:
        decoder.feed(wire)
    assert [(dict(m.headers), m.payload) for m in err.value.messages] == expected(msgs[:victim])
    assert isinstance(err.value, NativeError)
    with pytest.raises(InvalidEventStream, match="failed earlier"):
        decoder.feed(frames[0])


def test_a_huge_declared_length_fails_at_once_instead_of_waiting() -> None:
    frame = bytearray(encode([], b"x" * 100))
    decoder = EventStreamDecoder(max_message_bytes=64)
    with pytest.raises(InvalidEventStream, match="over the limit of 64"):
        decoder.feed(bytes(frame[:12]))


def test_corrupt_prelude_crc_message_names_it() -> None:
    frame = bytearray(event("messageStop", b"{}"))
    frame[9] ^= 0xFF
    with pytest.raises(InvalidEventStream, match="message 1: prelude CRC mismatch"):
        EventStreamDecoder().feed(bytes(frame))
