"""OpenAI chat completions request -> Bedrock Converse request body.

Converse takes the same body for ``/converse`` and ``/converse-stream`` and for every model
family (Anthropic, Meta, Mistral, Amazon): ``messages`` of alternating ``user``/``assistant``
turns made of content blocks, ``system`` blocks apart, ``inferenceConfig`` for the sampling
parameters and ``toolConfig`` for tools. Tool results are ``toolResult`` blocks of a user turn.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import msgspec

from relay.errors import InvalidRequest
from relay.providers.params import unsupported_error

Json = dict[str, Any]

# OpenAI parameters this translation honours; every other one is refused (400) or dropped.
HANDLED = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stop",
        "tools",
        "tool_choice",
        "n",
        # attribution: recorded by the gateway, not sent (see params.ATTRIBUTION)
        "user",
        "safety_identifier",
        "metadata",
    }
)
_IMAGE_FORMATS = {"png", "jpeg", "gif", "webp"}


def converse_body(request: Json, *, provider: str, model: str, drop_unsupported: bool) -> bytes:
    """The Converse JSON body for an OpenAI chat request (already schema-checked)."""
    for name in sorted(request.keys() - HANDLED):
        value = request[name]
        if value is not None and not _honoured(name, value) and not drop_unsupported:
            raise unsupported_error(name, provider, "bedrock", model)
    n = request.get("n")
    if n not in (None, 1) and not drop_unsupported:
        raise unsupported_error("n", provider, "bedrock", model)
    system, messages = _messages(request.get("messages") or [])
    body: Json = {"messages": messages}
    if system:
        body["system"] = system
    if inference := _inference(request):
        body["inferenceConfig"] = inference
    tools = request.get("tools")
    if tools:
        body["toolConfig"] = _tool_config(
            tools, request.get("tool_choice"), provider, model, drop_unsupported
        )
    return msgspec.json.encode(body)


def _honoured(name: str, value: Any) -> bool:
    """Values that ask for what Bedrock does anyway."""
    return (name == "parallel_tool_calls" and value is True) or (
        name == "response_format" and isinstance(value, dict) and value.get("type") == "text"
    )


def _inference(request: Json) -> Json:
    out: Json = {}
    limit = request.get("max_completion_tokens") or request.get("max_tokens")
    if limit is not None:
        out["maxTokens"] = limit
    if request.get("temperature") is not None:
        out["temperature"] = request["temperature"]
    if request.get("top_p") is not None:
        out["topP"] = request["top_p"]
    stop = request.get("stop")
    if isinstance(stop, str):
        out["stopSequences"] = [stop]
    elif isinstance(stop, list) and stop:
        out["stopSequences"] = stop
    return out


def _messages(items: list[Any]) -> tuple[list[Json], list[Json]]:
    system: list[Json] = []
    turns: list[Json] = []

    def add(role: str, blocks: list[Json]) -> None:
        if not blocks:
            return
        if turns and turns[-1]["role"] == role:  # Converse needs alternating turns
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})

    for i, message in enumerate(items):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidRequest(f"{where}: expected an object", param="messages")
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            system.extend({"text": text} for text in _texts(content, where))
        elif role == "user":
            add("user", _user_blocks(content, where))
        elif role == "assistant":
            blocks = [{"text": text} for text in _texts(content, where) if text]
            blocks.extend(_tool_uses(message.get("tool_calls"), where))
            add("assistant", blocks)
        elif role == "tool":
            result = {
                "toolUseId": _str(message.get("tool_call_id"), f"{where}.tool_call_id"),
                "content": [{"text": text} for text in _texts(content, where)] or [{"text": ""}],
                "status": "success",
            }
            add("user", [{"toolResult": result}])
        else:
            raise InvalidRequest(
                f"{where}.role: {role!r} cannot be sent to Bedrock (system, developer, user, "
                "assistant or tool)",
                param="messages",
            )
    return system, turns


def _texts(content: Any, where: str) -> list[str]:
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    texts = []
    for j, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") != "text":
            raise InvalidRequest(
                f"{where}.content[{j}]: only text parts are allowed here", param="messages"
            )
        texts.append(_str(part.get("text"), f"{where}.content[{j}].text"))
    return texts


def _user_blocks(content: Any, where: str) -> list[Json]:
    if isinstance(content, str) or content is None:
        return [{"text": content or ""}]
    blocks: list[Json] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            blocks.append({"text": _str(part.get("text"), f"{where}.content[{j}].text")})
        elif kind == "image_url":
            blocks.append(_image(part.get("image_url"), f"{where}.content[{j}].image_url"))
        else:
            raise InvalidRequest(
                f"{where}.content[{j}]: part type {kind!r} cannot be sent to Bedrock "
                "(text or image_url)",
                param="messages",
            )
    return blocks


def _image(image: Any, where: str) -> Json:
    url = image.get("url") if isinstance(image, dict) else None
    prefix, _, data = (url or "").partition(";base64,")
    fmt = prefix.removeprefix("data:image/")
    if not prefix.startswith("data:image/") or fmt not in _IMAGE_FORMATS or not data:
        raise InvalidRequest(
            f"{where}.url: Bedrock takes images as data URLs "
            "(data:image/png|jpeg|gif|webp;base64,...), not links",
            param="messages",
        )
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"{where}.url: invalid base64", param="messages") from None
    return {"image": {"format": fmt, "source": {"bytes": data}}}


def _tool_uses(calls: Any, where: str) -> list[Json]:
    blocks = []
    for j, call in enumerate(calls or ()):
        at = f"{where}.tool_calls[{j}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            raise InvalidRequest(f"{at}.function: expected an object", param="messages")
        arguments = function.get("arguments") or "{}"
        try:
            parsed = msgspec.json.decode(arguments)
        except (msgspec.DecodeError, TypeError):
            raise InvalidRequest(
                f"{at}.function.arguments: expected a JSON object", param="messages"
            ) from None
        tool_use = {
            "toolUseId": _str(call.get("id"), f"{at}.id"),
            "name": _str(function.get("name"), f"{at}.function.name"),
            "input": parsed,
        }
        blocks.append({"toolUse": tool_use})
    return blocks


def _tool_config(tools: list[Any], choice: Any, provider: str, model: str, drop: bool) -> Json:
    specs = []
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or tool.get("type", "function") != "function":
            raise InvalidRequest(f"tools[{i}]: only function tools are supported", param="tools")
        spec: Json = {
            "name": _str(function.get("name"), f"tools[{i}].function.name"),
            "inputSchema": {
                "json": function.get("parameters") or {"type": "object", "properties": {}}
            },
        }
        if function.get("description"):
            spec["description"] = function["description"]
        specs.append({"toolSpec": spec})
    config: Json = {"tools": specs}
    if choice in (None, "auto"):
        config["toolChoice"] = {"auto": {}}
    elif choice == "required":
        config["toolChoice"] = {"any": {}}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        config["toolChoice"] = {"tool": {"name": choice["function"].get("name")}}
    elif not drop:  # "none": Converse cannot forbid tools it was given
        raise unsupported_error("tool_choice", provider, "bedrock", model)
    return config


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise InvalidRequest(f"{where}: expected a string", param="messages")
    return value
