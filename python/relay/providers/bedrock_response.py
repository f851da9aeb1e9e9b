"""Bedrock Converse answers -> OpenAI chat completions: the JSON response, and the
ConverseStream events (AWS event-stream frames, decoded natively) as ``chat.completion.chunk``
SSE frames. Usage is the provider's own: ``prompt_tokens`` counts every input token
(uncached, cache reads and cache writes), ``cached_tokens`` the cache reads.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from relay.errors import UpstreamProtocolError
from relay.native import EventStreamDecoder, EventStreamMessage, InvalidEventStream
from relay.providers.mapper import EventMapper
from relay.stage import Step
from relay.wire.usage import Usage

Json = dict[str, Any]
_encode = msgspec.json.encode

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}


def finish_reason(stop_reason: Any) -> str:
    """OpenAI's finish_reason for a Converse stopReason."""
    return FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def usage_of(report: Any) -> tuple[Usage, Json] | None:
    """The gateway's usage and OpenAI's usage object from a Converse ``usage``."""
    if not isinstance(report, dict):
        return None
    fresh = _int(report.get("inputTokens"))
    read = _int(report.get("cacheReadInputTokens"))
    written = _int(report.get("cacheWriteInputTokens"))
    completion = _int(report.get("outputTokens"))
    prompt = fresh + read + written
    total = _int(report.get("totalTokens")) or prompt + completion
    usage = Usage(prompt_tokens=prompt, completion_tokens=completion, cached_tokens=read)
    wire: Json = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}
    if read:
        wire["prompt_tokens_details"] = {"cached_tokens": read}
    return usage, wire


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def chat_completion(
    body: bytes, *, ident: str, model: str, provider: str
) -> tuple[bytes, Usage | None, str]:
    """(OpenAI JSON, usage, generated text) from a Converse response body."""
    try:
        answer = msgspec.json.decode(body)
        blocks = answer["output"]["message"]["content"]
    except (msgspec.DecodeError, UnicodeDecodeError, KeyError, TypeError):
        raise UpstreamProtocolError(
            f"provider '{provider}' answered with a body that is not a Converse response"
        ) from None
    texts: list[str] = []
    calls: list[Json] = []
    for block in blocks if isinstance(blocks, list) else ():
        if not isinstance(block, dict):
            continue
        if isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif isinstance(block.get("toolUse"), dict):
            use = block["toolUse"]
            arguments = _encode(use.get("input", {})).decode()
            calls.append(
                {
                    "id": use.get("toolUseId"),
                    "type": "function",
                    "function": {"name": use.get("name"), "arguments": arguments},
                }
            )
    content = "".join(texts)
    message: Json = {"role": "assistant", "content": content or None, "refusal": None}
    if calls:
        message["tool_calls"] = calls
    usage = usage_of(answer.get("usage"))
    completion = {
        "id": ident,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason(answer.get("stopReason")),
            }
        ],
        "usage": usage[1] if usage else None,
    }
    text = content + "".join(c["function"]["name"] + c["function"]["arguments"] for c in calls)
    return _encode(completion), usage[0] if usage else None, text


class ConverseStreamMapper(EventMapper[EventStreamMessage]):
    """ConverseStream events -> ``chat.completion.chunk`` frames, one read at a time.

    messageStart is the role chunk; text and toolUse deltas are content chunks (a toolUse
    block becomes a tool call whose index counts tool blocks); messageStop carries the finish
    reason; metadata carries usage (a usage-only chunk when the client asked for it) and ends
    the stream. An exception event, or a frame that fails its CRC, is the stream's error.
    """

    def __init__(self, provider: str, *, ident: str, model: str, include_usage: bool) -> None:
        super().__init__(provider)
        self._decoder = EventStreamDecoder()
        self._head = (
            b'{"id":'
            + _encode(ident)
            + b',"object":"chat.completion.chunk","created":'
            + str(int(time.time())).encode()
            + b',"model":'
            + _encode(model)
            + b',"choices":'
        )
        self._include_usage = include_usage
        self._tools: dict[int, int] = {}

    def feed(self, chunk: bytes) -> Step:
        """Map one network read (nothing once the stream ended)."""
        step = Step()
        if self._ended:
            return step
        try:
            messages = self._decoder.feed(chunk)
            failure = None
        except InvalidEventStream as exc:
            messages, failure = list(exc.messages), str(exc)
        frames: list[bytes] = []
        self.map_events(messages, step, frames)
        if failure is not None and step.error is None:
            step.error = _encode(
                {
                    "message": f"provider '{self._provider}' sent a corrupt event stream: {failure}",
                    "type": "upstream_bad_response",
                }
            )
            self._ended = True
        step.out = b"".join(frames)
        return step

    def on_event(self, message: EventStreamMessage, step: Step, frames: list[bytes]) -> bool:
        headers: dict[str, Any] = message.headers  # values of any wire type
        payload = message.payload
        kind = headers.get(":message-type")
        if kind != "event":
            name = headers.get(":exception-type") or headers.get(":error-code") or "error"
            step.error = _error_json(payload, str(name), headers.get(":error-message"))
            return True
        event = headers.get(":event-type")
        try:
            data = msgspec.json.decode(payload) if payload else {}
        except msgspec.DecodeError:
            step.error = _encode(
                {
                    "message": f"provider '{self._provider}' sent a {event} event that is not JSON",
                    "type": "upstream_bad_response",
                }
            )
            return True
        if not isinstance(data, dict):
            data = {}
        if event == "messageStart":
            frames.append(self._chunk({"role": "assistant", "content": ""}))
        elif event == "contentBlockStart":
            use = (data.get("start") or {}).get("toolUse")
            if isinstance(use, dict):
                index = self._tools.setdefault(data.get("contentBlockIndex", 0), len(self._tools))
                name = use.get("name") or ""
                call = {
                    "index": index,
                    "id": use.get("toolUseId"),
                    "type": "function",
                    "function": {"name": name, "arguments": ""},
                }
                self._content(step, frames, {"tool_calls": [call]}, name)
        elif event == "contentBlockDelta":
            delta = data.get("delta") or {}
            if isinstance(delta.get("text"), str):
                self._content(step, frames, {"content": delta["text"]}, delta["text"])
            elif isinstance(delta.get("toolUse"), dict):
                piece = delta["toolUse"].get("input") or ""
                block = data.get("contentBlockIndex", 0)
                index = self._tools.setdefault(block, len(self._tools))
                call = {"index": index, "function": {"arguments": piece}}
                self._content(step, frames, {"tool_calls": [call]}, piece)
        elif event == "messageStop":
            step.content = True
            frames.append(self._chunk({}, finish_reason(data.get("stopReason"))))
        elif event == "metadata":
            usage = usage_of(data.get("usage"))
            if usage is not None:
                step.usage = (
                    usage[0].prompt_tokens,
                    usage[0].completion_tokens,
                    usage[0].cached_tokens,
                )
                if self._include_usage:
                    frames.append(
                        b"data: " + self._head + b'[],"usage":' + _encode(usage[1]) + b"}\n\n"
                    )
            step.done = True
            return True
        # contentBlockStop and events this version does not know carry nothing for the client.
        return False

    def _content(self, step: Step, frames: list[bytes], delta: Json, text: str) -> None:
        step.content = True
        step.text += text
        frames.append(self._chunk(delta))

    def _chunk(self, delta: Json, finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return b"data: " + self._head + _encode([choice]) + b"}\n\n"


def _error_json(payload: bytes, name: str, message: Any) -> bytes:
    text = message if isinstance(message, str) else None
    try:
        decoded = msgspec.json.decode(payload) if payload else {}
    except msgspec.DecodeError:
        decoded = {}
    if isinstance(decoded, dict) and text is None:
        found = decoded.get("message") or decoded.get("Message")
        text = found if isinstance(found, str) else None
    return _encode({"message": text or f"Bedrock reported {name}", "type": name})
