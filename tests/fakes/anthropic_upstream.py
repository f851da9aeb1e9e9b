"""A fake Anthropic upstream: a real aiohttp HTTP server on loopback speaking the Messages API.

Run it as its own process::

    python tests/fakes/anthropic_upstream.py --port 0 [--api-key KEY]

It prints ``READY <port>`` once listening. From tests use :func:`start_fake_anthropic` (it
returns the same :class:`~tests.fakes.openai_upstream.FakeUpstream` handle as the OpenAI fake:
``requests()``, ``reset()``, ``stats()``, same control endpoints).

It checks what it receives against the documented format and refuses anything else with
Anthropic's 400 envelope naming the field (``messages.1.role: ...``): ``POST /v1/messages`` or
``/v1/messages/count_tokens``; ``x-api-key`` (the configured key, or ``client-key-*``; else
401 ``authentication_error``); an ``anthropic-version`` header ``YYYY-MM-DD``; a JSON object with
a string ``model``, an integer ``max_tokens`` >= 1 (not on count_tokens), a non-empty
``messages`` list whose roles are only ``user``/``assistant``, start with ``user`` and
alternate; content a non-empty string or a list of known blocks (``text`` non-empty, ``image``
with a ``base64`` or ``url`` source, ``tool_use`` only in assistant turns, ``tool_result`` only
in user turns, before any other block, each answering a ``tool_use`` of the turn before, and
every ``tool_use`` answered); ``system`` a string or a list of text blocks (never a message
role); ``tools`` with ``name`` and ``input_schema``; ``tool_choice`` of type
auto/any/none/tool; ``stop_sequences`` a list of strings; ``temperature`` and ``top_p`` in
0..1; no OpenAI-only top-level field (``n``, ``stop``, ``stream_options``, ``response_format``,
``user``, ``max_completion_tokens``, ``tool_calls``, ...); ``thinking`` enabled with a
``budget_tokens`` of at least 1024 and under ``max_tokens``; ``service_tier`` ``auto`` or
``standard_only``.

Answers, by ``model``:

* any other name: ``"Echo: " + <text of the last user turn>``; if that turn holds tool results,
  ``"Result: " + <their text>``. ``max_tokens`` smaller than the word count truncates it
  (``stop_reason: "max_tokens"``). With ``tools`` and ``tool_choice`` ``any`` or ``tool``: one
  ``tool_use`` block (``toolu_fake1``, the chosen or first tool, input ``{"x": 1}``) after the
  text ``"Calling."`` and ``stop_reason: "tool_use"``.
* ``cache-usage``: usage also reports ``cache_read_input_tokens: 100`` and
  ``cache_creation_input_tokens: 50``.
* ``error-400|401|429|500|529``: that status and Anthropic's envelope (429 also sends
  ``retry-after: 7``; 529 is ``overloaded_error``).
* ``stream-error``: message_start + 2 word deltas, then an ``error`` event
  (``overloaded_error``) and the end of the body.
* ``early-error``: streamed, an ``error`` event (``overloaded_error``) right after
  ``message_start``, before any content.
* ``cut-stream``: message_start + 3 word deltas, then the TCP connection is closed.
* ``empty-object``, ``no-type``, ``no-content`` (non-streamed): a 200 whose JSON is ``{}``, or
  a message without its ``type`` or its ``content``.
* ``slow-<ms>``: wait <ms> before the headers, then answer normally.
* ``split-events``: a normal stream written 5 bytes at a time, ``\\r\\n`` line endings on every
  odd event.
* ``flood-<events>-<bytes>[-<tag>]`` (streamed): one text block of ``<events>`` deltas of
  ``<bytes>`` characters each (the OpenAI fake's ``flood_piece``), as fast as the reader takes
  them; ``output_tokens`` in ``message_delta`` is the words of the whole text.

Tokens are words: ``input_tokens`` = words of the system text and of every text and tool
result in the messages; ``output_tokens`` = words of the answer's text (a tool call counts 2).

Streams are ``event: <type>`` / ``data: <json>`` events: ``message_start`` (usage with the
input tokens and ``output_tokens: 1``), a ``ping``, per block ``content_block_start``, deltas
(``text_delta`` per word, ``input_json_delta`` in 3-character pieces), ``content_block_stop``;
``message_delta`` with the stop reason and cumulative ``output_tokens``; ``message_stop``.
Every response carries ``request-id: req_fake<n>``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.fakes.openai_upstream import FLOOD_RE, FakeUpstream, count_words, flood_piece, pieces

Json = dict[str, Any]

VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")
TOOL_INPUT = '{"x": 1}'
SPLIT_BYTES = 5
OPENAI_ONLY = (
    "n", "stop", "stream_options", "response_format", "user", "max_completion_tokens",
    "tool_calls", "frequency_penalty", "presence_penalty", "logprobs", "seed",
    "parallel_tool_calls",
)  # fmt: skip
KNOWN_FIELDS = {
    "model", "messages", "max_tokens", "system", "stream", "temperature", "top_p", "top_k",
    "stop_sequences", "tools", "tool_choice", "metadata", "output_config", "thinking",
    "service_tier", "container", "mcp_servers", "cache_control",
}  # fmt: skip
BLOCK_TYPES = {
    "text",
    "image",
    "document",
    "tool_use",
    "tool_result",
    "thinking",
    "redacted_thinking",
}


def error(
    status: int, kind: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    """Anthropic's error envelope."""
    body = {"type": "error", "error": {"type": kind, "message": message}}
    return web.json_response(body, status=status, headers=headers)


def scenario_error(model: str) -> web.Response | None:
    """The ``error-*`` models."""
    if model == "error-400":
        return error(
            400, "invalid_request_error", "messages: text content blocks must be non-empty"
        )
    if model == "error-401":
        return error(401, "authentication_error", "invalid x-api-key")
    if model == "error-429":
        message = "Number of request tokens has exceeded your per-minute rate limit"
        return error(429, "rate_limit_error", message, {"retry-after": "7"})
    if model == "error-500":
        return error(500, "api_error", "Internal server error")
    if model == "error-529":
        return error(529, "overloaded_error", "Overloaded")
    return None


# Non-streamed answers with a 200 that are not a Messages object (a broken or foreign upstream).
MALFORMED: dict[str, Json] = {
    "empty-object": {},
    "no-type": {"id": "msg_x", "role": "assistant", "content": [], "model": "m"},
    "no-content": {"id": "msg_x", "type": "message", "role": "assistant", "model": "m"},
}


class Invalid(Exception):
    """A request that breaks the documented format: 400 with the field named."""


def check_request(body: Any, count_only: bool) -> None:
    """Raise :class:`Invalid` naming the first rule the body breaks."""
    if not isinstance(body, dict):
        raise Invalid("body: expected a JSON object")
    for name in body:
        if name in OPENAI_ONLY or name not in KNOWN_FIELDS:
            raise Invalid(f"{name}: Extra inputs are not permitted")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise Invalid("model: Field required")
    if not count_only:
        limit = body.get("max_tokens")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise Invalid("max_tokens: Field required (an integer >= 1)")
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None and not (isinstance(value, int | float) and 0 <= value <= 1):
            raise Invalid(f"{name}: Input should be between 0 and 1")
    check_thinking(body, count_only)
    tier = body.get("service_tier")
    if tier is not None and tier not in ("auto", "standard_only"):
        raise Invalid("service_tier: Input should be 'auto' or 'standard_only'")
    stops = body.get("stop_sequences")
    if stops is not None and not (
        isinstance(stops, list) and all(isinstance(s, str) for s in stops)
    ):
        raise Invalid("stop_sequences: Input should be a list of strings")
    system = body.get("system")
    if system is not None and not isinstance(system, str):  # noqa: SIM102
        if not isinstance(system, list) or any(
            not isinstance(b, dict) or b.get("type") != "text" or not b.get("text") for b in system
        ):
            raise Invalid("system: Input should be a string or a list of text blocks")
    check_tools(body)
    check_messages(body.get("messages"))


def check_thinking(body: Json, count_only: bool) -> None:
    thinking = body.get("thinking")
    if thinking is None:
        return
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind not in ("enabled", "disabled", "adaptive"):
        raise Invalid("thinking.type: Input should be 'enabled', 'disabled' or 'adaptive'")
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 1024:
            raise Invalid("thinking.enabled.budget_tokens: Input should be >= 1024")
        if not count_only and budget >= body["max_tokens"]:
            raise Invalid("max_tokens: must be greater than thinking.budget_tokens")


def check_tools(body: Json) -> None:
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise Invalid("tools: Input should be a list")
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
                raise Invalid(f"tools.{i}.name: Field required")
            if not isinstance(tool.get("input_schema"), dict):
                raise Invalid(f"tools.{i}.input_schema: Field required")
            if "function" in tool or tool.get("type") == "function":
                raise Invalid(f"tools.{i}: OpenAI function tools are not accepted")
    choice = body.get("tool_choice")
    if choice is not None:
        if not isinstance(choice, dict) or choice.get("type") not in (
            "auto",
            "any",
            "none",
            "tool",
        ):
            raise Invalid("tool_choice.type: Input should be 'auto', 'any', 'none' or 'tool'")
        if choice["type"] == "tool" and not isinstance(choice.get("name"), str):
            raise Invalid("tool_choice.name: Field required")


def check_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise Invalid("messages: Field required (a non-empty list)")
    expected = "user"
    pending: set[str] = set()
    for i, message in enumerate(messages):
        where = f"messages.{i}"
        if not isinstance(message, dict):
            raise Invalid(f"{where}: Input should be an object")
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise Invalid(f"{where}.role: Input should be 'user' or 'assistant'")
        if role != expected:
            raise Invalid(
                f"{where}.role: roles must alternate between 'user' and 'assistant', starting with 'user'"
            )
        expected = "assistant" if role == "user" else "user"
        pending = check_content(message.get("content"), role, where, pending)
    if pending:
        raise Invalid(f"messages: tool_use ids without a tool_result: {sorted(pending)}")


def check_content(content: Any, role: str, where: str, pending: set[str]) -> set[str]:
    """Check one turn's content; return the tool_use ids it leaves to answer."""
    if isinstance(content, str):
        if not content and role == "user":
            raise Invalid(f"{where}.content: text content must be non-empty")
        if pending:
            raise Invalid(
                f"{where}.content: tool_use ids {sorted(pending)} need tool_result blocks"
            )
        return set()
    if not isinstance(content, list):
        raise Invalid(f"{where}.content: Input should be a string or a list of blocks")
    answered: set[str] = set()
    opened: set[str] = set()
    seen_other = False
    for j, block in enumerate(content):
        here = f"{where}.content.{j}"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind not in BLOCK_TYPES:
            raise Invalid(f"{here}.type: Input tag {kind!r} is not a known block type")
        if kind == "text" and not (isinstance(block.get("text"), str) and block["text"]):
            raise Invalid(f"{here}.text: text content blocks must be non-empty")
        if kind == "image":
            source = block.get("source") or {}
            ok = (
                source.get("type") == "base64"
                and source.get("media_type", "").startswith("image/")
                and isinstance(source.get("data"), str)
            ) or (source.get("type") == "url" and str(source.get("url", "")).startswith("http"))
            if not ok:
                raise Invalid(f"{here}.source: expected a base64 or url image source")
        if kind == "tool_use":
            if role != "assistant":
                raise Invalid(f"{here}: tool_use blocks are only allowed in assistant turns")
            if (
                not isinstance(block.get("input"), dict)
                or not block.get("id")
                or not block.get("name")
            ):
                raise Invalid(f"{here}: tool_use needs id, name and an object input")
            opened.add(block["id"])
        if kind == "tool_result":
            if role != "user":
                raise Invalid(f"{here}: tool_result blocks are only allowed in user turns")
            if seen_other:
                raise Invalid(f"{here}: tool_result blocks must come first in the content")
            if block.get("tool_use_id") not in pending:
                raise Invalid(f"{here}.tool_use_id: no tool_use with this id in the previous turn")
            answered.add(block["tool_use_id"])
        else:
            seen_other = True
    if pending - answered:
        raise Invalid(
            f"{where}.content: tool_use ids {sorted(pending - answered)} need tool_result blocks"
        )
    return opened


def block_text(content: Any, kinds: tuple[str, ...] = ("text",)) -> str:
    """Text of a string content, or of the blocks of the given kinds (tool results' own text)."""
    if isinstance(content, str):
        return content
    texts = []
    for block in content or ():
        if isinstance(block, dict) and block.get("type") in kinds:
            inner = block.get("text") if block["type"] == "text" else block.get("content")
            texts.append(block_text(inner) if not isinstance(inner, str) else inner)
    return " ".join(t for t in texts if t)


def input_tokens(body: Json) -> int:
    system = body.get("system")
    words = count_words(system if isinstance(system, str) else block_text(system))
    for message in body["messages"]:
        words += count_words(block_text(message.get("content"), ("text", "tool_result")))
    return words


def tool_name(body: Json) -> str | None:
    tools, choice = body.get("tools"), body.get("tool_choice") or {}
    if not tools or choice.get("type") not in ("any", "tool"):
        return None
    return str(choice.get("name") or tools[0]["name"])


def usage_of(model: str, prompt: int, output: int) -> Json:
    usage: Json = {"input_tokens": prompt, "output_tokens": output}
    if model == "cache-usage":
        usage |= {"cache_creation_input_tokens": 50, "cache_read_input_tokens": 100}
    else:
        usage |= {"cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    return usage


def event(kind: str, payload: Json) -> bytes:
    return (
        f"event: {kind}\ndata: ".encode() + json.dumps({"type": kind, **payload}).encode() + b"\n\n"
    )


class FakeAnthropic:
    """The aiohttp application and its recordings (same control API as the OpenAI fake)."""

    def __init__(self, api_key: str | None) -> None:
        self.api_key = api_key
        self.recorded: list[Json] = []
        self.count = 0
        self.cancelled_streams = self.completed_streams = self.active_streams = 0

    def build_app(self) -> web.Application:
        @web.middleware
        async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            return await self.middleware(request, handler)

        app = web.Application(middlewares=[middleware], client_max_size=64 * 1024 * 1024)
        app.on_response_prepare.append(self.on_prepare)
        app.router.add_post("/v1/messages", self.messages)
        app.router.add_post("/v1/messages/count_tokens", self.count_tokens)
        app.router.add_get("/_fake/requests", lambda r: web.json_response(self.recorded))
        app.router.add_post("/_fake/reset", self.reset)
        app.router.add_get("/_fake/stats", self.stats)
        return app

    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.count += 1
        request["rid"] = self.count
        if request.path.startswith("/_fake/"):
            return await handler(request)
        raw = await request.read()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        self.recorded.append(
            {
                "path": request.path,
                "method": request.method,
                "headers": {k.lower(): v for k, v in request.headers.items()},
                "body": parsed,
                "raw": raw.decode("latin-1"),
                "request_id": f"req_fake{self.count}",
            }
        )
        key = request.headers.get("x-api-key", "")
        if self.api_key is not None and key != self.api_key and not key.startswith("client-key-"):
            return error(401, "authentication_error", "invalid x-api-key")
        if not VERSION.match(request.headers.get("anthropic-version", "")):
            return error(400, "invalid_request_error", "anthropic-version: header is required")
        if parsed is None:
            return error(400, "invalid_request_error", "There was an issue with the JSON body")
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return error(404, "not_found_error", f"Not found: {request.path}")
        except web.HTTPMethodNotAllowed:
            return error(405, "invalid_request_error", f"Method not allowed: {request.method}")

    async def on_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        response.headers["request-id"] = f"req_fake{request.get('rid', 0)}"

    async def reset(self, request: web.Request) -> web.Response:
        self.recorded.clear()
        self.cancelled_streams = self.completed_streams = 0
        return web.json_response({"ok": True})

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "cancelled_streams": self.cancelled_streams,
                "completed_streams": self.completed_streams,
                "active_streams": self.active_streams,
            }
        )

    async def count_tokens(self, request: web.Request) -> web.StreamResponse:
        body = json.loads(await request.read())
        try:
            check_request(body, count_only=True)
        except Invalid as exc:
            return error(400, "invalid_request_error", str(exc))
        return web.json_response({"input_tokens": input_tokens(body)})

    async def messages(self, request: web.Request) -> web.StreamResponse:
        body = json.loads(await request.read())
        try:
            check_request(body, count_only=False)
        except Invalid as exc:
            return error(400, "invalid_request_error", str(exc))
        model: str = body["model"]
        if (failed := scenario_error(model)) is not None:
            return failed
        if model in MALFORMED and not body.get("stream"):
            return web.json_response(MALFORMED[model])
        if model.startswith("slow-") and model[5:].isdigit():
            await asyncio.sleep(int(model[5:]) / 1000)
        if (flood := FLOOD_RE.fullmatch(model)) and body.get("stream"):
            events, size = int(flood[1]), int(flood[2])
            return await self.flood(request, model, events, size, input_tokens(body))
        last = body["messages"][-1]
        content = last.get("content")
        results = block_text(content, ("tool_result",)) if isinstance(content, list) else ""
        text = f"Result: {results}" if results else "Echo: " + block_text(last.get("content"))
        tool = tool_name(body)
        stop = "end_turn"
        if tool is not None:
            text, stop = "Calling.", "tool_use"
        elif count_words(text) > body["max_tokens"]:
            text, stop = "".join(pieces(text)[: body["max_tokens"]]).rstrip(), "max_tokens"
        prompt = input_tokens(body)
        output = count_words(text) + (2 if tool else 0)
        message_id = f"msg_fake{request['rid']:06d}"
        if not body.get("stream"):
            content: list[Json] = [{"type": "text", "text": text}]
            if tool:
                content.append(
                    {"type": "tool_use", "id": "toolu_fake1", "name": tool, "input": {"x": 1}}
                )
            return web.json_response(
                {
                    "id": message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": content,
                    "stop_reason": stop,
                    "stop_sequence": None,
                    "usage": usage_of(model, prompt, output),
                }
            )
        return await self.stream(request, model, message_id, text, tool, stop, prompt, output)

    async def flood(
        self, request: web.Request, model: str, events: int, size: int, prompt: int
    ) -> web.StreamResponse:
        """``flood-<events>-<bytes>``: a long text block; the delta is encoded once."""
        piece = flood_piece(size)
        start = {
            "message": {
                "id": f"msg_fake{request['rid']:06d}", "type": "message", "role": "assistant",
                "model": model, "content": [], "stop_reason": None, "stop_sequence": None,
                "usage": usage_of(model, prompt, 1),
            }
        }  # fmt: skip
        block = {"index": 0, "content_block": {"type": "text", "text": ""}}
        delta = {"index": 0, "delta": {"type": "text_delta", "text": piece}}
        end = {"delta": {"stop_reason": "end_turn", "stop_sequence": None}}
        resp = web.StreamResponse(headers={"content-type": "text/event-stream; charset=utf-8"})
        await resp.prepare(request)
        self.active_streams += 1
        try:
            for frame in (event("message_start", start), event("content_block_start", block)):
                await resp.write(frame)
            frame = event("content_block_delta", delta)
            for _ in range(events):
                await resp.write(frame)
            await resp.write(event("content_block_stop", {"index": 0}))
            usage = {"output_tokens": count_words(piece) * events}
            await resp.write(event("message_delta", end | {"usage": usage}))
            await resp.write(event("message_stop", {}))
        except (ConnectionError, asyncio.CancelledError):
            self.cancelled_streams += 1
            raise
        else:
            self.completed_streams += 1
        finally:
            self.active_streams -= 1
        return resp

    async def stream(
        self, request: web.Request, model: str, message_id: str, text: str,
        tool: str | None, stop: str, prompt: int, output: int,
    ) -> web.StreamResponse:  # fmt: skip
        start = {
            "message": {
                "id": message_id, "type": "message", "role": "assistant", "model": model,
                "content": [], "stop_reason": None, "stop_sequence": None,
                "usage": usage_of(model, prompt, 1),
            }
        }  # fmt: skip
        head = [event("message_start", start), event("ping", {})]
        body = [
            event(
                "content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}
            )
        ]
        body += [
            event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": p}})
            for p in pieces(text)
        ]
        body.append(event("content_block_stop", {"index": 0}))
        if tool:
            block = {"type": "tool_use", "id": "toolu_fake1", "name": tool, "input": {}}
            body.append(event("content_block_start", {"index": 1, "content_block": block}))
            body += [
                event("content_block_delta", {"index": 1, "delta": {"type": "input_json_delta", "partial_json": TOOL_INPUT[i : i + 3]}})
                for i in range(0, len(TOOL_INPUT), 3)
            ]  # fmt: skip
            body.append(event("content_block_stop", {"index": 1}))
        usage = {"output_tokens": output}
        if model == "cache-usage":
            usage |= {
                "cache_creation_input_tokens": 50,
                "cache_read_input_tokens": 100,
                "input_tokens": prompt,
            }
        tail = [
            event(
                "message_delta",
                {"delta": {"stop_reason": stop, "stop_sequence": None}, "usage": usage},
            ),
            event("message_stop", {}),
        ]
        overloaded = event(
            "error", {"error": {"type": "overloaded_error", "message": "Overloaded"}}
        )
        resp = web.StreamResponse(
            status=200,
            headers={
                "content-type": "text/event-stream; charset=utf-8",
                "cache-control": "no-cache",
            },
        )
        await resp.prepare(request)
        self.active_streams += 1
        cancelled = False
        try:
            if model == "stream-error":
                for frame in [*head, *body[:3], overloaded]:
                    await resp.write(frame)
            elif model == "early-error":
                for frame in [head[0], overloaded]:
                    await resp.write(frame)
            elif model == "cut-stream":
                for frame in [*head, *body[:4]]:
                    await resp.write(frame)
                if request.transport is not None:
                    request.transport.close()
            elif model == "split-events":
                frames = [
                    f.replace(b"\n", b"\r\n") if i % 2 else f
                    for i, f in enumerate([*head, *body, *tail])
                ]
                data = b"".join(frames)
                for at in range(0, len(data), SPLIT_BYTES):
                    await resp.write(data[at : at + SPLIT_BYTES])
                    await asyncio.sleep(0.001)
            else:
                for frame in [*head, *body, *tail]:
                    await resp.write(frame)
        except (ConnectionError, asyncio.CancelledError):
            cancelled = True
            raise
        finally:
            self.active_streams -= 1
            if cancelled:
                self.cancelled_streams += 1
            else:
                self.completed_streams += 1
        return resp


class _StdinWatcher(asyncio.Protocol):
    def __init__(self, stop: asyncio.Event) -> None:
        self.stop = stop

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop.set()


async def serve(host: str, port: int, api_key: str | None) -> None:
    runner = web.AppRunner(
        FakeAnthropic(api_key).build_app(), handler_cancellation=True, access_log=None
    )
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    print(f"READY {runner.addresses[0][1]}", flush=True)
    loop, stop = asyncio.get_running_loop(), asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await loop.connect_read_pipe(lambda: _StdinWatcher(stop), sys.stdin)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake Anthropic upstream for Relay tests")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--api-key", default=None)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port, args.api_key))


def start_fake_anthropic(
    api_key: str | None = "sk-ant-test-upstream", host: str = "127.0.0.1"
) -> FakeUpstream:
    """Start the fake in a subprocess (it exits with this process) and return its handle."""
    command = [sys.executable, str(Path(__file__).resolve()), "--host", host, "--port", "0"]
    command += ["--api-key", api_key] if api_key is not None else []
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    lines: queue.Queue[bytes] = queue.Queue()
    stdout = process.stdout
    assert stdout is not None
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        line = lines.get(timeout=20).decode().strip()
    except queue.Empty:
        line = ""
    if not line.startswith("READY "):
        process.kill()
        process.wait()
        raise RuntimeError(f"fake anthropic failed to start: {line!r}")
    time.sleep(0)
    return FakeUpstream(process, host, int(line.split()[1]), api_key)


if __name__ == "__main__":
    main()
