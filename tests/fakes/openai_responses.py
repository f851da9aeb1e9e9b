"""The fake OpenAI server's Responses API, files and image generation (documented shapes).

``POST /v1/responses`` checks the request against the documented format and refuses the rest
with OpenAI's 400 envelope naming the parameter: a string ``model``; ``input`` a string or a
list of items (messages with a known role and string or part content, ``function_call`` with
``call_id``/``name``/``arguments`` strings, ``function_call_output`` with ``call_id`` and
``output``); ``tools`` with a ``type`` (function tools need ``name``); ``text.format`` of type
text/json_object/json_schema (``name`` and ``schema`` required); ``max_output_tokens`` >= 16;
no chat-completions field (``messages``, ``stream_options``, ``max_tokens``,
``response_format``). ``previous_response_id`` must name a response this server answered.

Answers: ``"Echo: " + <text of the last user message>`` (function call outputs: ``"Result: "``
and their output); with ``text.format`` json_schema the text is ``{"echo": "<that text>"}``;
with function tools and ``tool_choice`` ``required`` or a function: one ``function_call`` item
(``call_1``, the chosen or first tool, arguments ``{"x": 1}``). Usage: ``input_tokens`` = words
of every input text (earlier turns included), ``output_tokens`` = words of the answer (a call
counts 2), ``cached_tokens`` 0. Model ``stream-error``: streamed, the created events, an item,
two deltas, then an ``error`` event and the end of the body.

``POST /v1/files`` (multipart ``purpose`` + ``file``) answers a File object whose ``bytes`` is
the uploaded size; ``POST /v1/images/generations`` answers one base64 image and usage.
"""

from __future__ import annotations

import base64
import json
import re
import time
from typing import Any

from aiohttp import web

Json = dict[str, Any]
CHAT_ONLY = ("messages", "stream_options", "max_tokens", "response_format")
PNG_1PX = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()


def _error(message: str, param: str | None = None, code: str | None = None) -> web.Response:
    error = {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    return web.json_response({"error": error}, status=400)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and "text" in p)
    return ""


def check(body: Any, stored: dict[str, list[Json]]) -> web.Response | None:
    """A 400 for anything the documented request format does not allow."""
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return _error("Missing required parameter: 'model'.", "model")
    for name in CHAT_ONLY:
        if name in body:
            return _error(f"Unsupported parameter: '{name}'.", name, "unsupported_parameter")
    items = body.get("input")
    if isinstance(items, list):
        for i, item in enumerate(items):
            kind = item.get("type", "message") if isinstance(item, dict) else None
            if kind == "message":
                if item.get("role") not in ("user", "assistant", "system", "developer"):
                    return _error(f"Invalid value for 'input[{i}].role'.", f"input[{i}].role")
                if not isinstance(item.get("content"), str | list):
                    return _error(f"Invalid 'input[{i}].content'.", f"input[{i}].content")
            elif kind == "function_call":
                if not all(isinstance(item.get(k), str) for k in ("call_id", "name", "arguments")):
                    return _error(f"Invalid 'input[{i}]'.", f"input[{i}]")
            elif kind == "function_call_output":
                if not isinstance(item.get("call_id"), str) or "output" not in item:
                    return _error(f"Invalid 'input[{i}]'.", f"input[{i}]")
            elif kind != "reasoning":
                return _error(f"Invalid value for 'input[{i}].type'.", f"input[{i}].type")
    elif not isinstance(items, str):
        return _error("Missing required parameter: 'input'.", "input")
    for i, tool in enumerate(body.get("tools") or ()):
        if not isinstance(tool, dict) or "type" not in tool:
            return _error(f"Missing required parameter: 'tools[{i}].type'.", f"tools[{i}].type")
        if tool["type"] == "function" and not isinstance(tool.get("name"), str):
            return _error(f"Missing required parameter: 'tools[{i}].name'.", f"tools[{i}].name")
    fmt = (body.get("text") or {}).get("format")
    if isinstance(fmt, dict):
        if fmt.get("type") not in ("text", "json_object", "json_schema"):
            return _error("Invalid value for 'text.format.type'.", "text.format.type")
        if fmt["type"] == "json_schema" and not ("name" in fmt and "schema" in fmt):
            return _error("Missing required parameter: 'text.format.name'.", "text.format.name")
    limit = body.get("max_output_tokens")
    if limit is not None and (not isinstance(limit, int) or limit < 16):
        return _error(
            "Invalid 'max_output_tokens': integer below minimum value.", "max_output_tokens"
        )
    previous = body.get("previous_response_id")
    if previous is not None and previous not in stored:
        return _error(
            f"Previous response with id '{previous}' not found.",
            "previous_response_id",
            "previous_response_not_found",
        )
    return None


def answer(body: Json, stored: dict[str, list[Json]], number: int) -> tuple[Json, list[Json]]:
    """(the Response, the conversation after it)."""
    items = body["input"]
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    history = [*stored.get(body.get("previous_response_id") or "", []), *items]
    echo = ""
    for item in reversed(items):
        if item.get("type") == "function_call_output":
            echo = "Result: " + _text(item.get("output"))
            break
        if item.get("type", "message") == "message" and item.get("role") == "user":
            echo = "Echo: " + _text(item.get("content"))
            break
    words = sum(len(_text(i.get("content") or i.get("output")).split()) for i in history)
    words += len((body.get("instructions") or "").split())
    output: list[Json] = []
    tools = [t for t in body.get("tools") or () if t.get("type") == "function"]
    choice = body.get("tool_choice")
    if tools and (choice == "required" or isinstance(choice, dict)):
        name = choice.get("name") if isinstance(choice, dict) else tools[0]["name"]
        output.append(
            {"id": f"fc_fake{number}", "type": "function_call", "status": "completed",
             "call_id": "call_1", "name": name, "arguments": '{"x": 1}'}
        )  # fmt: skip
        out_words = 2
    else:
        fmt = (body.get("text") or {}).get("format") or {}
        text = json.dumps({"echo": echo}) if fmt.get("type") == "json_schema" else echo
        part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        output.append(
            {"id": f"msg_fake{number}", "type": "message", "status": "completed",
             "role": "assistant", "content": [part]}
        )  # fmt: skip
        out_words = len(text.split())
    response = {
        "id": f"resp_fake{number:06d}",
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": body["model"],
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": body.get("previous_response_id"),
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": choice or "auto",
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": {
            "input_tokens": words,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": out_words,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": words + out_words,
        },
        "metadata": body.get("metadata") or {},
    }
    return response, [*history, *output]


def events(response: Json, error_after: int | None = None) -> list[bytes]:
    """The documented event sequence of ``response`` (cut by an ``error`` event after
    ``error_after`` deltas)."""
    seq = iter(range(10_000))
    out: list[bytes] = []

    def emit(kind: str, **fields: Any) -> None:
        data = {"type": kind, "sequence_number": next(seq), **fields}
        out.append(f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode())

    begun = {**response, "status": "in_progress", "output": [], "usage": None}
    emit("response.created", response=begun)
    emit("response.in_progress", response=begun)
    for index, item in enumerate(response["output"]):
        if item["type"] == "message":
            text = item["content"][0]["text"]
            emit("response.output_item.added", output_index=index,
                 item={**item, "status": "in_progress", "content": []})  # fmt: skip
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            emit("response.content_part.added", item_id=item["id"], output_index=index,
                 content_index=0, part=part)  # fmt: skip
            words = text.split(" ")
            for n, word in enumerate(words):
                if error_after is not None and n == error_after:
                    emit("error", code="server_error", message="The server had an error.",
                         param=None)  # fmt: skip
                    return out
                emit("response.output_text.delta", item_id=item["id"], output_index=index,
                     content_index=0, delta=word if n == 0 else " " + word, logprobs=[])  # fmt: skip
            emit("response.output_text.done", item_id=item["id"], output_index=index,
                 content_index=0, text=text, logprobs=[])  # fmt: skip
            emit("response.content_part.done", item_id=item["id"], output_index=index,
                 content_index=0, part={**part, "text": text})  # fmt: skip
        else:
            emit("response.output_item.added", output_index=index,
                 item={**item, "status": "in_progress", "arguments": ""})  # fmt: skip
            arguments = item["arguments"]
            for start in range(0, len(arguments), 3):
                emit("response.function_call_arguments.delta", item_id=item["id"],
                     output_index=index, delta=arguments[start : start + 3])  # fmt: skip
            emit("response.function_call_arguments.done", item_id=item["id"],
                 output_index=index, arguments=arguments)  # fmt: skip
        emit("response.output_item.done", output_index=index, item=item)
    emit("response.completed", response=response)
    return out


class ResponsesApi:
    """The handlers, with the responses answered so far (for ``previous_response_id``)."""

    def __init__(self) -> None:
        self.stored: dict[str, list[Json]] = {}
        self.count = 0

    async def responses(self, request: web.Request) -> web.StreamResponse:
        try:
            body = json.loads(await request.read())
        except ValueError:
            return _error("We could not parse the JSON body of your request.")
        refused = check(body, self.stored)
        if refused is not None:
            return refused
        self.count += 1
        response, conversation = answer(body, self.stored, self.count)
        self.stored[response["id"]] = conversation
        if not body.get("stream"):
            return web.json_response(response)
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        cut = 2 if body["model"] == "stream-error" else None
        for frame in events(response, cut):
            await resp.write(frame)
        return resp

    async def files(self, request: web.Request) -> web.Response:
        raw = await request.read()  # read once already, by the recording middleware
        boundary = request.content_type == "multipart/form-data" and re.search(
            r"boundary=\"?([^\";]+)", request.headers.get("content-type", "")
        )
        if not boundary:
            return _error("Expected a multipart/form-data body.")
        fields: dict[str, Any] = {}
        for part in raw.split(b"--" + boundary.group(1).encode())[1:-1]:
            head, _, value = part[2:].partition(b"\r\n\r\n")
            value = value.removesuffix(b"\r\n")
            name = re.search(rb'name="([^"]*)"', head)
            filename = re.search(rb'filename="([^"]*)"', head)
            if filename is not None:
                fields["file"] = (filename.group(1).decode(), len(value))
            elif name is not None:
                fields[name.group(1).decode()] = value.decode()
        if "file" not in fields or "purpose" not in fields:
            return _error("Missing required parameter: 'file' or 'purpose'.")
        filename, size = fields["file"]
        return web.json_response(
            {"id": "file-fake1", "object": "file", "bytes": size, "created_at": int(time.time()),
             "filename": filename, "purpose": fields["purpose"], "status": "processed",
             "expires_at": None, "status_details": None}
        )  # fmt: skip

    async def images(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        if not isinstance(body.get("prompt"), str):
            return _error("Missing required parameter: 'prompt'.", "prompt")
        words = len(body["prompt"].split())
        return web.json_response(
            {"created": int(time.time()), "data": [{"b64_json": PNG_1PX}],
             "usage": {"input_tokens": words, "output_tokens": 272, "total_tokens": words + 272,
                       "input_tokens_details": {"text_tokens": words, "image_tokens": 0}}}
        )  # fmt: skip
