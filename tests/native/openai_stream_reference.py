"""A deliberately simple model of relay._native.OpenAIStreamScanner, built on
``json`` and the SSE reference parser, used as the oracle in test_openai_stream.

It scans a *whole* stream at once. The documented shapes (anything else is
"odd": it counts as content and adds no text; an odd ``usage`` is ignored)::

    top     {choices: [choice] | null, usage: usage | null, error: any | null}
    choice  {delta: msg | null, message: msg | null, text: str | null, finish_reason: str | null}
    msg     {content: str | null, refusal: str | null, tool_calls: [call] | null,
             function_call: func | null}
    call    {function: func | null}
    func    {name: str | null, arguments: str | null}
    usage   {prompt_tokens: u64 | null, completion_tokens: u64 | null,
             prompt_tokens_details: {cached_tokens: u64 | null} | null}
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

from sse_reference import parse

Usage = tuple[int, int, int]


class Odd(Exception):
    """A value is not of the documented shape."""


@dataclass
class EventInfo:
    content: bool = False
    usage: Usage | None = None
    usage_only: bool = False
    error: Any = None
    text: str = ""


@dataclass
class StreamResult:
    out: bytes = b""
    events: int = 0
    content: bool = False
    done: bool = False
    usage: Usage | None = None
    error: Any = None
    text: str = ""
    texts: list[str] = field(default_factory=list)


def _str(v: Any) -> str:
    if v is None:
        return ""
    if not isinstance(v, str):
        raise Odd
    return v


def _uint(v: Any) -> int:
    if v is None:
        return 0
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**64:
        raise Odd
    return v


def _dict(v: Any) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise Odd
    return v


def _func(f: Any) -> str:
    f = _dict(f)
    return _str(f.get("name")) + _str(f.get("arguments"))


def _msg(m: Any) -> tuple[bool, str]:
    """(carries content, text) of a delta or message."""
    m = _dict(m)
    content, refusal = _str(m.get("content")), _str(m.get("refusal"))
    calls = m.get("tool_calls")
    if calls is not None and not isinstance(calls, list):
        raise Odd
    text = content + refusal
    for call in calls or []:
        f = _dict(call).get("function")
        if f is not None:
            text += _func(f)
    fc = m.get("function_call")
    if fc is not None:
        text += _func(fc)
    return bool(content or refusal or calls or fc), text


def _choice(c: Any) -> tuple[bool, str]:
    c = _dict(c)
    content, text = False, ""
    for name in ("delta", "message"):
        if c.get(name) is not None:
            has, t = _msg(c[name])
            content, text = content or has, text + t
    legacy, finish = _str(c.get("text")), _str(c.get("finish_reason"))
    return content or bool(legacy or finish), text + legacy


def _usage(u: Any) -> Usage:
    u = _dict(u)
    details = u.get("prompt_tokens_details")
    cached = 0 if details is None else _uint(_dict(details).get("cached_tokens"))
    return (_uint(u.get("prompt_tokens")), _uint(u.get("completion_tokens")), cached)


def scan_event(data: bytes) -> EventInfo:
    """Raises UnicodeDecodeError or json.JSONDecodeError like the scanner raises."""
    top = json.loads(data.decode("utf-8"))
    if not isinstance(top, dict):
        return EventInfo(content=True)
    if top.get("error") is not None:
        return EventInfo(error=top["error"])
    info = EventInfo()
    if top.get("usage") is not None:
        with contextlib.suppress(Odd):
            info.usage = _usage(top["usage"])
    choices = top.get("choices")
    if choices is not None and not isinstance(choices, list):
        info.content = True
        return info
    for c in choices or []:
        try:
            has, text = _choice(c)
        except Odd:
            info.content = True
            continue
        info.content = info.content or has
        info.text += text
    info.usage_only = info.usage is not None and not choices
    return info


def frame(event: str | None, data: bytes) -> bytes:
    """As python/relay/stream/relay.py re-frames an event."""
    head = b"event: " + event.encode() + b"\n" if event is not None else b""
    return head + b"data: " + data.replace(b"\n", b"\ndata: ") + b"\n\n"


def scan_stream(stream: bytes, strip_usage: bool = False) -> StreamResult:
    """What the scanner must report for ``stream``, whatever its chunking."""
    events, _ = parse(stream)
    r = StreamResult()
    for ev in events:
        if ev.data == b"[DONE]":
            r.done = True
            break
        info = scan_event(ev.data)
        if info.error is not None:
            r.error = info.error
            break
        r.content = r.content or info.content
        r.usage = info.usage or r.usage
        r.text += info.text
        if not (strip_usage and info.usage_only):
            r.out += frame(ev.event, ev.data)
            r.events += 1
    return r
