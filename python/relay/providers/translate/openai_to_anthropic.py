"""An OpenAI chat client served by an Anthropic provider: the chat request as a Messages
request, the Message answer as a chat completion, and the Messages stream as chat chunks.

Request rules Anthropic imposes and the chat format does not: system and developer messages
become the top-level ``system``; tool results travel as ``tool_result`` blocks of a user turn,
before any text of that turn; consecutive messages of one role are merged into one turn, so
user and assistant turns alternate; ``max_tokens`` is required (the provider's
``max_tokens_default`` when the client sets none).
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from relay.errors import InvalidRequest, UpstreamProtocolError
from relay.exchange import Attempt, Exchange, Usage
from relay.native import SseEvent
from relay.providers.params import unsupported_error
from relay.providers.sse import SseMapper
from relay.providers.translate.common import (
    EFFORTS,
    THINKING_BUDGETS,
    encode,
    finish_reason,
    image_source,
    json_object,
    text_of,
)
from relay.stage import Step
from relay.wire.anthropic import (
    EVENT_DECODER,
    MESSAGE_DECODER,
    MessageProbe,
    usage_from_wire,
)
from relay.wire.decode import decode_json

# Chat parameters this translation takes (each mapped below); every other one is a 400 naming
# it, unless its value asks for nothing (_NOTHING) or the model sets drop_unsupported_params.
# ``user``/``safety_identifier`` become metadata.user_id; ``metadata`` only attributes (the
# gateway records it). ``top_k`` and ``thinking`` are Anthropic's own, passed as they are.
HANDLED = frozenset(
    {
        "model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens",
        "temperature", "top_p", "stop", "tools", "tool_choice", "parallel_tool_calls",
        "response_format", "n", "reasoning_effort", "service_tier", "user",
        "safety_identifier", "metadata", "top_k", "thinking",
    }
)  # fmt: skip
# Values of other parameters that ask for what the Messages API does anyway.
_NOTHING: dict[str, tuple[Any, ...]] = {
    "logprobs": (False,),
    "top_logprobs": (0,),
    "presence_penalty": (0,),
    "frequency_penalty": (0,),
    "logit_bias": ({},),
    "store": (False,),
    "modalities": (["text"],),
}
# OpenAI service_tier -> Anthropic's (standard capacity only, or priority when available).
SERVICE_TIERS = {"auto": "auto", "default": "standard_only"}
JSON_OBJECT_INSTRUCTION = "Respond with a single JSON object and nothing else."


# -- request -----------------------------------------------------------------------------------


def request(
    ex: Exchange, attempt: Attempt, max_tokens_default: int, provider: str = "anthropic"
) -> bytes:
    """The Messages request for the client's chat request."""
    chat: dict[str, Any] = decode_json(ex.body)
    deployment = attempt.deployment
    drop = deployment.drop_unsupported_params
    for name in sorted(chat.keys() - HANDLED):
        value = chat[name]
        if value is not None and value not in _NOTHING.get(name, ()) and not drop:
            raise unsupported_error(name, provider, "anthropic", deployment.public_model)
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(chat["messages"]):
        role, content = message.get("role"), message.get("content")
        where = f"messages[{i}]"
        if role in ("system", "developer"):
            if text := text_of(content):
                system.append(text)
            continue
        if role == "user":
            _add(turns, "user", _user_blocks(content, where))
        elif role == "assistant":
            _add(turns, "assistant", _assistant_blocks(message, where))
        elif role in ("tool", "function"):
            call_id = message.get("tool_call_id") or message.get("name") or ""
            result = {"type": "tool_result", "tool_use_id": call_id, "content": text_of(content)}
            _add(turns, "user", [result])
        else:
            raise InvalidRequest(f"{where}.role: unknown role {role!r}", param=f"{where}.role")
    if not turns:
        raise InvalidRequest(
            "messages: needs at least one user or assistant message", param="messages"
        )
    n = chat.get("n")
    if isinstance(n, int) and n > 1 and not deployment.drop_unsupported_params:
        raise unsupported_error("n", provider, "anthropic", deployment.public_model)
    out: dict[str, Any] = {"model": attempt.deployment.upstream_model}
    limit = chat.get("max_completion_tokens") or chat.get("max_tokens")
    out["max_tokens"] = limit if isinstance(limit, int) else max_tokens_default
    _thinking(chat, out, isinstance(limit, int))
    _response_format(chat.get("response_format"), system, out)
    if system:
        out["system"] = "\n\n".join(system)
    out["messages"] = turns
    for name in ("temperature", "top_p", "top_k"):
        if chat.get(name) is not None:
            out[name] = chat[name]
    stop = chat.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    user = chat.get("safety_identifier") or chat.get("user")
    if isinstance(user, str):
        out["metadata"] = {"user_id": user}
    tier = chat.get("service_tier")
    if tier is not None:
        if isinstance(tier, str) and tier in SERVICE_TIERS:
            out["service_tier"] = SERVICE_TIERS[tier]
        elif not drop:
            raise unsupported_error(
                "service_tier", provider, "anthropic", deployment.public_model, tier
            )
    _tools(chat, out)
    if ex.stream:
        out["stream"] = True
    return encode(out)


def _thinking(chat: dict[str, Any], out: dict[str, Any], limited: bool) -> None:
    """``reasoning_effort`` as extended thinking with a budget (``thinking`` as sent wins).

    OpenAI counts reasoning tokens within ``max_completion_tokens``, as Anthropic counts the
    thinking budget within ``max_tokens``: with a client's limit the budget fits under it;
    without one the budget is added to ``max_tokens_default``, which stays for the answer."""
    if chat.get("thinking") is not None:
        out["thinking"] = chat["thinking"]
        return
    effort = chat.get("reasoning_effort")
    if effort is None or effort == "none":
        return
    if not isinstance(effort, str) or effort not in THINKING_BUDGETS:
        raise InvalidRequest(
            f"reasoning_effort: expected one of {', '.join(EFFORTS)}, got {str(effort)[:40]!r}",
            param="reasoning_effort",
        )
    budget = THINKING_BUDGETS[effort]
    if not limited:
        out["max_tokens"] += budget
    elif out["max_tokens"] <= THINKING_BUDGETS["minimal"]:
        raise InvalidRequest(
            f"reasoning_effort: this model's provider thinks with a budget of at least "
            f"{THINKING_BUDGETS['minimal']} tokens, counted within max_completion_tokens "
            f"({out['max_tokens']}); raise it, or leave it unset",
            param="reasoning_effort",
        )
    else:
        budget = min(budget, out["max_tokens"] - 1)
    out["thinking"] = {"type": "enabled", "budget_tokens": budget}


def _add(turns: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    """Append to the last turn when it has the same role, else start a turn."""
    if not blocks:
        return
    if turns and turns[-1]["role"] == role:
        merged = turns[-1]["content"] + blocks
        if role == "user":  # tool results first, then the rest, each in order
            merged.sort(key=lambda block: block.get("type") != "tool_result")
        turns[-1]["content"] = merged
    else:
        turns.append({"role": role, "content": blocks})


def _user_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        return []
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        here = f"{where}.content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if part.get("text"):
                blocks.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str):
                raise InvalidRequest(f"{here}.image_url.url: expected a string", param=here)
            blocks.append({"type": "image", "source": image_source(url, f"{here}.image_url.url")})
        else:
            raise InvalidRequest(
                f"{here}.type: {kind!r} is not supported by this model's provider", param=here
            )
    return blocks


def _assistant_blocks(message: dict[str, Any], where: str) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if text := text_of(message.get("content")):
        blocks.append({"type": "text", "text": text})
    for j, call in enumerate(message.get("tool_calls") or ()):
        function = call.get("function") or {}
        here = f"{where}.tool_calls[{j}].function.arguments"
        blocks.append(
            {
                "type": "tool_use",
                "id": call.get("id") or f"call_{j}",
                "name": function.get("name") or "",
                "input": json_object(function.get("arguments") or "", here),
            }
        )
    return blocks


def _response_format(fmt: Any, system: list[str], out: dict[str, Any]) -> None:
    if not isinstance(fmt, dict):
        return
    kind = fmt.get("type")
    if kind == "json_object":
        system.append(JSON_OBJECT_INSTRUCTION)
    elif kind == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema") or {"type": "object"}
        out["output_config"] = {"format": {"type": "json_schema", "schema": schema}}


def _tools(chat: dict[str, Any], out: dict[str, Any]) -> None:
    tools = chat.get("tools")
    if tools:
        out["tools"] = [
            {
                "name": function.get("name", ""),
                **({"description": function["description"]} if "description" in function else {}),
                "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
            }
            for function in (tool.get("function") or {} for tool in tools)
        ]
    choice = chat.get("tool_choice")
    mapped: dict[str, Any] | None = None
    if choice == "auto":
        mapped = {"type": "auto"}
    elif choice == "required":
        mapped = {"type": "any"}
    elif choice == "none":
        mapped = {"type": "none"}
    elif isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        mapped = {"type": "tool", "name": name}
    if chat.get("parallel_tool_calls") is False and tools:
        mapped = mapped or {"type": "auto"}
        if mapped["type"] != "none":
            mapped["disable_parallel_tool_use"] = True
    if mapped is not None and (tools or mapped["type"] == "none"):
        out["tool_choice"] = mapped


# -- JSON answer ----------------------------------------------------------------------------


def response(provider: str, attempt: Attempt, body: bytes) -> bytes:
    """The chat completion for a Message; fills ``attempt.usage`` and ``attempt.text``."""
    try:
        message = MESSAGE_DECODER.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        raise UpstreamProtocolError(
            f"provider '{provider}' answered with a body that is not an Anthropic message"
        ) from None
    usage = usage_from_wire(message.usage) if message.usage is not None else None
    attempt.usage = usage
    text, calls = _content(message)
    generated = (text or "") + "".join(
        c["function"]["name"] + c["function"]["arguments"] for c in calls
    )
    attempt.text = lambda: generated
    reply: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
    if calls:
        reply["tool_calls"] = calls
    completion: dict[str, Any] = {
        "id": message.id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": message.model or attempt.upstream_model,
        "choices": [
            {
                "index": 0,
                "message": reply,
                "logprobs": None,
                "finish_reason": finish_reason(message.stop_reason) or "stop",
            }
        ],
    }
    if usage is not None:
        completion["usage"] = usage_json(usage)
    return encode(completion)


def _content(message: MessageProbe) -> tuple[str | None, list[dict[str, Any]]]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in message.content:
        if block.type == "text" and block.text:
            texts.append(block.text)
        elif block.type == "tool_use":
            arguments = encode(block.input if block.input is not None else {}).decode()
            calls.append(
                {
                    "id": block.id or f"call_{len(calls)}",
                    "type": "function",
                    "function": {"name": block.name or "", "arguments": arguments},
                }
            )
    return ("".join(texts) if texts else None), calls


def usage_json(usage: Usage) -> dict[str, Any]:
    """OpenAI's ``usage`` object: every prompt token once, cache reads as cached tokens."""
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    }


# -- stream ---------------------------------------------------------------------------------


class ChunkStream(SseMapper):
    """A Messages stream as chat completion chunks, event by event.

    Text deltas become ``content`` deltas; each ``tool_use`` block becomes a tool call (its
    index counts tool calls, not content blocks) whose ``input_json_delta`` pieces are the
    ``arguments``; ``message_delta`` gives the finish chunk; ``message_stop`` ends the stream
    (the dialect writes ``[DONE]``) after the usage chunk if the client asked for it.
    """

    expected = "a Messages stream event"

    def __init__(self, provider: str, attempt: Attempt, *, include_usage: bool) -> None:
        super().__init__(provider)
        self._attempt = attempt
        self._include_usage = include_usage
        self._tools: dict[int, int] = {}  # content block index -> tool call index
        self._head = self._base = b""
        self._start(MessageProbe(id="msg_relay", model=attempt.upstream_model))

    def on_event(self, event: SseEvent, step: Step, out: list[bytes]) -> bool:
        if event.event == "ping":
            return False
        data = EVENT_DECODER.decode(event.data)
        kind = data.type
        if kind == "content_block_delta" and data.delta is not None:
            delta = data.delta
            if delta.text:
                out.append(self._delta(b'{"content":' + encode(delta.text) + b"}"))
                step.text += delta.text
                step.content = True
            elif delta.partial_json and data.index in self._tools:
                piece = delta.partial_json
                function = b'"function":{"arguments":' + encode(piece) + b"}"
                out.append(self._tool_delta(self._tools[data.index], function))
                step.text += piece
                step.content = True
        elif kind == "content_block_start" and data.content_block is not None:
            block = data.content_block
            if block.type == "tool_use" and data.index is not None:
                call = len(self._tools)
                self._tools[data.index] = call
                name = block.name or ""
                head = (
                    b'"id":'
                    + encode(block.id or f"call_{call}")
                    + b',"type":"function","function":{"name":'
                    + encode(name)
                    + b',"arguments":""}'
                )
                out.append(self._tool_delta(call, head))
                step.text += name
                step.content = True
            elif block.type == "text" and block.text:
                out.append(self._delta(b'{"content":' + encode(block.text) + b"}"))
                step.text += block.text
                step.content = True
        elif kind == "message_start" and data.message is not None:
            out.append(self._start(data.message))
        elif kind == "message_delta":
            if data.usage is not None:
                self._usage = usage_from_wire(data.usage, self._usage)
            stop = data.delta.stop_reason if data.delta is not None else None
            if stop is not None:
                self._attempt.stop_reason = finish_reason(stop)
                finish = encode(finish_reason(stop))
                out.append(
                    self._head + b'{},"logprobs":null,"finish_reason":' + finish + b"}]}\n\n"
                )
                step.content = True
        elif kind == "message_stop":
            if self._include_usage and self._usage is not None:
                out.append(self._usage_chunk(self._usage))
            step.done = True
            return True
        elif kind == "error":
            step.error = bytes(data.error) or b"{}"
            return True
        return False

    def _start(self, message: MessageProbe) -> bytes:
        model = message.model or self._attempt.upstream_model
        self._head = (
            b'data: {"id":'
            + encode(message.id)
            + b',"object":"chat.completion.chunk","created":'
            + str(int(time.time())).encode()
            + b',"model":'
            + encode(model)
            + b',"choices":[{"index":0,"delta":'
        )
        self._base = self._head[len(b"data: ") : self._head.index(b',"choices"')]
        if message.usage is not None:
            self._usage = usage_from_wire(message.usage)
        return self._delta(b'{"role":"assistant","content":""}')

    def _delta(self, delta: bytes) -> bytes:
        return self._head + delta + b',"logprobs":null,"finish_reason":null}]}\n\n'

    def _tool_delta(self, call: int, fields: bytes) -> bytes:
        """A ``tool_calls`` delta of one call: its index, then ``fields`` (raw JSON members)."""
        return self._delta(
            b'{"tool_calls":[{"index":' + str(call).encode() + b"," + fields + b"}]}"
        )

    def _usage_chunk(self, usage: Usage) -> bytes:
        return (
            b"data: "
            + self._base
            + b',"choices":[],"usage":'
            + encode(usage_json(usage))
            + b"}\n\n"
        )
