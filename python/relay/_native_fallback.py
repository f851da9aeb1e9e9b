"""TEMPORARY pure-Python stand-ins for native functions being built (removed on merge)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from relay._native import NativeError, SseDecoder


class InvalidStreamEvent(NativeError):
    pass


@dataclass(slots=True)
class StreamScan:
    out: bytes
    events: int
    content: bool
    done: bool
    usage: tuple[int, int, int] | None
    error: bytes | None
    text: str


class OpenAIStreamScanner:
    def __init__(self, *, strip_usage: bool = False, max_event_bytes: int = 4194304) -> None:
        self._decoder = SseDecoder(max_event_bytes)
        self._strip = strip_usage
        self._text: list[str] = []
        self._done = False
        self.events = 0

    def feed(self, chunk: bytes) -> StreamScan:
        from relay.wire.openai import probe_response

        out: list[bytes] = []
        content = False
        usage = None
        error = None
        texts: list[str] = []
        n = 0
        if self._done:
            return StreamScan(b"", 0, False, True, None, None, "")
        for event in self._decoder.feed(chunk):
            data = event.data
            if data == b"[DONE]":
                self._done = True
                break
            try:
                probe = probe_response(data)
            except msgspec.DecodeError as exc:
                raise InvalidStreamEvent(
                    f"stream event {self.events + 1} is not JSON: {exc}"
                ) from None
            if probe.error is not None:
                error = msgspec.json.encode(probe.error)
                break
            if probe.usage is not None:
                d = probe.usage.prompt_tokens_details
                usage = (
                    probe.usage.prompt_tokens,
                    probe.usage.completion_tokens,
                    (d.cached_tokens or 0) if d else 0,
                )
                if self._strip and not probe.choices:
                    continue
            if b"\n" in data:
                data = data.replace(b"\n", b"\ndata: ")
            head = b"event: " + event.event.encode() + b"\n" if event.event is not None else b""
            out.append(head + b"data: " + data + b"\n\n")
            n += 1
            for choice in probe.choices or ():
                if piece := choice.generated_text():
                    texts.append(piece)
                if choice.carries_content():
                    content = True
        text = "".join(texts)
        self._text.append(text)
        self.events += n
        return StreamScan(b"".join(out), n, content, self._done, usage, error, text)

    def text(self) -> str:
        return "".join(self._text)

    def close(self) -> bool:
        return self._decoder.close()


def top_level_value(body: bytes, key: str) -> bytes | None:
    value = msgspec.json.decode(body).get(key)
    return None if value is None else msgspec.json.encode(value)


def splice_top_level(body: bytes, edits: Sequence[tuple[str, bytes]]) -> bytes:
    request = msgspec.json.decode(body)
    for key, raw in edits:
        request[key] = msgspec.json.decode(raw)
    return msgspec.json.encode(request)
