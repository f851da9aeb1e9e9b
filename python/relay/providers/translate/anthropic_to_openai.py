"""An Anthropic Messages client served by an OpenAI-shaped provider: the Messages request as a
chat request, the chat completion as a Message, chat chunks as a Messages stream, and
``count_tokens`` counted locally (chat APIs have no counting endpoint)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from typing import Any

import msgspec
from msgspec import Struct

from relay.errors import InvalidRequest, UpstreamProtocolError
from relay.exchange import Attempt, Deployment, Exchange, Usage
from relay.native import SseEvent, count_off_loop, counter_for
from relay.providers.params import NO_RULES, ParamRules, apply_to_request, unsupported_error
from relay.providers.sse import SseMapper
from relay.providers.translate.common import (
    EFFORTS,
    effort_for_budget,
    encode,
    image_url,
    json_object,
    stop_reason,
    text_of,
)
from relay.stage import Step
from relay.wire.anthropic import CountTokensRequest, MessagesRequest
from relay.wire.openai import (
    ChoiceProbe,
    DeltaProbe,
    FunctionProbe,
    ToolCallProbe,
    WireUsage,
    usage_from_wire,
)
from relay.wire.sse import frame

_JSON = {"content-type": "application/json"}
_MEMBERS = msgspec.json.Decoder(dict[str, msgspec.Raw])
# Messages parameters this translation takes; every other one is a 400 naming it unless the
# model sets drop_unsupported_params. ``cache_control`` (here and on blocks) is dropped:
# OpenAI-shaped providers cache prompt prefixes on their own, if at all.
HANDLED = frozenset(
    {
        "model", "messages", "max_tokens", "system", "stream", "temperature", "top_p",
        "stop_sequences", "tools", "tool_choice", "metadata", "output_config", "thinking",
        "service_tier", "top_k", "cache_control",
    }
)  # fmt: skip
_OUTPUT_CONFIG = frozenset({"format", "effort"})
# Anthropic service_tier -> OpenAI's.
SERVICE_TIERS = {"auto": "auto", "standard_only": "default"}


# -- request -----------------------------------------------------------------------------------


def request(
    ex: Exchange,
    attempt: Attempt,
    rules: ParamRules = NO_RULES,
    *,
    provider: str = "",
    kind: str = "openai",
) -> bytes:
    """The chat request for the client's Messages request (``ex.request``), with the
    provider's parameter ``rules`` applied to it (as to a chat client's)."""
    deployment = attempt.deployment
    out = chat_request(ex.request, deployment.upstream_model, ex.stream)
    _parameters(_MEMBERS.decode(ex.body), out, rules, deployment, provider or kind, kind)
    if rules:
        apply_to_request(
            out,
            rules,
            drop=deployment.drop_unsupported_params,
            provider=provider or kind,
            kind=kind,
            model=deployment.public_model,
        )
    return encode(out)


def _parameters(
    members: dict[str, msgspec.Raw],
    out: dict[str, Any],
    rules: ParamRules,
    deployment: Deployment,
    provider: str,
    kind: str,
) -> None:
    """Refuse what chat cannot express; map ``thinking``, ``output_config.effort``,
    ``service_tier``, and ``top_k`` where the vendor takes it."""
    drop = deployment.drop_unsupported_params

    def refuse(name: str, *value: Any) -> None:
        if not drop:
            raise unsupported_error(name, provider, kind, deployment.public_model, *value)

    for name in sorted(members.keys() - HANDLED):
        if bytes(members[name]).strip() != b"null":
            refuse(name)
    config = _value(members, "output_config")
    if isinstance(config, dict):
        for name in sorted(config.keys() - _OUTPUT_CONFIG):
            refuse(f"output_config.{name}")
    effort = config.get("effort") if isinstance(config, dict) else None
    if effort is not None and (not isinstance(effort, str) or effort not in EFFORTS):
        raise InvalidRequest(
            f"output_config.effort: expected one of {', '.join(EFFORTS[2:])}, "
            f"got {str(effort)[:40]!r}",
            param="output_config.effort",
        )
    if effort is None:
        effort = _effort(_value(members, "thinking"))
    if effort is not None:
        out["reasoning_effort"] = effort
    tier = _value(members, "service_tier")
    if tier is not None:
        if isinstance(tier, str) and tier in SERVICE_TIERS:
            out["service_tier"] = SERVICE_TIERS[tier]
        else:
            refuse("service_tier", tier)
    top_k = _value(members, "top_k")
    if top_k is not None:
        if "top_k" in rules.takes:
            out["top_k"] = top_k
        else:
            refuse("top_k")


def _value(members: dict[str, msgspec.Raw], name: str) -> Any:
    raw = members.get(name)
    return None if raw is None else msgspec.json.decode(raw)


def _effort(thinking: Any) -> str | None:
    """``reasoning_effort`` for Anthropic's ``thinking`` (None: the provider's default)."""
    if thinking is None:
        return None
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or isinstance(budget, bool):
            raise InvalidRequest(
                "thinking.budget_tokens: expected an integer", param="thinking.budget_tokens"
            )
        return effort_for_budget(budget)
    if kind in ("disabled", "adaptive"):
        return None  # no reasoning asked for, or as much as the model decides
    raise InvalidRequest(
        f"thinking.type: expected enabled, disabled or adaptive, got {str(kind)[:40]!r}",
        param="thinking.type",
    )


def chat_request(
    req: MessagesRequest | CountTokensRequest, model: str, stream: bool
) -> dict[str, Any]:
    """The chat request as a dict (``count_tokens`` counts it without sending)."""
    messages: list[dict[str, Any]] = []
    if req.system:
        messages.append({"role": "system", "content": text_of(req.system)})
    for i, message in enumerate(req.messages):
        where = f"messages[{i}].content"
        content = message.content
        if isinstance(content, str):
            messages.append({"role": message.role, "content": content})
        elif message.role == "user":
            messages.extend(_user(content, where))
        else:
            messages.append(_assistant(content, where))
    out: dict[str, Any] = {"model": model, "messages": messages}
    if isinstance(req, MessagesRequest):
        out["max_tokens"] = req.max_tokens
        for name in ("temperature", "top_p"):
            value = getattr(req, name)
            if value is not None:
                out[name] = value
        if req.stop_sequences:
            out["stop"] = req.stop_sequences
        if req.metadata and isinstance(req.metadata.get("user_id"), str):
            out["user"] = req.metadata["user_id"]
        if stream:
            out["stream"] = True
            out["stream_options"] = {"include_usage": True}
    fmt = (req.output_config or {}).get("format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = {"name": "output", "schema": fmt.get("schema") or {}}
        out["response_format"] = {"type": "json_schema", "json_schema": schema}
    _tools(req, out)
    return out


def _user(blocks: list[dict[str, Any]], where: str) -> list[dict[str, Any]]:
    """A user turn: its tool results as ``tool`` messages first, then one user message."""
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(blocks):
        kind = block.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": block.get("text", "")})
        elif kind == "image":
            url = image_url(block.get("source"), f"{where}[{j}].source")
            parts.append({"type": "image_url", "image_url": {"url": url}})
        elif kind == "tool_result":
            text = text_of(block.get("content"))
            if block.get("is_error"):
                text = f"Error: {text}"
            results.append(
                {"role": "tool", "tool_call_id": block.get("tool_use_id", ""), "content": text}
            )
        else:
            here = f"{where}[{j}].type"
            raise InvalidRequest(
                f"{here}: {kind!r} is not supported by this model's provider", param=here
            )
    if parts:
        all_text = all(part["type"] == "text" for part in parts)
        content: Any = "".join(part["text"] for part in parts) if all_text else parts
        results.append({"role": "user", "content": content})
    return results


def _assistant(blocks: list[dict[str, Any]], where: str) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(blocks):
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind == "tool_use":
            arguments = encode(block.get("input") or {}).decode()
            calls.append(
                {
                    "id": block.get("id", f"call_{j}"),
                    "type": "function",
                    "function": {"name": block.get("name", ""), "arguments": arguments},
                }
            )
        elif kind not in ("thinking", "redacted_thinking"):
            here = f"{where}[{j}].type"
            raise InvalidRequest(
                f"{here}: {kind!r} is not supported by this model's provider", param=here
            )
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    return message


def _tools(req: MessagesRequest | CountTokensRequest, out: dict[str, Any]) -> None:
    if req.tools:
        out["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": tool.get("name", ""),
                    **({"description": tool["description"]} if "description" in tool else {}),
                    "parameters": tool.get("input_schema") or {"type": "object"},
                },
            }
            for tool in req.tools
        ]
    choice = req.tool_choice
    if not choice:
        return
    kind = choice.get("type")
    if kind == "auto":
        out["tool_choice"] = "auto"
    elif kind == "any":
        out["tool_choice"] = "required"
    elif kind == "none":
        out["tool_choice"] = "none"
    elif kind == "tool":
        out["tool_choice"] = {"type": "function", "function": {"name": choice.get("name", "")}}
    if choice.get("disable_parallel_tool_use") and req.tools:
        out["parallel_tool_calls"] = False


# -- count_tokens, locally ------------------------------------------------------------------


class LocalResponse:
    """An answer made by the gateway itself, shaped like an upstream one."""

    __slots__ = ("_body", "headers", "status")

    def __init__(self, body: bytes) -> None:
        self.status = 200
        self.headers: Mapping[str, str] = _JSON
        self._body = body

    async def read(self) -> bytes:
        return self._body

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        yield self._body

    def close(self) -> None:
        pass

    def release(self) -> None:
        pass


async def count_tokens(ex: Exchange, attempt: Attempt) -> LocalResponse:
    """``{"input_tokens": N}`` counted with the model's tokenizer (tools included), off the
    event loop when the request is large."""
    body = encode(chat_request(ex.request, attempt.deployment.upstream_model, stream=False))
    tokens = await prompt_tokens(attempt, body)
    return LocalResponse(b'{"input_tokens":' + str(tokens).encode() + b"}")


async def prompt_tokens(attempt: Attempt, body: bytes) -> int:
    """Prompt tokens of a chat request ``body`` with the attempt's tokenizer (off the loop when
    large): ``count_tokens``, and the ``message_start`` of a translated stream."""
    counter = counter_for(attempt.deployment.encoding)
    return await count_off_loop(len(body), counter.count_chat, body)


# -- JSON answer ----------------------------------------------------------------------------


class _Completion(Struct, frozen=True):
    id: str = ""
    model: str = ""
    choices: list[ChoiceProbe] = []
    usage: WireUsage | None = None
    error: msgspec.Raw = msgspec.Raw()  # empty when absent


_COMPLETION = msgspec.json.Decoder(_Completion)


def anthropic_usage(usage: Usage) -> dict[str, int]:
    """Anthropic's ``usage``: ``input_tokens`` without the cache reads and writes."""
    return {
        "input_tokens": usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens,
        "output_tokens": usage.completion_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
    }


def response(provider: str, attempt: Attempt, body: bytes) -> bytes:
    """The Message for a chat completion; fills ``attempt.usage`` and ``attempt.text``."""
    try:
        completion = _COMPLETION.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        raise UpstreamProtocolError(
            f"provider '{provider}' answered with a body that is not OpenAI JSON"
        ) from None
    usage = usage_from_wire(completion.usage) if completion.usage is not None else None
    attempt.usage = usage
    choice = completion.choices[0] if completion.choices else ChoiceProbe()
    message = choice.message or DeltaProbe()
    content: list[dict[str, Any]] = []
    text = message.content or message.refusal or ""
    if text:
        content.append({"type": "text", "text": text})
    generated = [text]
    for j, call in enumerate(message.tool_calls or ()):
        function = call.function or FunctionProbe()
        arguments = function.arguments or ""
        where = f"provider '{provider}' tool call {j}: arguments"
        try:
            tool_input = json_object(arguments, where)
        except InvalidRequest:
            raise UpstreamProtocolError(f"{where} are not a JSON object") from None
        name = function.name or ""
        content.append(
            {"type": "tool_use", "id": call.id or f"call_{j}", "name": name, "input": tool_input}
        )
        generated += (name, arguments)
    joined = "".join(generated)
    attempt.text = lambda: joined
    out = {
        "id": _message_id(completion.id),
        "type": "message",
        "role": "assistant",
        "model": completion.model or attempt.upstream_model,
        "content": content,
        "stop_reason": stop_reason(choice.finish_reason),
        "stop_sequence": None,
        "usage": anthropic_usage(usage or Usage()),
    }
    return encode(out)


def _message_id(upstream: str) -> str:
    return upstream if upstream.startswith("msg_") else "msg_" + (upstream or "relay")


# -- stream ---------------------------------------------------------------------------------


class EventStream(SseMapper):
    """Chat chunks as a Messages stream.

    The first chunk opens the message (``message_start``, with the prompt's tokens as counted
    by the gateway: ``Attempt.prompt_tokens``); text opens a text block, each new
    tool call closes the open block and opens a ``tool_use`` block whose ``arguments`` pieces
    are ``input_json_delta`` events; the finish reason closes the open block. At ``[DONE]``
    the ``message_delta`` carries the stop reason and the usage; when the provider reported
    none, the dialect's end frames write it with the gateway's count, then ``message_stop``.
    """

    expected = "a chat chunk"

    def __init__(self, provider: str, attempt: Attempt) -> None:
        super().__init__(provider)
        self._attempt = attempt
        self._started = False
        self._block = -1  # index of the open content block, -1 when none is open
        self._kind = ""  # "text" or "tool" for the open block
        self._blocks = 0
        self._calls: dict[int, int] = {}  # chat tool call index -> content block index
        self._finish: str | None = None

    def on_event(self, event: SseEvent, step: Step, out: list[bytes]) -> bool:
        data = event.data
        if data == b"[DONE]":
            self._end(out)
            step.done = True
            step.content = True
            return True
        chunk = _COMPLETION.decode(data)
        if chunk.error and bytes(chunk.error) != b"null":
            step.error = bytes(chunk.error)
            return True
        if not self._started:
            out.append(self._start(chunk))
        if chunk.usage is not None:
            self._usage = usage_from_wire(chunk.usage)
        for choice in chunk.choices:
            if choice.index != 0:
                continue
            delta = choice.delta
            if delta is not None:
                text = delta.content or delta.refusal
                if text:
                    self._open(out, "text", b'{"type":"text","text":""}')
                    out.append(self._text_delta(text))
                    step.text += text
                    step.content = True
                for call in delta.tool_calls or ():
                    step.text += self._tool(out, call)
                    step.content = True
            if choice.finish_reason:
                self._finish = choice.finish_reason
                self._close(out)
                step.content = True
        return False

    def _start(self, chunk: _Completion) -> bytes:
        self._started = True
        message: dict[str, Any] = {
            "id": _message_id(chunk.id),
            "type": "message",
            "role": "assistant",
            "model": chunk.model or self._attempt.upstream_model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            # As Anthropic does, the prompt's tokens: the provider reports none before the end,
            # so the gateway's count of the request sent (``prepare``).
            "usage": {"input_tokens": self._attempt.prompt_tokens or 0, "output_tokens": 0},
        }
        return frame(b"message_start", encode({"type": "message_start", "message": message}))

    def _open(self, out: list[bytes], kind: str, block: bytes) -> None:
        if self._kind == kind and kind == "text":
            return
        self._close(out)
        self._block, self._kind = self._blocks, kind
        self._blocks += 1
        index = str(self._block).encode()
        data = b'{"type":"content_block_start","index":' + index + b',"content_block":' + block
        out.append(frame(b"content_block_start", data + b"}"))

    def _close(self, out: list[bytes]) -> None:
        if self._block < 0:
            return
        index = str(self._block).encode()
        out.append(
            frame(b"content_block_stop", b'{"type":"content_block_stop","index":' + index + b"}")
        )
        self._block, self._kind = -1, ""

    def _text_delta(self, text: str) -> bytes:
        return frame(
            b"content_block_delta",
            b'{"type":"content_block_delta","index":'
            + str(self._block).encode()
            + b',"delta":{"type":"text_delta","text":'
            + encode(text)
            + b"}}",
        )

    def _tool(self, out: list[bytes], call: ToolCallProbe) -> str:
        function = call.function or FunctionProbe()
        name = function.name or ""
        if call.index not in self._calls:
            block = {"type": "tool_use", "id": call.id or f"call_{call.index}", "name": name}
            self._open(out, "tool", encode({**block, "input": {}}))
            self._calls[call.index] = self._block
        arguments = function.arguments
        if arguments:
            out.append(
                frame(
                    b"content_block_delta",
                    b'{"type":"content_block_delta","index":'
                    + str(self._calls[call.index]).encode()
                    + b',"delta":{"type":"input_json_delta","partial_json":'
                    + encode(arguments)
                    + b"}}",
                )
            )
        return name + (arguments or "")

    def _end(self, out: list[bytes]) -> None:
        if not self._started:
            out.append(self._start(_Completion()))
        self._close(out)
        stop = stop_reason(self._finish)
        self._attempt.stop_reason = stop
        if self._usage is None:
            return  # the dialect's end frames carry the gateway's count
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": None},
            "usage": anthropic_usage(self._usage),
        }
        out.append(frame(b"message_delta", encode(delta)))
