"""A fast, OpenAI-shaped fake upstream for benchmarks.

A raw :class:`asyncio.Protocol` HTTP/1.1 keep-alive server on uvloop. It parses requests
minimally (request line, a few headers, a ``Content-Length`` or chunked body) and answers:

* ``POST /v1/chat/completions``: a fixed small ``chat.completion`` JSON with usage, or, when the
  body contains ``"stream":true`` (or ``"stream": true``), a server-sent-event stream of
  ``--chunks`` chunks (role chunk, content chunks, finish chunk, a usage chunk when the body
  mentions ``include_usage``, then ``data: [DONE]``) written with chunked transfer encoding;
* ``GET /healthz``: ``{"status":"ok"}``;
* anything else: 404 in OpenAI's error envelope.

Every response is pre-rendered at start-up, so serving one is a dictionary-free byte search and
one ``transport.write``. ``--latency-ms`` delays the start of each response and
``--chunk-gap-ms`` spaces the content chunks of a stream (both use loop timers, never sleep).

    python benches/mock_upstream.py --port 9101 [--latency-ms 0] [--chunks 20] [--chunk-gap-ms 0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

MODEL = "bench-model"
CREATED = 1_700_000_000
PROMPT_TOKENS = 12
MAX_HEAD = 64 * 1024


def _chunk(payload: bytes) -> bytes:
    """One HTTP/1.1 chunk (``hex size CRLF data CRLF``)."""
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def _sse(obj: object) -> bytes:
    """One server-sent event carrying ``obj`` as compact JSON."""
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def _response(status: str, content_type: str, body: bytes, *, close: bool = False) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Connection: {'close' if close else 'keep-alive'}\r\n"
        "\r\n"
    )
    return head.encode() + body


@dataclass(frozen=True)
class Rendered:
    """Every byte the server can send, built once at start-up."""

    json_ok: bytes
    health: bytes
    not_found: bytes
    bad_request: bytes
    stream_head: bytes
    stream_first: bytes  # the role chunk and the first content chunk
    stream_rest: tuple[bytes, ...]  # each remaining content chunk (one HTTP chunk each)
    stream_finish: bytes  # finish chunk (usage chunk is separate)
    stream_usage: bytes
    stream_done: bytes  # data: [DONE] and the terminating zero-size chunk


def render(chunks: int) -> Rendered:
    """Pre-render the JSON completion and the pieces of a ``chunks``-event stream."""
    words = [f"tok{i} " for i in range(max(chunks, 1))]
    text = "".join(words)
    usage = {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": len(words),
        "total_tokens": PROMPT_TOKENS + len(words),
    }
    completion = {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": CREATED,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": usage,
        "system_fingerprint": "fp_bench",
    }
    json_body = json.dumps(completion, separators=(",", ":")).encode()

    def event(delta: dict[str, str], finish: str | None = None) -> bytes:
        return _sse(
            {
                "id": "chatcmpl-bench",
                "object": "chat.completion.chunk",
                "created": CREATED,
                "model": MODEL,
                "system_fingerprint": "fp_bench",
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }
        )

    content = [_chunk(event({"content": w})) for w in words]
    usage_event = _sse(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": MODEL,
            "system_fingerprint": "fp_bench",
            "choices": [],
            "usage": usage,
        }
    )
    error = json.dumps(
        {
            "error": {
                "message": "mock upstream: no such route",
                "type": "invalid_request_error",
                "param": None,
                "code": "not_found",
            }
        },
        separators=(",", ":"),
    ).encode()
    return Rendered(
        json_ok=_response("200 OK", "application/json", json_body),
        health=_response("200 OK", "application/json", b'{"status":"ok"}'),
        not_found=_response("404 Not Found", "application/json", error),
        bad_request=_response("400 Bad Request", "text/plain", b"bad request", close=True),
        stream_head=(
            b"HTTP/1.1 200 OK\r\n"
            b"Content-Type: text/event-stream\r\n"
            b"Cache-Control: no-cache\r\n"
            b"Transfer-Encoding: chunked\r\n"
            b"Connection: keep-alive\r\n"
            b"\r\n"
        ),
        stream_first=_chunk(event({"role": "assistant", "content": ""})) + content[0],
        stream_rest=tuple(content[1:]),
        stream_finish=_chunk(event({}, "stop")),
        stream_usage=_chunk(usage_event),
        stream_done=_chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n",
    )


class Settings:
    """The knobs of one server, shared by every connection."""

    def __init__(self, rendered: Rendered, latency_s: float, gap_s: float) -> None:
        self.r = rendered
        self.latency_s = latency_s
        self.gap_s = gap_s
        # With no delays at all a whole stream is one write of pre-joined bytes.
        self.whole_stream = rendered.stream_head + rendered.stream_first
        self.whole_stream += b"".join(rendered.stream_rest) + rendered.stream_finish
        self.whole_stream_usage = self.whole_stream + rendered.stream_usage + rendered.stream_done
        self.whole_stream += rendered.stream_done


class MockProtocol(asyncio.Protocol):
    """One keep-alive connection; requests are answered strictly in order."""

    __slots__ = ("_buf", "_busy", "_closing", "_loop", "_s", "_t")

    def __init__(self, settings: Settings, loop: asyncio.AbstractEventLoop) -> None:
        self._s = settings
        self._loop = loop
        self._buf = bytearray()
        self._t: asyncio.Transport | None = None
        self._busy = False  # a delayed response is being written; hold later requests
        self._closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._t = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self._t = None

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if not self._busy:
            self._process()

    # -- parsing -----------------------------------------------------------------------------
    def _process(self) -> None:
        """Answer every complete request in the buffer (stops while a response is delayed)."""
        buf = self._buf
        while not self._busy and self._t is not None and not self._closing:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    self._fatal()
                return
            head = bytes(buf[:end]).lower()
            start = end + 4
            cl_at = head.find(b"\r\ncontent-length:")
            if cl_at >= 0:
                eol = head.find(b"\r\n", cl_at + 2)
                raw = head[cl_at + 17 : eol if eol >= 0 else len(head)]
                try:
                    length = int(raw)
                except ValueError:
                    self._fatal()
                    return
                if len(buf) < start + length:
                    return
                body = bytes(buf[start : start + length])
                del buf[: start + length]
            elif b"\r\ntransfer-encoding: chunked" in head:
                parsed = _dechunk(buf, start)
                if parsed is None:
                    return
                body, consumed = parsed
                del buf[:consumed]
            else:
                body = b""
                del buf[:start]
            if b"\r\nconnection: close" in head:
                self._closing = True
            self._answer(head, body)

    def _fatal(self) -> None:
        if self._t is not None:
            self._t.write(self._s.r.bad_request)
            self._t.close()
        self._closing = True

    # -- answering ---------------------------------------------------------------------------
    def _answer(self, head: bytes, body: bytes) -> None:
        s = self._s
        if head.startswith(b"post /v1/chat/completions"):
            stream = b'"stream":true' in body or b'"stream": true' in body
            usage = b"include_usage" in body
            if s.latency_s > 0:
                self._busy = True
                self._loop.call_later(s.latency_s, self._respond, stream, usage)
            else:
                self._respond(stream, usage)
        elif head.startswith(b"get /healthz"):
            self._write(s.r.health)
        else:
            self._write(s.r.not_found)

    def _respond(self, stream: bool, usage: bool) -> None:
        s = self._s
        if not stream:
            self._write(s.r.json_ok)
            self._resume()
        elif s.gap_s <= 0:
            self._write(s.whole_stream_usage if usage else s.whole_stream)
            self._resume()
        else:
            self._busy = True
            self._write(s.r.stream_head + s.r.stream_first)
            rest = deque(s.r.stream_rest)
            self._loop.call_later(s.gap_s, self._next_chunk, rest, usage)

    def _next_chunk(self, rest: deque[bytes], usage: bool) -> None:
        if self._t is None:
            return
        if rest:
            self._write(rest.popleft())
            self._loop.call_later(self._s.gap_s, self._next_chunk, rest, usage)
            return
        r = self._s.r
        tail = r.stream_finish + (r.stream_usage if usage else b"") + r.stream_done
        self._write(tail)
        self._resume()

    def _resume(self) -> None:
        if self._busy:
            self._busy = False
            if self._closing and self._t is not None:
                self._t.close()
            elif self._buf:
                self._process()
        elif self._closing and self._t is not None:
            self._t.close()

    def _write(self, data: bytes) -> None:
        if self._t is not None:
            self._t.write(data)


def _dechunk(buf: bytearray, start: int) -> tuple[bytes, int] | None:
    """Decode a chunked body beginning at ``start``; None while it is incomplete."""
    out = bytearray()
    pos = start
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(bytes(buf[pos:eol]).split(b";", 1)[0], 16)
        pos = eol + 2
        if size == 0:
            # Skip trailers up to the blank line.
            end = buf.find(b"\r\n", pos)
            while end > pos:
                pos = end + 2
                end = buf.find(b"\r\n", pos)
            if end < 0:
                return None
            return bytes(out), end + 2
        if len(buf) < pos + size + 2:
            return None
        out += buf[pos : pos + size]
        pos += size + 2


async def serve(host: str, port: int, settings: Settings) -> None:
    """Serve until SIGINT or SIGTERM."""
    loop = asyncio.get_running_loop()
    factory: Callable[[], MockProtocol] = lambda: MockProtocol(settings, loop)  # noqa: E731
    server = await loop.create_server(factory, host, port, backlog=4096, reuse_address=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"mock upstream listening on http://{host}:{port}/v1", file=sys.stderr, flush=True)
    await stop.wait()
    server.close()


def main(argv: list[str] | None = None) -> int:
    """Parse flags, optionally pin to a CPU, and serve."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9101)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before a response")
    parser.add_argument("--chunks", type=int, default=20, help="content chunks per stream")
    parser.add_argument("--chunk-gap-ms", type=float, default=0.0, help="gap between chunks")
    parser.add_argument("--cpu", type=int, default=None, help="pin this process to one CPU")
    args = parser.parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    settings = Settings(render(args.chunks), args.latency_ms / 1000, args.chunk_gap_ms / 1000)
    try:
        import uvloop
    except ImportError:  # still works, just slower
        print("uvloop not installed: using the default asyncio loop", file=sys.stderr)
        asyncio.run(serve(args.host, args.port, settings))
    else:
        uvloop.run(serve(args.host, args.port, settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
