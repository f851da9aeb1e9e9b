"""relay._native.SseDecoder against the spec examples and the pure-Python
reference parser (tests/native/sse_reference.py), under every chunking."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sse_reference import BOM, RefEvent, oversized, parse

from relay._native import NativeError, SseDecoder, SseEvent, SseEventTooLarge

Decoded = tuple[list[RefEvent], bool]


def as_ref(e: SseEvent) -> RefEvent:
    return RefEvent(event=e.event, data=e.data, id=e.id, retry=e.retry)


def decode(stream: bytes, cuts: list[int] | None = None, **kw: int) -> Decoded:
    """Feed ``stream`` cut at ``cuts``; returns the events and close()."""
    d = SseDecoder(**kw)
    events: list[RefEvent] = []
    prev = 0
    for cut in [*sorted(cuts or []), len(stream)]:
        events += [as_ref(e) for e in d.feed(stream[prev:cut])]
        prev = cut
    discarded = d.close()
    assert d.buffered == 0
    return events, discarded


def decode_bytewise(stream: bytes) -> Decoded:
    return decode(stream, list(range(len(stream) + 1)))


def check_all_splits(stream: bytes) -> Decoded:
    want = parse(stream)
    assert decode(stream) == want
    assert decode_bytewise(stream) == want
    for cut in range(len(stream) + 1):
        assert decode(stream, [cut]) == want, f"split at {cut}"
    return want


def ev(
    data: bytes, event: str | None = None, id: str | None = None, retry: int | None = None
) -> RefEvent:
    return RefEvent(event=event, data=data, id=id, retry=retry)


# --- examples, mostly from the WHATWG spec ---------------------------------


def test_spec_example_stock_ticker() -> None:
    stream = b"data: YHOO\ndata: +2\ndata: 10\n\n"
    assert check_all_splits(stream) == ([ev(b"YHOO\n+2\n10")], False)


def test_spec_example_four_blocks() -> None:
    stream = (
        b": test stream\n\ndata: first event\nid: 1\n\n"
        b"data:second event\nid\n\ndata:  third event\n"
    )
    # The last block has no blank line after it, so it is discarded.
    assert check_all_splits(stream) == (
        [ev(b"first event", id="1"), ev(b"second event")],
        True,
    )


def test_spec_example_empty_data() -> None:
    stream = b"data\n\ndata\ndata\n\ndata:\n"
    assert check_all_splits(stream) == ([ev(b""), ev(b"\n")], True)


def test_spec_example_space_after_colon() -> None:
    stream = b"data:test\n\ndata: test\n\n"
    assert check_all_splits(stream) == ([ev(b"test"), ev(b"test")], False)


@pytest.mark.parametrize("eol", [b"\n", b"\r", b"\r\n"])
def test_line_endings(eol: bytes) -> None:
    stream = eol.join([b"event: e", b"data: a", b"data: b", b"", b""])
    assert check_all_splits(stream) == ([ev(b"a\nb", event="e")], False)


def test_mixed_line_endings_and_cr_lf_across_chunks() -> None:
    stream = b"data: a\r\ndata: b\rdata: c\n\r\n"
    assert check_all_splits(stream) == ([ev(b"a\nb\nc")], False)
    d = SseDecoder()
    assert d.feed(b"data: x\r") == []
    assert d.feed(b"\n") == []  # the LF completes the CR: not a blank line
    assert d.buffered == 2
    assert [e.data for e in d.feed(b"\n")] == [b"x"]


def test_fields() -> None:
    stream = (
        b"event: update\nid: 42\nretry: 3000\nunknown: x\nDATA: ignored\n"
        b"data:  two spaces\nnocolon\n: a comment\n\n"
    )
    assert check_all_splits(stream) == (
        [ev(b" two spaces", event="update", id="42", retry=3000)],
        False,
    )


def test_id_and_retry_persist_event_resets() -> None:
    stream = b"event: a\nid: 1\nretry: 7\ndata: x\n\ndata: y\n\nid:\nretry: no\ndata: z\n\n"
    assert check_all_splits(stream) == (
        [
            ev(b"x", event="a", id="1", retry=7),
            ev(b"y", id="1", retry=7),
            ev(b"z", retry=7),
        ],
        False,
    )


def test_id_with_nul_ignored() -> None:
    assert check_all_splits(b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n")[0] == [
        ev(b"a", id="1"),
        ev(b"b", id="1"),
    ]


def test_event_without_data_not_dispatched() -> None:
    assert check_all_splits(b"event: ping\n\ndata: x\n\n") == ([ev(b"x")], False)


def test_bom() -> None:
    assert check_all_splits(BOM + b"data: a\n\n") == ([ev(b"a")], False)
    # Only one BOM, only at the very start.
    assert check_all_splits(BOM + BOM + b"data: a\n\n") == ([], False)
    assert check_all_splits(b"data: " + BOM + b"\n\n") == ([ev(BOM)], False)


def test_data_is_raw_bytes_and_names_are_decoded() -> None:
    events, _ = check_all_splits(b"event: caf\xc3\xa9\xff\nid: \xff\ndata: \xff\xfe\n\n")
    assert events == [ev(b"\xff\xfe", event="caf\u00e9\ufffd", id="\ufffd")]


def test_openai_stream() -> None:
    chunks = [
        b'data: {"id":"c1","choices":[{"delta":{"content":"Hel"}}]}\n\n',
        b'data: {"id":"c1","choices":[{"delta":{"content":"lo"}}]}\n\ndata: [DO',
        b"NE]\n\n",
    ]
    d = SseDecoder()
    got = [e.data for c in chunks for e in d.feed(c)]
    assert got == [
        b'{"id":"c1","choices":[{"delta":{"content":"Hel"}}]}',
        b'{"id":"c1","choices":[{"delta":{"content":"lo"}}]}',
        b"[DONE]",
    ]
    assert d.close() is False


# --- the binding itself ------------------------------------------------------


def test_event_object() -> None:
    (e,) = SseDecoder().feed(b"event: x\nid: 1\nretry: 5\ndata: a\n\n")
    assert repr(e) == "SseEvent(event='x', data=b'a', id='1', retry=5)"
    with pytest.raises(AttributeError):
        e.data = b"b"  # type: ignore[misc]
    (same,) = SseDecoder().feed(b"event: x\nid: 1\nretry: 5\ndata: a\n\n")
    (other,) = SseDecoder().feed(b"data: a\n\n")
    assert e == same and hash(e) == hash(same)
    assert e != other
    assert e != ("x", b"a", "1", 5)
    assert isinstance(e.data, bytes)
    assert repr(other) == "SseEvent(event=None, data=b'a', id=None, retry=None)"


def test_buffered_and_close() -> None:
    d = SseDecoder()
    assert d.feed(b"event: e\ndata: abc\ndata: de") == []
    assert d.buffered == len(b"e") + len(b"abc\n") + len(b"data: de")
    assert d.close() is True
    assert d.buffered == 0
    assert d.close() is False
    assert d.feed(b": comment only\n") == []
    assert d.close() is False
    assert d.feed(b"id: 1\n") == []
    assert d.close() is True


def test_feed_requires_bytes() -> None:
    with pytest.raises(TypeError):
        SseDecoder().feed("data: x\n\n")  # type: ignore[arg-type]


def test_large_chunk_path_matches_small() -> None:
    # Chunks of 8 KiB and more are decoded with the GIL released.
    stream = b"".join(b"id: %d\nevent: e%d\ndata: %s\n\n" % (i, i, b"x" * i) for i in range(300))
    assert len(stream) > 8192
    want = parse(stream)
    assert decode(stream) == want
    assert decode(stream, list(range(0, len(stream), 997))) == want
    assert len(want[0]) == 300


def test_too_large() -> None:
    assert issubclass(SseEventTooLarge, NativeError)
    assert issubclass(NativeError, ValueError)
    d = SseDecoder(max_event_bytes=16)
    assert [e.data for e in d.feed(b"data: 0123456789\n\n")] == [b"0123456789"]
    with pytest.raises(SseEventTooLarge, match="max_event_bytes=16"):
        d.feed(b"data: 0123456789abc\n")
    # The decoder stays failed until close().
    with pytest.raises(SseEventTooLarge):
        d.feed(b"\n")
    assert d.close() is True
    assert [e.data for e in d.feed(b"data: ok\n\n")] == [b"ok"]


def test_too_large_unterminated_line() -> None:
    d = SseDecoder(max_event_bytes=1000)
    d.feed(b"data: ")
    with pytest.raises(SseEventTooLarge):
        for _ in range(100):
            d.feed(b"x" * 100)
    assert d.buffered == 0


def test_too_large_multi_line_event() -> None:
    d = SseDecoder(max_event_bytes=100)
    with pytest.raises(SseEventTooLarge):
        d.feed(b"data: " + b"y" * 40 + b"\n" + b"data: " + b"z" * 60 + b"\n")


# --- property tests against the reference -----------------------------------

names = st.sampled_from(
    [b"data"] * 4
    + [b"event", b"event", b"id", b"id", b"retry", b"retry"]
    + [b"foo", b"Data", b"dat", b"", b" data", BOM + b"data"]
)
value_parts = st.sampled_from(
    [
        b"a",
        b"b c",
        b" ",
        b":",
        b"0",
        b"7",
        b"12345",
        b"x",
        b"y",
        b"42",
        b"\x00",
        b"\xff",
        b"\xc3\xa9",
        BOM,
    ]
)
values = st.one_of(
    st.lists(value_parts, max_size=3).map(b"".join), st.sampled_from([b"0", b"15", b"3000"])
)
separators = st.sampled_from([b":", b": ", b": ", b":  ", b""])
eols = st.sampled_from([b"\n", b"\r", b"\r\n"])


@st.composite
def lines(draw: st.DrawFn) -> bytes:
    """One non-blank line: mostly fields, sometimes a comment."""
    if draw(st.integers(0, 9)) == 0:
        return b":" + draw(values)
    sep = draw(separators)
    name = draw(names)
    # A value is only meaningful after a colon; without one the line is a name.
    return name + sep + draw(values) if sep else name


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    """Event blocks (field lines, then a blank line) with mixed line ends."""
    out = [draw(st.sampled_from([b"", b"", BOM, BOM[:2]]))]
    for block in draw(st.lists(st.lists(lines(), max_size=4), max_size=6)):
        for line in block:
            out += [line, draw(eols)]
        out.append(draw(eols))  # the blank line that dispatches
    out.append(draw(st.sampled_from([b"", b"", b"data: tail", b"id: 9\n", b"\r"])))
    return b"".join(out)


# Byte soup: the same ingredients in any order, to reach odd corners.
soups = st.lists(
    st.sampled_from(
        [
            b"\r",
            b"\n",
            b"\r\n",
            b":",
            b" ",
            b"data",
            b"id",
            b"event",
            b"retry",
            b"1",
            b"x",
            b"\x00",
            b"\xef",
            b"\xbb",
            b"\xbf",
            BOM,
        ]
    ),
    max_size=40,
).map(b"".join)

any_stream = st.one_of(streams(), soups)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(any_stream)
@example(b"data: a\r\n\r\n")
@example(b"\xef\xbb")
@example(b"\xef\xbb\xbf\r\n")
def test_every_two_way_split_matches_reference(stream: bytes) -> None:
    check_all_splits(stream)


@settings(max_examples=300)
@given(any_stream, st.data())
def test_random_splits_match_reference(stream: bytes, data: st.DataObject) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=10))
    assert decode(stream, cuts) == parse(stream)


@settings(max_examples=300)
@given(any_stream, st.integers(0, 60), st.data())
def test_size_limit_matches_reference(stream: bytes, limit: int, data: st.DataObject) -> None:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    d = SseDecoder(max_event_bytes=limit)
    raised = False
    prev = 0
    try:
        for cut in [*cuts, len(stream)]:
            d.feed(stream[prev:cut])
            prev = cut
    except SseEventTooLarge:
        raised = True
    assert raised == oversized(stream, limit)
    if not raised:
        assert decode(stream, cuts, max_event_bytes=limit) == parse(stream)
