"""A Responses request as a chat completions request, for providers without the Responses API.

The chat request then takes the provider's own path (passed to an OpenAI-shaped vendor with its
parameter rules, or translated further to Anthropic's Messages or Bedrock's Converse), so this
module is the only Responses -> chat mapping there is.

Items: messages (``user``, ``system``, ``developer``, ``assistant``; string content or
``input_text``/``input_image``/``output_text``/``refusal`` parts) become chat messages;
``function_call`` items become the ``tool_calls`` of an assistant message (consecutive calls,
and the assistant text before them, share one message) and ``function_call_output`` items
``tool`` messages; ``reasoning`` items are dropped (a chat API cannot take them back).
``instructions`` lead as a system message. Anything else is a 400 naming the item.

Parameters are taken by an allow-list (:data:`HANDLED`): each is mapped (``reasoning.effort``
-> ``reasoning_effort``, ``text.verbosity`` -> ``verbosity``, ``max_output_tokens`` ->
``max_completion_tokens``, ...) or passed on under the chat name it shares (``service_tier``,
``prompt_cache_key``, ``safety_identifier``, ...), for the provider's own path to take or
refuse; any other is a 400 naming it, unless the model sets ``drop_unsupported_params``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from relay.errors import InvalidRequest
from relay.exchange import Deployment
from relay.providers.params import unsupported_error
from relay.wire.responses import ResponsesRequest

_ROLES = frozenset({"user", "system", "developer", "assistant"})
_MEMBERS = msgspec.json.Decoder(dict[str, msgspec.Raw])
# Responses parameters this translation takes (see the module docstring).
HANDLED = frozenset(
    {
        "model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "text",
        "max_output_tokens", "temperature", "top_p", "metadata", "store", "stream",
        "stream_options", "previous_response_id", "user", "reasoning",
        # refused below whatever drop_unsupported_params says
        "background", "conversation", "prompt",
    }
)  # fmt: skip
# Chat parameters of the same name and meaning, passed on as sent.
PASSED_ON = ("service_tier", "prompt_cache_key", "prompt_cache_retention", "safety_identifier")
# Values of other parameters that ask for what a translated call does anyway.
_NOTHING: dict[str, tuple[Any, ...]] = {
    "truncation": ("disabled",),
    "include": ([],),
    "top_logprobs": (0,),
}
_TEXT = frozenset({"format", "verbosity"})
_REASONING = frozenset({"effort"})
# Chat parameters a provider's path may refuse -> the Responses field the client sent.
_SENT_AS = {
    "verbosity": "text.verbosity",
    "reasoning_effort": "reasoning.effort",
    "max_completion_tokens": "max_output_tokens",
    "response_format": "text.format",
}


def name_as_sent(err: InvalidRequest) -> InvalidRequest:
    """A refusal of the chat request made from a Responses request, naming the field as the
    client sent it (``reasoning.effort``, not ``reasoning_effort``)."""
    sent = _SENT_AS.get(err.param or "")
    if sent is not None and err.param is not None and err.message.startswith(err.param):
        err.message = sent + err.message[len(err.param) :]
        err.args = (err.message,)
        err.param = sent
    return err


# Built-in tools of OpenAI's platform: only OpenAI runs them.
_FUNCTION = "function"


def input_items(req: ResponsesRequest) -> list[dict[str, Any]]:
    """The request's ``input`` as a list of items (a string is one user message)."""
    value = req.input
    if value is None:
        return []
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    return value


def chat_request(
    req: ResponsesRequest,
    items: list[dict[str, Any]],
    model: str,
    deployment: Deployment,
    provider: str,
    kind: str,
    *,
    body: bytes,
) -> dict[str, Any]:
    """The chat request for ``items`` (earlier turns first) under the request's settings
    (``req``, decoded from ``body``, whose other members are checked here)."""
    _refuse(req, deployment, provider, kind)
    members = _MEMBERS.decode(body)
    messages: list[dict[str, Any]] = []
    if req.instructions:
        messages.append({"role": "system", "content": req.instructions})
    for i, item in enumerate(items):
        _item(messages, item, f"input[{i}]")
    if not messages:
        raise InvalidRequest("input: must contain at least one item", param="input")
    out: dict[str, Any] = {"model": model, "messages": messages}
    if req.max_output_tokens is not None:
        out["max_completion_tokens"] = req.max_output_tokens
    for name in ("temperature", "top_p", "user", "parallel_tool_calls"):
        value = getattr(req, name)
        if value is not None:
            out[name] = value
    _parameters(members, out, deployment, provider, kind)
    _format(req, out)
    _tools(req, out, deployment, provider, kind)
    if req.stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def _refuse(req: ResponsesRequest, deployment: Deployment, provider: str, kind: str) -> None:
    if req.max_output_tokens is not None and req.max_output_tokens < 1:
        raise InvalidRequest(
            f"max_output_tokens: expected at least 1, got {req.max_output_tokens}",
            param="max_output_tokens",
        )
    for name in ("background", "conversation", "prompt"):
        if getattr(req, name) not in (None, False):
            # No equivalent in a chat API; dropping them would change the answer.
            raise unsupported_error(name, provider, kind, deployment.public_model)


def _parameters(
    members: dict[str, msgspec.Raw],
    out: dict[str, Any],
    deployment: Deployment,
    provider: str,
    kind: str,
) -> None:
    """Members beyond the typed request: mapped, passed on, or refused (see HANDLED)."""
    drop = deployment.drop_unsupported_params

    def refuse(name: str) -> None:
        if not drop:
            raise unsupported_error(name, provider, kind, deployment.public_model)

    for name in sorted(members.keys() - HANDLED):
        value = msgspec.json.decode(members[name])
        if name in PASSED_ON:
            if value is not None:
                out[name] = value
        elif value is not None and value not in _NOTHING.get(name, ()):
            refuse(name)
    for parent, known in (("text", _TEXT), ("reasoning", _REASONING)):
        raw = members.get(parent)
        settings = msgspec.json.decode(raw) if raw is not None else None
        if not isinstance(settings, dict):
            continue
        for name in sorted(settings.keys() - known):
            if settings[name] is not None:
                refuse(f"{parent}.{name}")
        key = "verbosity" if parent == "text" else "effort"
        if settings.get(key) is not None:
            out["verbosity" if parent == "text" else "reasoning_effort"] = settings[key]


def _item(messages: list[dict[str, Any]], item: Any, where: str) -> None:
    if not isinstance(item, dict):
        raise InvalidRequest(f"{where}: expected an object", param=where)
    kind = item.get("type", "message")
    if kind == "message":
        role = item.get("role")
        if role not in _ROLES:
            raise InvalidRequest(
                f"{where}.role: expected user, system, developer or assistant, got {role!r}",
                param=f"{where}.role",
            )
        content = _content(item.get("content"), f"{where}.content", role == "assistant")
        if role == "assistant":
            messages.append({"role": "assistant", "content": content})
        else:
            messages.append({"role": "system" if role == "developer" else role, "content": content})
    elif kind == "function_call":
        call = {
            "id": _string(item, "call_id", where),
            "type": "function",
            "function": {
                "name": _string(item, "name", where),
                "arguments": _string(item, "arguments", where),
            },
        }
        last = messages[-1] if messages else None
        if last is not None and last["role"] == "assistant" and "tool_calls" in last:
            last["tool_calls"].append(call)
        elif last is not None and last["role"] == "assistant":
            last["tool_calls"] = [call]
        else:
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
    elif kind == "function_call_output":
        output = item.get("output")
        text = output if isinstance(output, str) else _parts_text(output, f"{where}.output")
        messages.append(
            {"role": "tool", "tool_call_id": _string(item, "call_id", where), "content": text}
        )
    elif kind != "reasoning":
        raise InvalidRequest(
            f"{where}.type: {kind!r} items are not supported by this model's provider",
            param=f"{where}.type",
        )


def _string(item: dict[str, Any], name: str, where: str) -> str:
    value = item.get(name)
    if not isinstance(value, str):
        raise InvalidRequest(f"{where}.{name}: expected a string", param=f"{where}.{name}")
    return value


def _content(content: Any, where: str, assistant: bool) -> Any:
    """A message's content as chat content: a string, or text and image parts."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}: expected a string or an array of parts", param=where)
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        here = f"{where}[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text") and isinstance(part.get("text"), str):
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            parts.append({"type": "text", "text": part["refusal"]})
        elif kind == "input_image" and not assistant:
            url = part.get("image_url")
            if not isinstance(url, str):
                # file_id images live in OpenAI's storage: no other provider can read them.
                raise InvalidRequest(
                    f"{here}.image_url: expected an http(s) or data: URL", param=f"{here}.image_url"
                )
            image: dict[str, Any] = {"url": url}
            if isinstance(part.get("detail"), str):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        else:
            raise InvalidRequest(
                f"{here}.type: {kind!r} parts are not supported by this model's provider",
                param=f"{here}.type",
            )
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def _parts_text(output: Any, where: str) -> str:
    if isinstance(output, list):
        texts = [p.get("text") for p in output if isinstance(p, dict)]
        if all(isinstance(t, str) for t in texts):
            return "".join(t for t in texts if isinstance(t, str))
    raise InvalidRequest(f"{where}: expected a string or text parts", param=where)


def _format(req: ResponsesRequest, out: dict[str, Any]) -> None:
    fmt = req.text.format if req.text is not None else None
    if fmt is None or fmt.type == "text":
        return
    if fmt.type == "json_object":
        out["response_format"] = {"type": "json_object"}
    elif fmt.type == "json_schema":
        schema: dict[str, Any] = {"name": fmt.name or "output", "schema": fmt.schema or {}}
        if fmt.strict is not None:
            schema["strict"] = fmt.strict
        if fmt.description is not None:
            schema["description"] = fmt.description
        out["response_format"] = {"type": "json_schema", "json_schema": schema}
    else:
        raise InvalidRequest(
            f"text.format.type: expected text, json_object or json_schema, got {fmt.type!r}",
            param="text.format.type",
        )


def _tools(
    req: ResponsesRequest, out: dict[str, Any], deployment: Deployment, provider: str, kind: str
) -> None:
    tools: list[dict[str, Any]] = []
    for i, tool in enumerate(req.tools or ()):
        if tool.get("type") != _FUNCTION:
            if deployment.drop_unsupported_params:
                continue
            raise InvalidRequest(
                f"tools[{i}].type: {tool.get('type')!r} tools run on OpenAI's platform only; "
                f"provider '{provider}' (kind {kind}) serves function tools",
                param=f"tools[{i}].type",
                code="unsupported_parameter",
            )
        function: dict[str, Any] = {"name": tool.get("name", "")}
        for name in ("description", "parameters", "strict"):
            if tool.get(name) is not None:
                function[name] = tool[name]
        tools.append({"type": "function", "function": function})
    if tools:
        out["tools"] = tools
    choice = req.tool_choice
    if choice is None:
        return
    if isinstance(choice, str):
        if choice in ("auto", "none", "required"):
            if tools or choice == "none":
                out["tool_choice"] = choice
            return
    elif choice.get("type") == _FUNCTION and isinstance(choice.get("name"), str):
        out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
        return
    raise InvalidRequest(
        "tool_choice: expected auto, none, required or a function", param="tool_choice"
    )
