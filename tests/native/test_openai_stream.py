"""relay._native.OpenAIStreamScanner against the pure-Python model in
tests/native/openai_stream_reference.py, under every chunking."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai_stream_reference import StreamResult, scan_event, scan_stream

from relay._native import (
    InvalidStreamEvent,
    NativeError,
    OpenAIStreamScanner,
    SseEventTooLarge,
    StreamScan,
)


def run(stream: bytes, cuts: list[int] | None = None, **kw: Any) -> StreamResult:
    """Feed ``stream`` cut at ``cuts``; the totals in the reference's terms."""
    s = OpenAIStreamScanner(**kw)
    r = StreamResult()
    prev = 0
    for cut in [*sorted(cuts or []), len(stream)]:
        scan = s.feed(stream[prev:cut])
        prev = cut
        r.out += scan.out
        r.events += scan.events
        r.content = r.content or scan.content
        r.done = r.done or scan.done
        r.usage = scan.usage or r.usage
        if scan.error is not None:
            r.error = json.loads(scan.error)
        r.text += scan.text
    assert s.events == r.events
    s.close()
    return r


def check(stream: bytes, cuts: list[int] | None = None, strip_usage: bool = False) -> None:
    want = scan_stream(stream, strip_usage)
    assert run(stream, cuts, strip_usage=strip_usage) == want


# --- realistic OpenAI streams ---------------------------------------------------------------

TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"])
    | st.sampled_from('"\\\n\r\t/\x00é日🦀'),
    max_size=12,
)


def chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": choices,
        **extra,
    }


@st.composite
def openai_events(draw: st.DrawFn) -> list[Any]:
    """The JSON values of a plausible chat completion stream, then [DONE]."""
    events: list[Any] = [chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}}])]
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["content", "tool", "refusal", "odd", "legacy"]))
        if kind == "content":
            delta: dict[str, Any] = {"content": draw(TEXT)}
        elif kind == "tool":
            fn = {"arguments": draw(TEXT)}
            if draw(st.booleans()):
                fn["name"] = draw(TEXT)
            delta = {
                "tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": fn}]
            }
        elif kind == "refusal":
            delta = {"refusal": draw(TEXT)}
        elif kind == "odd":
            delta = {"content": [{"type": "text", "text": draw(TEXT)}]}
        else:
            events.append({"choices": [{"index": 0, "text": draw(TEXT), "finish_reason": None}]})
            continue
        events.append(chunk([{"index": 0, "delta": delta, "finish_reason": None}]))
    events.append(chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}]))
    if draw(st.booleans()):
        usage = {
            "prompt_tokens": draw(st.integers(0, 10**6)),
            "completion_tokens": draw(st.integers(0, 10**6)),
            "total_tokens": 0,
            "prompt_tokens_details": {"cached_tokens": draw(st.integers(0, 99))},
        }
        events.append(chunk([], usage=usage))
    return events


@st.composite
def sse_stream(draw: st.DrawFn, values: list[Any]) -> bytes:
    """Frame JSON values as SSE, varying what SSE allows (and ending with [DONE])."""
    eol = draw(st.sampled_from([b"\n", b"\r\n", b"\r"]))
    out = b""
    for v in [*values, "[DONE]"]:
        if v == "[DONE]":
            data = b"[DONE]"
        else:
            indent = draw(st.sampled_from([None, None, 1]))
            data = json.dumps(v, ensure_ascii=draw(st.booleans()), indent=indent).encode()
        if draw(st.integers(0, 5)) == 0:
            out += b": keep-alive" + eol
        if draw(st.integers(0, 5)) == 0:
            out += b"event: " + draw(st.sampled_from([b"message", b"delta", b"x"])) + eol
        if draw(st.integers(0, 5)) == 0:
            out += b"id: 7" + eol + b"retry: 100" + eol
        for line in data.split(b"\n"):
            out += b"data:" + draw(st.sampled_from([b" ", b""])) + line + eol
        out += eol
    if draw(st.booleans()):
        out += b"data: not json after the end" + eol + eol
    return out


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_realistic_streams_any_chunking(data: st.DataObject) -> None:
    stream = data.draw(sse_stream(data.draw(openai_events())))
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=8))
    strip = data.draw(st.booleans())
    check(stream, cuts, strip_usage=strip)


@settings(max_examples=10, deadline=None)
@given(st.data())
def test_realistic_streams_every_split_and_bytewise(data: st.DataObject) -> None:
    stream = data.draw(sse_stream(data.draw(openai_events())))
    want = scan_stream(stream)
    for cut in range(len(stream) + 1):
        assert run(stream, [cut]) == want, f"split at {cut}"
    assert run(stream, list(range(len(stream)))) == want


# --- arbitrary shapes: the odd-shape rules ---------------------------------------------------

NAMES = [
    "choices",
    "usage",
    "delta",
    "message",
    "text",
    "finish_reason",
    "content",
    "refusal",
    "tool_calls",
    "function_call",
    "function",
    "name",
    "arguments",
    "prompt_tokens",
    "completion_tokens",
    "prompt_tokens_details",
    "cached_tokens",
    "index",
    "role",
]
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**65), 2**65)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
)
JSONISH = st.recursive(
    SCALARS,
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.sampled_from(NAMES), kids, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=400)
@given(
    st.dictionaries(st.sampled_from(["choices", "usage", "error", "id"]), JSONISH, max_size=3)
    | JSONISH
)
def test_arbitrary_shapes_match_the_model(value: Any) -> None:
    if isinstance(value, dict) and "error" in value and value["error"] is not None:
        value = {k: v for k, v in value.items() if k != "error"}
    check(b"data: " + json.dumps(value).encode() + b"\n\n")
    check(b"data: " + json.dumps(value).encode() + b"\n\n", strip_usage=True)


def test_documented_choice_shapes() -> None:
    c = {"choices": [{"delta": {"content": "a", "tool_calls": [{"function": {"name": "f"}}]}}]}
    info = scan_event(json.dumps(c).encode())
    assert (info.content, info.text) == (True, "af")
    stream = b"data: " + json.dumps(c).encode() + b"\n\n"
    assert run(stream).text == "af"


# --- contract details ------------------------------------------------------------------------

ROLE = b'{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}'
HI = b'{"choices":[{"index":0,"delta":{"content":"Hi"}}]}'
USAGE = b'{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":1}}}'


def sse(*datas: bytes) -> bytes:
    return b"".join(b"data: " + d + b"\n\n" for d in datas)


def test_one_scan_per_read() -> None:
    s = OpenAIStreamScanner()
    scan = s.feed(sse(ROLE))
    assert isinstance(scan, StreamScan)
    assert (scan.out, scan.events, scan.content, scan.done) == (sse(ROLE), 1, False, False)
    assert (scan.usage, scan.error, scan.text) == (None, None, "")
    scan = s.feed(sse(HI, USAGE, b"[DONE]") + b"data: {\n\n")
    assert (scan.out, scan.events, scan.content, scan.done) == (sse(HI, USAGE), 2, True, True)
    assert (scan.usage, scan.text, s.events) == ((5, 2, 1), "Hi", 3)
    assert "StreamScan(out=b'data: " in repr(scan)
    # The stream is over: later reads are ignored.
    scan = s.feed(sse(HI))
    assert (scan.out, scan.events, scan.done, scan.text) == (b"", 0, False, "")
    assert s.close() is False


def test_strip_usage() -> None:
    s = OpenAIStreamScanner(strip_usage=True)
    scan = s.feed(sse(HI, USAGE, b"[DONE]"))
    assert (scan.out, scan.events, scan.usage) == (sse(HI), 1, (5, 2, 1))
    # Usage on a chunk that has choices is relayed.
    both = b'{"choices":[{"delta":{"content":"x"}}],"usage":{"prompt_tokens":1}}'
    scan = OpenAIStreamScanner(strip_usage=True).feed(sse(both))
    assert (scan.out, scan.usage) == (sse(both), (1, 0, 0))


def test_error_event_stops_the_scan() -> None:
    err = b'{"error":{"message":"overloaded","type":"server_error","code":null}}'
    s = OpenAIStreamScanner()
    scan = s.feed(sse(HI, err, HI))
    assert (scan.out, scan.events, scan.error, scan.text) == (sse(HI), 1, err[9:-1], "Hi")
    assert json.loads(scan.error or b"") == {
        "message": "overloaded",
        "type": "server_error",
        "code": None,
    }


def test_reframing_keeps_data_bytes() -> None:
    stream = b'event: delta\r\nid: 3\r\n: c\r\ndata: {"choices":\r\ndata:  [] }\r\n\r\n'
    scan = OpenAIStreamScanner().feed(stream)
    assert scan.out == b'event: delta\ndata: {"choices":\ndata:  [] }\n\n'


def test_not_json_and_not_utf8() -> None:
    s = OpenAIStreamScanner()
    with pytest.raises(InvalidStreamEvent, match=r"^stream event 3 is not JSON: ") as e:
        s.feed(sse(ROLE, HI, b"{'a': 1}", HI))
    assert isinstance(e.value, NativeError) and isinstance(e.value, ValueError)
    assert e.value.scan is not None
    assert (e.value.scan.out, e.value.scan.events, e.value.scan.text) == (sse(ROLE, HI), 2, "Hi")
    assert s.feed(sse(HI)).events == 0  # ended

    s = OpenAIStreamScanner()
    with pytest.raises(InvalidStreamEvent, match=r"^stream event 1 is not valid UTF-8 at byte 12$"):
        s.feed(b'data: {"choices":"\xc3("}\n\n')


def test_too_large() -> None:
    s = OpenAIStreamScanner(max_event_bytes=100)
    with pytest.raises(SseEventTooLarge) as e:
        s.feed(sse(HI) + b"data: " + b"x" * 200)
    assert e.value.scan is not None and e.value.scan.out == sse(HI)
    # What is after [DONE] is never read, however large.
    s = OpenAIStreamScanner(max_event_bytes=100)
    assert s.feed(sse(b"[DONE]") + b"data: " + b"x" * 200).done


def test_close() -> None:
    s = OpenAIStreamScanner()
    s.feed(sse(HI) + b"data: {")
    assert s.close() is True
    assert OpenAIStreamScanner().close() is False


def test_large_reads_release_the_gil_and_agree() -> None:
    datas = [HI] * 500 + [USAGE, b"[DONE]"]
    stream = sse(*datas)
    assert len(stream) > 8192
    check(stream)
    check(stream, [5000, 5001, 9000], strip_usage=True)
