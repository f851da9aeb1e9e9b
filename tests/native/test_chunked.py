"""The native chunked-body decoder: any body a provider may write, split anywhere by the
network, decodes to its payload; malformed framing fails with a message that says what."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.native import ChunkedDecoder, InvalidChunkedBody, NativeError


def encode(chunks: list[bytes], extensions: list[str], trailer: list[bytes]) -> bytes:
    """A chunked body as RFC 9112 writes it (sizes in either case of hex)."""
    out = b""
    for i, chunk in enumerate(chunks):
        size = f"{len(chunk):x}"
        if i % 2:
            size = size.upper()
        ext = extensions[i % len(extensions)] if extensions else ""
        out += f"{size}{ext}\r\n".encode() + chunk + b"\r\n"
    return out + b"0\r\n" + b"".join(line + b"\r\n" for line in trailer) + b"\r\n"


def decode(body: bytes, cuts: list[int]) -> tuple[bytes, bool, int]:
    decoder = ChunkedDecoder()
    payload, prev = b"", 0
    for cut in [*sorted(cuts), len(body)]:
        payload += decoder.feed(body[prev:cut])
        prev = cut
    return payload, decoder.done, decoder.trailing


@settings(max_examples=300, deadline=None)
@given(
    chunks=st.lists(st.binary(min_size=1, max_size=300), max_size=12),
    extensions=st.lists(st.sampled_from(["", ";a=b", ' ;x="y z"', ";n"]), max_size=3),
    trailer=st.lists(st.sampled_from([b"X-Checksum: 1", b"Server-Timing: total;dur=3"])),
    data=st.data(),
)
def test_any_body_under_any_split(
    chunks: list[bytes], extensions: list[str], trailer: list[bytes], data: st.DataObject
) -> None:
    body = encode(chunks, extensions, trailer)
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=6))
    assert decode(body, cuts) == (b"".join(chunks), True, 0)


def test_what_follows_the_body_is_not_taken() -> None:
    decoder = ChunkedDecoder()
    assert decoder.feed(b"5\r\nhello\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n") == b"hello"
    assert (decoder.done, decoder.trailing) == (True, 17)
    assert decoder.feed(b"more") == b""
    assert decoder.trailing == 4


def test_a_stream_of_event_chunks_is_delivered_per_read() -> None:
    events = [b'data: {"n":%d}\n\n' % i for i in range(24)]
    body = encode(events, [], [])
    decoder = ChunkedDecoder()
    half = len(body) // 2
    first, second = decoder.feed(body[:half]), decoder.feed(body[half:])
    assert first + second == b"".join(events)
    assert first and second and decoder.done


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"zz\r\n", "a malformed chunk size"),
        (b"-5\r\nhello\r\n", "a malformed chunk size"),
        (b"1_0\r\n", "a malformed chunk size"),
        (b"\r\n", "a malformed chunk size"),
        (b"11111111111111111\r\n", "a malformed chunk size"),
        (b"5\nhello\r\n", "a chunk line not ended by CRLF"),
        (b"2\r\nhello\r\n", "a chunk longer than its size"),
        (b"1" * 5000, "a chunk-size line over 4096 bytes"),
        (b"0\r\n" + (b"X: " + b"y" * 2000 + b"\r\n") * 40, "a chunked trailer over 65536 bytes"),
    ],
)
def test_malformed_framing_says_what(body: bytes, message: str) -> None:
    with pytest.raises(InvalidChunkedBody, match=message) as raised:
        ChunkedDecoder().feed(body)
    assert isinstance(raised.value, NativeError)
