"""A recorded answer in the other shape: a JSON answer from a stream's events, and the events
of a stream from a JSON answer, for chat, legacy completions and Anthropic's Messages.

Only answers the cache keeps are converted: one choice, no refusal; tool calls when
``cache.cache_tool_calls``. What a stream sends that a JSON answer cannot hold (pings, the
pieces of the text) is merged; what a JSON answer holds is sent as one piece per block.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec

from relay.exchange import Endpoint
from relay.wire.sse import frame

_encode = msgspec.json.encode
_decode = msgspec.json.decode
Json = dict[str, Any]


def events_of(blob: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(event type, data) of each frame of ``blob`` (type ``b""`` when the frame names none)."""
    for raw in blob.split(b"\n\n"):
        if not raw:
            continue
        kind = b""
        data: list[bytes] = []
        for line in raw.split(b"\n"):
            if line.startswith(b"data:"):
                data.append(line[6:] if line[5:6] == b" " else line[5:])
            elif line.startswith(b"event:"):
                kind = line[6:].strip()
        if data:
            yield kind, b"\n".join(data)


def usage_json(endpoint: Endpoint, usage: tuple[int, int, int]) -> Json:
    """The answer's usage in the endpoint's shape."""
    prompt, completion, cached = usage
    if endpoint is Endpoint.MESSAGES:
        return {"input_tokens": prompt - cached, "output_tokens": completion}
    out: Json = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if cached:
        out["prompt_tokens_details"] = {"cached_tokens": cached}
    return out


# -- a JSON answer from a stream's events ------------------------------------------------------
def assemble(
    endpoint: Endpoint, blob: bytes, answer_id: str, created: int, usage: tuple[int, int, int]
) -> bytes:
    """The JSON answer the recorded stream ``blob`` amounts to."""
    if endpoint is Endpoint.MESSAGES:
        return _encode(_assemble_message(blob, answer_id))
    return _encode(_assemble_openai(endpoint, blob, answer_id, created, usage))


def _assemble_openai(
    endpoint: Endpoint, blob: bytes, answer_id: str, created: int, usage: tuple[int, int, int]
) -> Json:
    chat = endpoint is Endpoint.CHAT
    text: list[str] = []
    calls: dict[int, Json] = {}
    finish = None
    model = ""
    fingerprint = None
    for _, data in events_of(blob):
        chunk = _decode(data)
        model = chunk.get("model") or model
        fingerprint = chunk.get("system_fingerprint") or fingerprint
        for choice in chunk.get("choices") or ():
            finish = choice.get("finish_reason") or finish
            if not chat:
                text.append(choice.get("text") or "")
                continue
            delta = choice.get("delta") or {}
            text.append(delta.get("content") or "")
            for call in delta.get("tool_calls") or ():
                _merge_call(calls, call)
    common: Json = {"id": answer_id, "created": created, "model": model}
    if chat:
        message: Json = {"role": "assistant", "content": "".join(text) or None, "refusal": None}
        if calls:
            message["tool_calls"] = [calls[i] for i in sorted(calls)]
        first: Json = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
        answer: Json = {"object": "chat.completion", **common, "choices": [first]}
        if fingerprint:
            answer["system_fingerprint"] = fingerprint
    else:
        first = {"text": "".join(text), "index": 0, "logprobs": None, "finish_reason": finish}
        answer = {"object": "text_completion", **common, "choices": [first]}
    answer["usage"] = usage_json(endpoint, usage)
    return answer


def _merge_call(calls: dict[int, Json], delta: Json) -> None:
    index = delta.get("index", 0)
    call = calls.get(index)
    function = delta.get("function") or {}
    if call is None:
        calls[index] = {
            "id": delta.get("id"),
            "type": delta.get("type") or "function",
            "function": {
                "name": function.get("name"),
                "arguments": function.get("arguments") or "",
            },
        }
        return
    call["function"]["arguments"] += function.get("arguments") or ""


def _assemble_message(blob: bytes, answer_id: str) -> Json:
    message: Json = {}
    blocks: dict[int, Json] = {}
    partial: dict[int, list[str]] = {}
    for _, data in events_of(blob):
        event = _decode(data)
        kind = event.get("type")
        if kind == "message_start":
            message = dict(event.get("message") or {})
        elif kind == "content_block_start":
            index = event.get("index", 0)
            blocks[index] = dict(event.get("content_block") or {})
        elif kind == "content_block_delta":
            index = event.get("index", 0)
            block = blocks.setdefault(index, {"type": "text", "text": ""})
            delta = event.get("delta") or {}
            dtype = delta.get("type")
            if dtype == "text_delta":
                block["text"] = block.get("text", "") + delta.get("text", "")
            elif dtype == "input_json_delta":
                partial.setdefault(index, []).append(delta.get("partial_json", ""))
            elif dtype == "thinking_delta":
                block["thinking"] = block.get("thinking", "") + delta.get("thinking", "")
            elif dtype == "signature_delta":
                block["signature"] = block.get("signature", "") + delta.get("signature", "")
        elif kind == "message_delta":
            for name, value in (event.get("delta") or {}).items():
                message[name] = value
            usage = dict(message.get("usage") or {})
            usage.update(event.get("usage") or {})
            message["usage"] = usage
    for index, pieces in partial.items():
        text = "".join(pieces)
        blocks[index]["input"] = _decode(text) if text else {}
    message["id"] = answer_id
    message["content"] = [blocks[i] for i in sorted(blocks)]
    return message


# -- a stream's events from a JSON answer ------------------------------------------------------
def explode(endpoint: Endpoint, body: bytes) -> bytes:
    """The events of a stream that sends the JSON answer ``body`` (without the dialect's end
    frames and without usage-only chunks)."""
    answer = _decode(body)
    if endpoint is Endpoint.MESSAGES:
        return _explode_message(answer)
    return _explode_openai(endpoint, answer)


def _data(payload: Json) -> bytes:
    return b"data: " + _encode(payload) + b"\n\n"


def _explode_openai(endpoint: Endpoint, answer: Json) -> bytes:
    chat = endpoint is Endpoint.CHAT
    head: Json = {
        "id": answer.get("id"),
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": answer.get("created"),
        "model": answer.get("model"),
    }
    if answer.get("system_fingerprint"):
        head["system_fingerprint"] = answer["system_fingerprint"]
    choice = (answer.get("choices") or [{}])[0]
    finish = choice.get("finish_reason")
    if not chat:
        pieces = [
            {"text": choice.get("text") or "", "index": 0, "logprobs": None, "finish_reason": None}
        ]
        last = {"text": "", "index": 0, "logprobs": None, "finish_reason": finish}
        return b"".join(_data({**head, "choices": [c]}) for c in (*pieces, last))
    message = choice.get("message") or {}
    out = [
        _data({**head, "choices": [_delta({"role": "assistant", "content": ""})]}),
    ]
    if message.get("content"):
        out.append(_data({**head, "choices": [_delta({"content": message["content"]})]}))
    for i, call in enumerate(message.get("tool_calls") or ()):
        piece = {"index": i, **call}
        out.append(_data({**head, "choices": [_delta({"tool_calls": [piece]})]}))
    out.append(_data({**head, "choices": [_delta({}, finish)]}))
    return b"".join(out)


def _delta(delta: Json, finish: str | None = None) -> Json:
    return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}


def _explode_message(answer: Json) -> bytes:
    usage = answer.get("usage") or {}
    start = {
        **{k: v for k, v in answer.items() if k not in ("content", "stop_reason", "usage")},
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**usage, "output_tokens": 1},
    }
    out = [frame(b"message_start", _encode({"type": "message_start", "message": start}))]
    for index, block in enumerate(answer.get("content") or ()):
        kind = block.get("type")
        opened, delta = block, None
        if kind == "text":
            opened = {**block, "text": ""}
            delta = {"type": "text_delta", "text": block.get("text", "")}
        elif kind == "tool_use":
            opened = {**block, "input": {}}
            delta = {
                "type": "input_json_delta",
                "partial_json": _encode(block.get("input")).decode(),
            }
        elif kind == "thinking":
            opened = {**block, "thinking": "", "signature": ""}
            delta = {"type": "thinking_delta", "thinking": block.get("thinking", "")}
        out.append(
            frame(
                b"content_block_start",
                _encode({"type": "content_block_start", "index": index, "content_block": opened}),
            )
        )
        if delta is not None:
            out.append(
                frame(
                    b"content_block_delta",
                    _encode({"type": "content_block_delta", "index": index, "delta": delta}),
                )
            )
        if kind == "thinking" and block.get("signature"):
            sig = {"type": "signature_delta", "signature": block["signature"]}
            out.append(
                frame(
                    b"content_block_delta",
                    _encode({"type": "content_block_delta", "index": index, "delta": sig}),
                )
            )
        out.append(
            frame(b"content_block_stop", _encode({"type": "content_block_stop", "index": index}))
        )
    end = {
        "type": "message_delta",
        "delta": {
            "stop_reason": answer.get("stop_reason"),
            "stop_sequence": answer.get("stop_sequence"),
        },
        "usage": {"output_tokens": usage.get("output_tokens", 0)},
    }
    out.append(frame(b"message_delta", _encode(end)))
    return b"".join(out)
