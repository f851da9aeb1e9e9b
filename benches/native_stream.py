"""Micro-benchmark: the Python-side cost of the stream relay's per-read work, and of
editing a request body.

Stream relay: a 20-event OpenAI chat stream (role, 17 content chunks, finish, usage,
then [DONE]) delivered (a) one event per network read and (b) all in one read. The old
path is what python/relay/stream/relay.py ``_take`` does (SseDecoder, then a msgspec
probe, usage, re-framing and text per event); the new path is one
``OpenAIStreamScanner.feed`` per read plus what the relay still does with the result.
Both include building the decoder/scanner, spread over the stream's events.

Body edit: rename ``model`` and force ``stream_options`` on a 40 KB chat body with
``splice_top_level`` versus msgspec decode + encode.

Run from the repository root with the extension built in place:
    PYTHONPATH=python python benches/native_stream.py
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import msgspec

from relay.native import OpenAIStreamScanner, SseDecoder, splice_top_level, top_level_value
from relay.wire.openai import probe_response, usage_from_wire

DONE = b"[DONE]"


def frame(event: str | None, data: bytes) -> bytes:
    """The old relay's re-framing of one event (kept here as the reference it was)."""
    if b"\n" in data:
        data = data.replace(b"\n", b"\ndata: ")
    head = b"event: " + event.encode() + b"\n" if event is not None else b""
    return head + b"data: " + data + b"\n\n"


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-AbCdEfGhIjKlMnOpQrStUvWxYz012",
        "object": "chat.completion.chunk",
        "created": 1732950000,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_0ba0d124f1",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        "usage": None,
    }


def openai_stream() -> list[bytes]:
    """One SSE frame per event: 20 events, then [DONE]."""
    words = [" The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog,"]
    words += [" and", " then", " it", " naps", " in", " the", " warm", " sun."]
    events = [chunk({"role": "assistant", "content": "", "refusal": None})]
    events += [chunk({"content": w}) for w in words]
    events.append(chunk({}, "stop"))
    usage = chunk({})
    usage["choices"] = []
    usage["usage"] = {
        "prompt_tokens": 25,
        "completion_tokens": 17,
        "total_tokens": 42,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }
    events.append(usage)
    assert len(events) == N_EVENTS
    frames = [b"data: " + json.dumps(e, separators=(",", ":")).encode() + b"\n\n" for e in events]
    return [*frames, b"data: [DONE]\n\n"]


N_EVENTS = 20


def old_path(reads: list[bytes]) -> tuple[bytes, str, bool]:
    """What the old StreamRelay._take did, per read (before the native scanner)."""
    decoder = SseDecoder(4 * 1024 * 1024)
    parts: list[str] = []
    sent: list[bytes] = []
    content_seen = False
    for read in reads:
        out: list[bytes] = []
        done = False
        for event in decoder.feed(read):
            data = event.data
            if data == DONE:
                done = True
                break
            probe = probe_response(data)
            if probe.error is not None:
                raise RuntimeError(probe.error)
            if probe.usage is not None:
                usage_from_wire(probe.usage)
                if not probe.choices:  # strip_usage
                    continue
            out.append(frame(event.event, data))
            for choice in probe.choices or ():
                if piece := choice.generated_text():
                    parts.append(piece)
                if not content_seen and choice.carries_content():
                    content_seen = True
        if out:
            sent.append(b"".join(out))
        if done:
            break
    return b"".join(sent), "".join(parts), content_seen


def new_path(reads: list[bytes]) -> tuple[bytes, str, bool]:
    """The same work with one OpenAIStreamScanner.feed per read."""
    scanner = OpenAIStreamScanner(strip_usage=True)
    parts: list[str] = []
    sent: list[bytes] = []
    content_seen = False
    for read in reads:
        scan = scanner.feed(read)
        if scan.error is not None:
            raise RuntimeError(scan.error)
        if scan.usage is not None:
            pass  # the relay would store it on the exchange
        if scan.text:
            parts.append(scan.text)
        content_seen = content_seen or scan.content
        if scan.events:
            sent.append(scan.out)
        if scan.done:
            break
    return b"".join(sent), "".join(parts), content_seen


def per_call_ns(fn: Callable[[], object], inner: int, repeats: int = 7) -> float:
    """Best-of-``repeats`` mean ns of this thread's CPU time per call of ``fn`` (CPU
    time, not wall time, so that other processes on a shared box weigh less)."""
    fn()
    runs = []
    for _ in range(repeats):
        t0 = time.thread_time_ns()
        for _ in range(inner):
            fn()
        runs.append((time.thread_time_ns() - t0) / inner)
    return min(runs)


def chat_body(size: int) -> bytes:
    messages = [{"role": "system", "content": "You are a careful assistant. " * 8}]
    text = 'Lorem ipsum dolor sit amet, consectetur adipiscing elit, "quoted" \\ é 日本. '
    while len(json.dumps(messages)) < size - 200:
        messages.append({"role": "user", "content": text * 12})
        messages.append({"role": "assistant", "content": text * 6})
    body = {"model": "gpt-4o", "messages": messages, "temperature": 0.2, "stream": True}
    return json.dumps(body, ensure_ascii=False).encode()


def main() -> None:
    frames = openai_stream()
    per_event = frames
    one_read = [b"".join(frames)]
    assert old_path(per_event) == new_path(per_event) == new_path(one_read) == old_path(one_read)

    rows = []
    for label, reads in [
        ("(a) one event per read", per_event),
        ("(b) whole stream, one read", one_read),
    ]:
        old = per_call_ns(lambda r=reads: old_path(r), 2000) / N_EVENTS
        new = per_call_ns(lambda r=reads: new_path(r), 2000) / N_EVENTS
        rows.append((label, old, new))
    print(f"stream relay, {N_EVENTS}-event OpenAI stream: Python-side CPU ns per relayed event")
    print(
        f"  {'delivery':<28} {'old (SseDecoder+msgspec)':>26} {'new (scanner)':>14} {'speed-up':>9}"
    )
    for label, old, new in rows:
        print(f"  {label:<28} {old:>26.0f} {new:>14.0f} {old / new:>8.1f}x")

    body = chat_body(42_000)
    edits = [("model", b'"gpt-4o-2024-08-06"'), ("stream_options", b'{"include_usage":true}')]
    decoder = msgspec.json.Decoder()
    encoder = msgspec.json.Encoder()

    def with_msgspec() -> bytes:
        doc = decoder.decode(body)
        doc["model"] = "gpt-4o-2024-08-06"
        doc["stream_options"] = {"include_usage": True}
        return encoder.encode(doc)

    assert json.loads(splice_top_level(body, edits)) == json.loads(with_msgspec())
    times = {
        "splice_top_level (2 edits)": per_call_ns(lambda: splice_top_level(body, edits), 300),
        "top_level_value('stream_options')": per_call_ns(
            lambda: top_level_value(body, "stream_options"), 300
        ),
        "msgspec decode + encode": per_call_ns(with_msgspec, 300),
    }
    print(f"\nbody edit on a {len(body) / 1000:.0f} KB chat body: CPU us per call")
    for label, ns in times.items():
        print(f"  {label:<36} {ns / 1000:>8.1f}")
    print("\n(thread CPU time, best of 7 runs of the mean)")


if __name__ == "__main__":
    main()
