"""A fake OpenAI upstream: a real aiohttp HTTP server on loopback speaking OpenAI's wire format.

Run it as its own process::

    python -m tests.fakes.openai_upstream --port 0 [--host 127.0.0.1] [--api-key KEY]

It prints ``READY <port>`` (and flushes) once listening. From tests use
:func:`start_fake_upstream` (a context manager / handle) or :func:`make_fake_upstream_fixture`.

Endpoints: ``POST /v1/chat/completions``, ``POST /v1/completions``, ``POST /v1/embeddings``,
``GET /v1/models``, and ``POST /v1/responses``, ``/v1/files``, ``/v1/images/generations``
(:mod:`tests.fakes.openai_responses`); any other path is recorded and answered 404; control endpoints (never recorded, never authenticated):
``GET /_fake/requests``, ``POST /_fake/reset`` (clears recorded requests, call counts and the
cancelled/completed counters), ``GET /_fake/stats``, ``GET /_fake/calls``.

Auth: with ``--api-key K`` every non-control request needs ``Authorization: Bearer K`` or
``Bearer client-key-<anything>``; otherwise 401 ``invalid_api_key`` whose message contains the
masked key echo ``sk-wr***ng``. Unauthorised requests are still recorded.

Behaviour is chosen by the request's ``model``:

* any other name (``gpt-4o-mini`` ...): content is ``"Echo: " + <text of last user message>``
  (chat; list-of-parts content contributes its text parts joined by one space) or
  ``"Echo: " + prompt`` (completions; a list of prompts gives one echo per prompt, each ``n``
  times). ``n`` is honoured. ``max_tokens``/``max_completion_tokens`` smaller than the reply's
  word count truncates it to that many words with ``finish_reason: "length"``.
* ``tools`` + ``tool_choice`` ``"required"`` or an object: one tool call ``call_1`` to the
  chosen function (the object's name, else the first tool) with arguments ``{"x": 1}``,
  content null, ``finish_reason: "tool_calls"``; streamed as deltas of index 0 (first delta:
  id/type/name/arguments ``""``, then the arguments in 3-character pieces).
* ``no-usage``: never sends usage (JSON or stream, even if asked).
* ``refusal`` (chat): the echo comes back as the message's ``refusal`` (content null);
  streamed as ``refusal`` deltas.
* ``error-400|401|404|429|500|503``: that status with an OpenAI error envelope
  (429 also sends ``retry-after: 7``; its message names the organisation ``org-fakeupstream``,
  as OpenAI's does). ``error-html``: 502 with an HTML page.
* ``not-json``: 200 ``application/json`` body ``this is not json``; streamed: one
  ``data: not json`` event and end of body (no ``[DONE]``).
* ``slow-<ms>``: sleep <ms> before the headers, then answer normally.
* ``big-<n>``: normal answer whose content is n lorem words (no echo).
* ``stall-mid-stream``: role chunk + 2 word chunks, then silence until the client goes away
  (or 300 s). Non-stream: no headers for 300 s.
* ``cut-stream``: role chunk + 3 word chunks, then the TCP connection is closed (incomplete
  chunked body, no ``[DONE]``). Non-stream: half the JSON body, then closed.
* ``stream-error``: role chunk + 2 word chunks, then a ``data: {"error": ...server_error...}``
  event and end of body (no ``[DONE]``). Non-stream: 500 server_error. ``stream-error-429``:
  the same with a rate-limit error naming the project ``proj_FakeUpstream0123``; non-stream:
  error-429's answer without ``retry-after``.
  (For these three the echo is padded with lorem words to at least 10 words.)
* ``gzip-pad-<MiB>`` / ``gzip-error-<MiB>`` (non-stream): a gzip-encoded body of <MiB> MiB of
  spaces, then a chat completion (200, content ``padded``) or a server error (500): valid JSON
  of that size once decompressed, a few KiB on the wire.
* ``long-stream``: 2,000 word chunks (2,000 lorem words), one every 10 ms; usage if asked.
* ``fault-<kind>-<n>[-<tag>]``: the first n calls with this exact model name fail (``all``:
  every call), later ones answer normally (as ``gpt-4o-mini``); the tag makes a name unique
  to a test. Kinds: an HTTP status (``400 401 403 404 422 429 500 502 503 504 529``; 429 sends
  ``retry-after: 1``), ``429q`` (429 with ``x-ratelimit-remaining-requests: 0`` and
  ``x-ratelimit-reset-requests: 50ms``, no ``retry-after``), ``ctx`` (400
  ``context_length_exceeded``), ``policy`` (400 ``content_policy_violation``), ``reset``
  (the connection is closed without an answer), ``stall`` (no headers until the client goes
  away), ``stallbody`` (stream: headers, then nothing), ``cut`` (stream: the role chunk and
  two words, then the connection drops; non-stream: half the body).
  ``GET /_fake/calls`` returns the calls per model name.
* ``trickle-<ms>[-<tag>]``: a normal answer, streamed with ``<ms>`` between events.
* ``flood-<events>-<bytes>[-<tag>]``: a stream of ``<events>`` content chunks of
  ``<bytes>`` characters each (:func:`flood_piece`, lorem words), as fast as the reader takes
  them, never with usage. Non-stream: the whole content in one answer, no usage.
* ``split-events``: a normal stream written 7 bytes at a time with 2 ms pauses, every odd
  event using ``\\r\\n`` line endings (UTF-8 characters of the echo may be split too).

Token arithmetic (words = ``len(text.split())``):

* chat ``prompt_tokens`` = sum over messages of (words in the message's text content + 3);
  tool definitions, tool_calls and names do not count.
* completions ``prompt_tokens`` = words in the prompt(s) (no per-message overhead).
* ``completion_tokens`` = sum over all choices of words in the choice's content, e.g.
  ``"Echo: hello world"`` = 3 per choice; a tool call counts words of ``{"x": 1}`` = 2.
* ``total_tokens`` = prompt + completion. Embeddings: ``prompt_tokens`` = ``total_tokens`` =
  words of each string input (or length of each token-id list).

Streams: ``data: <json>\\n\\n`` events; chat starts with a role chunk
(``delta: {"role": "assistant", "content": "", "refusal": null}``), then one chunk per word
(pieces keep their trailing whitespace so the concatenation is the content), a final chunk
with empty delta and the finish reason; if ``stream_options.include_usage`` is true every
chunk has ``"usage": null`` and a last chunk with ``choices: []`` carries the usage; then
``data: [DONE]``. Streams whose handler completed (including cut/stream-error) count as
``completed_streams``; streams ended by the peer going away count as ``cancelled_streams``.

Every response carries ``x-request-id: upstream-<n>`` (n counts every request the process
served, never reset; recorded requests carry it as ``request_id``), ``openai-processing-ms``
and ``x-ratelimit-remaining-requests: 99``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import queue
import re
import signal
import struct
import subprocess
import sys
import threading
import time
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.fakes.openai_responses import ResponsesApi

Json = dict[str, Any]

FINGERPRINT = "fp_fake0001"
LOREM = [
    "lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit", "sed", "do",
    "eiusmod", "tempor", "incididunt", "ut", "labore", "et", "dolore", "magna", "aliqua",
]  # fmt: skip
TOOL_ARGUMENTS = '{"x": 1}'
STALL_SECONDS = 300.0
LONG_STREAM_CHUNKS = 2000
LONG_STREAM_INTERVAL = 0.01
DISCONNECT_POLL = 0.05
PARTIAL_MIN_WORDS = 10
SPLIT_BYTES = 7
SLOW_RE = re.compile(r"slow-(\d+)")
FAULT_RE = re.compile(r"fault-([a-z0-9]+)-(\d+|all)(?:-[A-Za-z0-9_.]+)?")
TRICKLE_RE = re.compile(r"trickle-(\d+)(?:-[A-Za-z0-9_.]+)?")
FAULT_STATUSES = {"400", "401", "403", "404", "422", "429", "500", "502", "503", "504", "529"}
BIG_RE = re.compile(r"big-(\d+)")
GZIP_RE = re.compile(r"gzip-(pad|error)-(\d+)")
MIB = 1024 * 1024
FLOOD_RE = re.compile(r"flood-(\d+)-(\d+)(?:-[A-Za-z0-9_.]+)?")
DONE = b"data: [DONE]\n\n"
HTML_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
    "</body>\r\n</html>\r\n"
)


def envelope(message: str, type_: str, param: str | None = None, code: str | None = None) -> Json:
    """OpenAI's error envelope."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


INVALID_API_KEY = envelope(
    "Incorrect API key provided: sk-wr***ng. You can find your API key at "
    "https://platform.openai.com/account/api-keys.",
    "invalid_request_error",
    None,
    "invalid_api_key",
)
SERVER_ERROR = envelope(
    "The server had an error while processing your request. Sorry about that!", "server_error"
)
STREAM_ERROR = envelope("The server had an error while processing your request.", "server_error")
INVALID_JSON = envelope(
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
    "sent was not valid JSON. If you have trouble figuring out how to fix this, please contact "
    "us through our help center at help.openai.com.)",
    "invalid_request_error",
)

# OpenAI's rate-limit text names the account of the key used (its organisation and project).
RATE_LIMITED = envelope(
    "Rate limit reached for gpt-4o-mini in organization org-fakeupstream on "
    "requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 7s. "
    "Visit https://platform.openai.com/account/rate-limits to learn more.",
    "requests",
    None,
    "rate_limit_exceeded",
)
PROJECT_RATE_LIMITED = envelope(
    "Rate limit reached for gpt-4o-mini in project proj_FakeUpstream0123 on tokens per min "
    "(TPM): Limit 30000, Used 30000, Requested 12.",
    "tokens",
    None,
    "rate_limit_exceeded",
)


def scenario_error(model: str) -> tuple[int, Json, dict[str, str]] | None:
    """Status, envelope and extra headers for the ``error-*`` models, else None."""
    errors: dict[str, tuple[int, Json, dict[str, str]]] = {
        "error-400": (
            400,
            envelope(
                "Invalid 'messages': empty array. Expected an array with minimum length 1, "
                "but got an empty array instead.",
                "invalid_request_error",
                "messages",
                "empty_array",
            ),
            {},
        ),
        "error-401": (401, INVALID_API_KEY, {}),
        "error-404": (
            404,
            envelope(
                f"The model `{model}` does not exist or you do not have access to it.",
                "invalid_request_error",
                None,
                "model_not_found",
            ),
            {},
        ),
        "error-429": (429, RATE_LIMITED, {"retry-after": "7"}),
        "error-500": (500, SERVER_ERROR, {}),
        "error-503": (
            503,
            envelope("The engine is currently overloaded, please try again later.", "server_error"),
            {},
        ),
    }
    return errors.get(model)


_GZIPPED: dict[tuple[str, int], bytes] = {}
PADDED = {
    "id": "chatcmpl-padded",
    "object": "chat.completion",
    "created": 0,
    "model": "gzip-pad",
    "choices": [
        {
            "index": 0,
            "finish_reason": "stop",
            "message": {"role": "assistant", "content": "padded"},
        }
    ],
}


def gzipped_padding(kind: str, mib: int, payload: Json) -> bytes:
    """gzip of ``mib`` MiB of spaces followed by ``payload``: valid JSON once decompressed,
    a few KiB on the wire (a decompression bomb); made once per size."""
    key = (kind, mib)
    if key not in _GZIPPED:
        packer = zlib.compressobj(9, zlib.DEFLATED, 31)
        spaces = b" " * MIB
        parts = [packer.compress(spaces) for _ in range(mib)]
        parts += [packer.compress(dumps(payload)), packer.flush()]
        _GZIPPED[key] = b"".join(parts)
    return _GZIPPED[key]


def dumps(payload: Any) -> bytes:
    """Compact UTF-8 JSON, as OpenAI sends it."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON response."""
    return web.Response(
        status=status, body=dumps(payload), content_type="application/json", headers=headers
    )


def sse(event: Json) -> bytes:
    """One SSE event ``data: <json>\\n\\n``."""
    return b"data: " + dumps(event) + b"\n\n"


def content_text(content: Any) -> str:
    """Text of a message content: a string, or the text parts of a list joined by a space."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        ]
        return " ".join(texts)
    return ""


def count_words(text: str) -> int:
    """The fake's token count: whitespace-separated words."""
    return len(text.split())


def pieces(text: str) -> list[str]:
    """One piece per word, each keeping its trailing whitespace: ``"".join(pieces(t)) == t``."""
    return [p for p in re.split(r"(?<=\s)(?=\S)", text) if p]


def lorem(n: int) -> str:
    """n lorem words."""
    return " ".join(LOREM[i % len(LOREM)] for i in range(n))


def flood_piece(size: int) -> str:
    """The content of one ``flood-*`` chunk: ``size`` characters of lorem words, beginning with
    a space and ending with a letter, so that no token spans two pieces: the tokens of ``n``
    pieces are ``n`` times those of one."""
    if size < 2:
        return "x" * size
    text = lorem(size // 3 + 2)[: size - 1]
    return " " + (text[:-1] + "x" if text.endswith(" ") else text)


@dataclass
class Reply:
    """What to answer: per-choice (text, finish_reason), token counts, optional tool name."""

    choices: list[tuple[str, str]]
    prompt_tokens: int
    tool_name: str | None = None

    @property
    def completion_tokens(self) -> int:
        return sum(count_words(text) for text, _ in self.choices)

    def usage(self, detailed: bool) -> Json:
        usage: Json = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }
        if detailed:
            usage["prompt_tokens_details"] = {"cached_tokens": 0, "audio_tokens": 0}
            usage["completion_tokens_details"] = {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            }
        return usage


def reply_text(model: str, echo: str, body: Json) -> tuple[str, str]:
    """The content for ``model`` (echo, lorem for big/long) and its finish reason."""
    if m := BIG_RE.fullmatch(model):
        text = lorem(int(m[1]))
    elif model == "long-stream":
        text = lorem(LONG_STREAM_CHUNKS)
    elif model in ("stall-mid-stream", "cut-stream", "stream-error", "stream-error-429"):
        missing = PARTIAL_MIN_WORDS - count_words(echo)
        text = f"{echo} {lorem(missing)}" if missing > 0 else echo
    else:
        text = echo
    limit = body.get("max_completion_tokens")
    limit = body.get("max_tokens") if limit is None else limit
    if isinstance(limit, int) and not isinstance(limit, bool) and count_words(text) > limit >= 0:
        return "".join(pieces(text)[:limit]).rstrip(), "length"
    return text, "stop"


def choice_count(body: Json) -> int:
    """The request's ``n`` (1 unless a positive integer)."""
    n = body.get("n")
    return n if isinstance(n, int) and n > 0 else 1


def tool_call_name(body: Json) -> str | None:
    """Name of the function to call when tools are given and a call is forced, else None."""
    tools, choice = body.get("tools"), body.get("tool_choice")
    if not isinstance(tools, list) or not tools:
        return None
    if isinstance(choice, dict):
        forced = (choice.get("function") or {}).get("name") or choice.get("name")
        if isinstance(forced, str):
            return forced
    elif choice != "required":
        return None
    first = tools[0] if isinstance(tools[0], dict) else {}
    name = (first.get("function") or {}).get("name") or first.get("name")
    return name if isinstance(name, str) else "tool"


@dataclass
class StreamPlan:
    """Events of a stream: ``head`` (role chunks), ``body`` (one per piece), ``tail``."""

    head: list[Json]
    body: list[Json]
    tail: list[Json]


class FakeOpenAI:
    """The aiohttp application and its in-memory state (recordings, stream counters)."""

    def __init__(self, api_key: str | None) -> None:
        self.api_key = api_key
        self.recorded: list[Json] = []
        self.request_count = 0
        # Calls per model name since the last reset (the fault scenarios count on it).
        self.calls: dict[str, int] = {}
        self.cancelled_streams = 0
        self.completed_streams = 0
        self.active_streams = 0
        self.responses_api = ResponsesApi()

    def build_app(self) -> web.Application:
        """The aiohttp application serving the fake."""

        @web.middleware
        async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            return await self.middleware(request, handler)

        app = web.Application(middlewares=[middleware], client_max_size=64 * 1024 * 1024)
        app.on_response_prepare.append(self.on_prepare)
        app.router.add_post("/v1/chat/completions", self.chat_completions)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_post("/v1/embeddings", self.embeddings)
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/v1/responses", self.responses_api.responses)
        app.router.add_post("/v1/files", self.responses_api.files)
        app.router.add_post("/v1/images/generations", self.responses_api.images)
        app.router.add_get("/_fake/requests", self.get_requests)
        app.router.add_post("/_fake/reset", self.reset)
        app.router.add_get("/_fake/stats", self.stats)
        app.router.add_get("/_fake/calls", self.get_calls)
        return app

    # -- plumbing -------------------------------------------------------------------------

    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Number, record and authenticate requests; turn routing errors into envelopes."""
        self.request_count += 1
        request["rid"], request["t0"] = self.request_count, time.monotonic()
        if not request.path.startswith("/_fake/"):
            raw = await request.read()
            try:
                parsed = json.loads(raw) if raw else None
            except ValueError:
                parsed = None
            headers: dict[str, str] = {}
            for key, value in request.headers.items():
                k = key.lower()
                headers[k] = f"{headers[k]}, {value}" if k in headers else value
            self.recorded.append(
                {
                    "path": request.path,
                    "method": request.method,
                    "headers": headers,
                    "body": parsed,
                    "raw": raw.decode("latin-1"),
                    "request_id": f"upstream-{request['rid']}",
                }
            )
            if not self.authorized(request):
                return json_response(401, INVALID_API_KEY)
        try:
            return await handler(request)
        except web.HTTPNotFound:
            url = f"({request.method} {request.path})"
            return json_response(404, envelope(f"Invalid URL {url}", "invalid_request_error"))
        except web.HTTPMethodNotAllowed:
            url = f"({request.method} {request.path})"
            msg = f"Invalid method for URL {url}"
            return json_response(405, envelope(msg, "invalid_request_error"))

    def authorized(self, request: web.Request) -> bool:
        """Bearer auth against the configured key; ``client-key-*`` is always accepted."""
        if self.api_key is None:
            return True
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        return scheme.lower() == "bearer" and (
            token == self.api_key or token.startswith("client-key-")
        )

    async def on_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        """Add OpenAI-style headers to every response."""
        elapsed = time.monotonic() - request.get("t0", time.monotonic())
        response.headers["x-request-id"] = f"upstream-{request.get('rid', 0)}"
        response.headers["openai-processing-ms"] = str(int(elapsed * 1000))
        response.headers["x-ratelimit-remaining-requests"] = "99"
        response.headers["openai-organization"] = "org-of-this-key"

    async def parse_body(self, request: web.Request) -> Json | web.Response:
        """The JSON object body (with a string ``model``) or a 400 response."""
        try:
            body = json.loads(await request.read())
        except ValueError:
            return json_response(400, INVALID_JSON)
        if not isinstance(body, dict):
            msg = "Invalid request body: expected a JSON object."
            return json_response(400, envelope(msg, "invalid_request_error"))
        if not isinstance(body.get("model"), str) or not body["model"]:
            msg = "you must provide a model parameter"
            return json_response(400, envelope(msg, "invalid_request_error"))
        return body

    async def prelude(
        self, request: web.Request, model: str, stream: bool
    ) -> web.StreamResponse | None:
        """Scenarios decided before any content: errors, delays, non-stream oddities."""
        self.calls[model] = self.calls.get(model, 0) + 1
        if m := FAULT_RE.fullmatch(model):
            kind, limit = m[1], m[2]
            if limit == "all" or self.calls[model] <= int(limit):
                return await self.fault(request, kind, stream)
        if m := TRICKLE_RE.fullmatch(model):
            request["interval"] = int(m[1]) / 1000
        if error := scenario_error(model):
            status, payload, headers = error
            return json_response(status, payload, headers)
        if model == "error-html":
            return web.Response(status=502, text=HTML_502, content_type="text/html")
        if (m := GZIP_RE.fullmatch(model)) and not stream:
            kind = m[1]
            payload = SERVER_ERROR if kind == "error" else PADDED
            return web.Response(
                status=500 if kind == "error" else 200,
                body=gzipped_padding(kind, int(m[2]), payload),
                headers={"content-type": "application/json", "content-encoding": "gzip"},
            )
        if model == "redirect":
            return web.Response(status=302, headers={"location": "http://elsewhere.invalid/v1"})
        if model == "bad-utf8":
            body = b'{"choices":[{"index":0,"message":{"content":"\xff"}}]}'
            if stream:
                response = web.StreamResponse(headers={"content-type": "text/event-stream"})
                await response.prepare(request)
                await response.write(
                    b'data: {"choices":[{"index":0,"delta":{"content":"ok"}}]}\n\n'
                )
                await asyncio.sleep(0.3)  # a read of its own: the first event commits
                await response.write(
                    b'data: {"choices":[{"index":0,"delta":{"content":"\xff"}}]}\n\n'
                )
                return response
            return web.Response(status=200, body=body, content_type="application/json")
        if m := SLOW_RE.fullmatch(model):
            await asyncio.sleep(int(m[1]) / 1000)
        if stream:
            return None
        if model == "not-json":
            return web.Response(
                status=200, body=b"this is not json", content_type="application/json"
            )
        if model == "stall-mid-stream":
            await wait_for_disconnect(request, STALL_SECONDS)
            return json_response(500, SERVER_ERROR)
        if model == "stream-error":
            return json_response(500, SERVER_ERROR)
        if model == "stream-error-429":
            return json_response(429, RATE_LIMITED)
        return None

    async def fault(
        self, request: web.Request, kind: str, stream: bool
    ) -> web.StreamResponse | None:
        """An injected failure (``fault-<kind>-<n>`` models); None: decided later (streams)."""
        if kind in FAULT_STATUSES:
            status = int(kind)
            headers = {"retry-after": "1"} if status == 429 else {}
            message = f"injected failure {status}"
            return json_response(status, envelope(message, "server_error"), headers)
        if kind == "429q":  # no retry-after; OpenAI's reset headers, the request limit spent
            headers = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "50ms"}
            error = envelope("Rate limit reached", "requests", None, "rate_limit_exceeded")
            return json_response(429, error, headers)
        if kind == "ctx":
            msg = "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens."
            error = envelope(msg, "invalid_request_error", "messages", "context_length_exceeded")
            return json_response(400, error)
        if kind == "policy":
            msg = "Your request was rejected as a result of our safety system."
            error = envelope(msg, "invalid_request_error", None, "content_policy_violation")
            return json_response(400, error)
        if kind == "reset":  # the connection drops before any answer
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=500)
        if kind == "stall" or (kind == "stallbody" and not stream):  # no headers
            await wait_for_disconnect(request, STALL_SECONDS)
            return json_response(500, SERVER_ERROR)
        if kind in ("stallbody", "cut") and stream:
            request["mode"] = "stall-first" if kind == "stallbody" else "cut-early"
            return None
        if kind == "cut":
            request["mode"] = "cut-stream"
            return None
        raise ValueError(f"unknown fault {kind!r}")

    async def respond(self, request: web.Request, model: str, payload: Json) -> web.StreamResponse:
        """A non-stream JSON answer (``cut-stream``: half of it, then the connection drops)."""
        if request.get("mode", model) != "cut-stream":
            return json_response(200, payload)
        data = dumps(payload)
        resp = web.StreamResponse(status=200)
        resp.content_type, resp.content_length = "application/json", len(data)
        await resp.prepare(request)
        await resp.write(data[: len(data) // 2])
        if request.transport is not None:
            request.transport.close()
        return resp

    async def stream(
        self, request: web.Request, model: str, plan: StreamPlan
    ) -> web.StreamResponse:
        """Send ``plan`` as SSE according to the scenario; count completed/cancelled streams."""
        resp = web.StreamResponse(
            status=200, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)
        self.active_streams += 1
        cancelled = False
        model = request.get("mode", model)
        try:
            if model == "stall-first":  # headers, then nothing
                if await wait_for_disconnect(request, STALL_SECONDS):
                    raise ConnectionResetError("client went away during stall")
            elif model == "cut-early":  # role chunk and 2 words, then the connection drops
                for event in plan.head + plan.body[:2]:
                    await resp.write(sse(event))
                if request.transport is not None:
                    request.transport.close()
            elif model == "not-json":
                await resp.write(b"data: not json\n\n")
            elif model == "stall-mid-stream":
                for event in plan.head + plan.body[:2]:
                    await resp.write(sse(event))
                if await wait_for_disconnect(request, STALL_SECONDS):
                    raise ConnectionResetError("client went away during stall")
            elif model == "cut-stream":
                for event in plan.head + plan.body[:3]:
                    await resp.write(sse(event))
                if request.transport is not None:
                    request.transport.close()  # flushes what was written, then FIN
            elif model == "stream-error":
                for event in plan.head + plan.body[:2]:
                    await resp.write(sse(event))
                await resp.write(sse(STREAM_ERROR))
            elif model == "stream-error-429":
                for event in plan.head + plan.body[:2]:
                    await resp.write(sse(event))
                await resp.write(sse(PROJECT_RATE_LIMITED))
            elif model == "split-events":
                events = [sse(e) for e in plan.head + plan.body + plan.tail] + [DONE]
                events = [e.replace(b"\n", b"\r\n") if i % 2 else e for i, e in enumerate(events)]
                data = b"".join(events)
                for start in range(0, len(data), SPLIT_BYTES):
                    await resp.write(data[start : start + SPLIT_BYTES])
                    await asyncio.sleep(0.002)
            else:
                interval = LONG_STREAM_INTERVAL if model == "long-stream" else 0.0
                interval = request.get("interval", interval)
                events = plan.head + plan.body + plan.tail
                if not interval:
                    # One write: the whole answer arrives at once, however loaded the machine
                    # (written an event at a time, a busy gateway could read between them).
                    await resp.write(b"".join(map(sse, events)) + DONE)
                else:
                    for event in events:
                        await resp.write(sse(event))
                        await asyncio.sleep(interval)
                    await resp.write(DONE)
        except ConnectionError:
            cancelled = True
        except asyncio.CancelledError:
            cancelled = True
            raise
        finally:
            self.active_streams -= 1
            if cancelled:
                self.cancelled_streams += 1
            else:
                self.completed_streams += 1
        return resp

    # -- OpenAI endpoints -----------------------------------------------------------------

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/chat/completions``."""
        body = await self.parse_body(request)
        if isinstance(body, web.Response):
            return body
        messages = body.get("messages")
        if not isinstance(messages, list):
            msg = "Missing required parameter: 'messages'."
            error = envelope(msg, "invalid_request_error", "messages", "missing_required_parameter")
            return json_response(400, error)
        model, stream = body["model"], body.get("stream") is True
        if early := await self.prelude(request, model, stream):
            return early
        if m := FLOOD_RE.fullmatch(model):
            return await self.flood(request, model, stream, int(m[1]), int(m[2]))
        messages = [m for m in messages if isinstance(m, dict)]
        prompt_tokens = sum(count_words(content_text(m.get("content"))) + 3 for m in messages)
        n = choice_count(body)
        tool = tool_call_name(body)
        if tool is not None:
            reply = Reply([(TOOL_ARGUMENTS, "tool_calls")] * n, prompt_tokens, tool)
        else:
            users = [m for m in messages if m.get("role") == "user"]
            echo = "Echo: " + (content_text(users[-1].get("content")) if users else "")
            reply = Reply([reply_text(model, echo, body)] * n, prompt_tokens)
        usage = model != "no-usage"
        refuse = model == "refusal"
        base: Json = {
            "id": f"chatcmpl-fake{request['rid']:08d}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
        }
        if not stream:
            choices = []
            for index, (text, finish) in enumerate(reply.choices):
                message: Json = {"role": "assistant", "content": text, "refusal": None}
                if refuse:
                    message |= {"content": None, "refusal": text}
                if tool is not None:
                    message["content"] = None
                    message["tool_calls"] = [tool_call_obj(tool, text)]
                choices.append(
                    {"index": index, "message": message, "logprobs": None, "finish_reason": finish}
                )
            payload = {**base, "choices": choices}
            if usage:
                payload["usage"] = reply.usage(detailed=True)
            payload |= {"service_tier": "default", "system_fingerprint": FINGERPRINT}
            return await self.respond(request, model, payload)
        include_usage = usage and (body.get("stream_options") or {}).get("include_usage") is True
        base |= {
            "object": "chat.completion.chunk",
            "service_tier": "default",
            "system_fingerprint": FINGERPRINT,
        }

        def chunk(index: int, delta: Json, finish: str | None = None) -> Json:
            choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
            return {**base, "choices": [choice]} | ({"usage": None} if include_usage else {})

        plan = StreamPlan([], [], [])
        split: list[list[Json]] = []
        for index, (text, finish) in enumerate(reply.choices):
            if tool is None:
                delta: Json = {"role": "assistant", "content": "", "refusal": None}
                part = "refusal" if refuse else "content"
                split.append([{part: p} for p in pieces(text)])
            else:
                call = tool_call_obj(tool, "") | {"index": 0}
                delta = {"role": "assistant", "content": None, "tool_calls": [call]}
                split.append(
                    [
                        {"tool_calls": [{"index": 0, "function": {"arguments": text[i : i + 3]}}]}
                        for i in range(0, len(text), 3)
                    ]
                )
            plan.head.append(chunk(index, delta))
            plan.tail.append(chunk(index, {}, finish))
        for step in range(max(map(len, split), default=0)):
            plan.body += [chunk(i, s[step]) for i, s in enumerate(split) if step < len(s)]
        if include_usage:
            plan.tail.append({**base, "choices": [], "usage": reply.usage(detailed=True)})
        return await self.stream(request, model, plan)

    async def flood(
        self, request: web.Request, model: str, stream: bool, events: int, size: int
    ) -> web.StreamResponse:
        """``flood-<events>-<bytes>``: a long stream of equal content chunks, no usage. The
        chunk is encoded once, so the fake itself stays small whatever the length."""
        base: Json = {
            "id": f"chatcmpl-fake{request['rid']:08d}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }
        piece = flood_piece(size)

        def chunk(delta: Json, finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return sse({**base, "choices": [choice]})

        if not stream:
            message = {"role": "assistant", "content": piece * events, "refusal": None}
            choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
            return json_response(200, {**base, "object": "chat.completion", "choices": [choice]})
        resp = web.StreamResponse(
            status=200, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)
        self.active_streams += 1
        cancelled = False
        try:
            await resp.write(chunk({"role": "assistant", "content": ""}))
            event = chunk({"content": piece})
            for _ in range(events):
                await resp.write(event)
            await resp.write(chunk({}, "stop"))
            await resp.write(DONE)
        except ConnectionError:
            cancelled = True
        except asyncio.CancelledError:
            cancelled = True
            raise
        finally:
            self.active_streams -= 1
            if cancelled:
                self.cancelled_streams += 1
            else:
                self.completed_streams += 1
        return resp

    async def completions(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/completions`` (legacy text completions)."""
        body = await self.parse_body(request)
        if isinstance(body, web.Response):
            return body
        model, stream = body["model"], body.get("stream") is True
        if early := await self.prelude(request, model, stream):
            return early
        prompt = body.get("prompt", "")
        prompts = (
            [p if isinstance(p, str) else "" for p in prompt]
            if isinstance(prompt, list)
            else [prompt if isinstance(prompt, str) else ""]
        )
        n = choice_count(body)
        choices = [reply_text(model, "Echo: " + p, body) for p in prompts for _ in range(n)]
        reply = Reply(choices, sum(count_words(p) for p in prompts))
        usage = model != "no-usage"
        base: Json = {
            "id": f"cmpl-fake{request['rid']:08d}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": FINGERPRINT,
        }
        if not stream:
            payload = base | {
                "choices": [
                    {"text": text, "index": i, "logprobs": None, "finish_reason": finish}
                    for i, (text, finish) in enumerate(reply.choices)
                ]
            }
            if usage:
                payload["usage"] = reply.usage(detailed=False)
            return await self.respond(request, model, payload)
        include_usage = usage and (body.get("stream_options") or {}).get("include_usage") is True

        def chunk(index: int, text: str, finish: str | None = None) -> Json:
            choice = {"text": text, "index": index, "logprobs": None, "finish_reason": finish}
            return base | {"choices": [choice]} | ({"usage": None} if include_usage else {})

        split = [pieces(text) for text, _ in reply.choices]
        plan = StreamPlan([], [], [chunk(i, "", f) for i, (_, f) in enumerate(reply.choices)])
        for step in range(max(map(len, split), default=0)):
            plan.body += [chunk(i, s[step]) for i, s in enumerate(split) if step < len(s)]
        if include_usage:
            plan.tail.append(base | {"choices": [], "usage": reply.usage(detailed=False)})
        return await self.stream(request, model, plan)

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/embeddings``: 8 deterministic floats per input (sha256 of the input)."""
        body = await self.parse_body(request)
        if isinstance(body, web.Response):
            return body
        model = body["model"]
        if early := await self.prelude(request, model, stream=False):
            return early
        raw = body.get("input")
        if isinstance(raw, str) or (isinstance(raw, list) and raw and isinstance(raw[0], int)):
            inputs: list[Any] = [raw]
        elif isinstance(raw, list) and raw:
            inputs = raw
        else:
            msg = "Missing required parameter: 'input'."
            error = envelope(msg, "invalid_request_error", "input", "missing_required_parameter")
            return json_response(400, error)
        data, tokens = [], 0
        for index, item in enumerate(inputs):
            tokens += (
                count_words(item)
                if isinstance(item, str)
                else len(item)
                if isinstance(item, list)
                else 0
            )
            digest = hashlib.sha256(json.dumps(item).encode()).digest()
            vector = [(b - 128) / 128 for b in digest[:8]]  # exact in float32
            encoded: Any = vector
            if body.get("encoding_format") == "base64":
                encoded = base64.b64encode(struct.pack("<8f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        payload: Json = {"object": "list", "data": data, "model": model}
        if model != "no-usage":
            payload["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
        return await self.respond(request, model, payload)

    async def models(self, request: web.Request) -> web.Response:
        """``GET /v1/models``."""
        names = [
            "gpt-4o-mini", "gpt-4o", "text-embedding-3-small", "no-usage", "error-400",
            "error-401", "error-404", "error-429", "error-500", "error-503", "error-html",
            "not-json", "slow-300", "stall-mid-stream", "cut-stream", "stream-error",
            "long-stream", "split-events", "big-1000",
        ]  # fmt: skip
        data = [
            {"id": n, "object": "model", "created": 1700000000, "owned_by": "system"} for n in names
        ]
        return json_response(200, {"object": "list", "data": data})

    # -- control endpoints ----------------------------------------------------------------

    async def get_requests(self, request: web.Request) -> web.Response:
        """``GET /_fake/requests``: everything recorded since the last reset."""
        return json_response(200, self.recorded)

    async def reset(self, request: web.Request) -> web.Response:
        """``POST /_fake/reset``: clear recordings and the completed/cancelled counters."""
        self.recorded.clear()
        self.calls.clear()
        self.cancelled_streams = self.completed_streams = 0
        return json_response(200, {"ok": True})

    async def get_calls(self, request: web.Request) -> web.Response:
        """``GET /_fake/calls``: calls per model name since the last reset."""
        return json_response(200, self.calls)

    async def stats(self, request: web.Request) -> web.Response:
        """``GET /_fake/stats``."""
        return json_response(
            200,
            {
                "cancelled_streams": self.cancelled_streams,
                "completed_streams": self.completed_streams,
                "active_streams": self.active_streams,
            },
        )


def tool_call_obj(name: str, arguments: str) -> Json:
    """A ``tool_calls`` entry."""
    return {"id": "call_1", "type": "function", "function": {"name": name, "arguments": arguments}}


async def wait_for_disconnect(request: web.Request, seconds: float) -> bool:
    """Sleep up to ``seconds``, polling every 50 ms; True as soon as the peer is gone."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        transport = request.transport
        if transport is None or transport.is_closing():
            return True
        await asyncio.sleep(DISCONNECT_POLL)
    return False


class _StdinWatcher(asyncio.Protocol):
    """Sets ``stop`` when stdin reaches EOF, i.e. when the parent test process is gone."""

    def __init__(self, stop: asyncio.Event) -> None:
        self.stop = stop

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop.set()


async def serve(host: str, port: int, api_key: str | None, exit_on_stdin_eof: bool) -> None:
    """Run the fake until SIGTERM/SIGINT (or stdin EOF); print ``READY <port>`` when bound."""
    fake = FakeOpenAI(api_key)
    runner = web.AppRunner(
        fake.build_app(), handler_cancellation=True, shutdown_timeout=0.5, access_log=None
    )
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    print(f"READY {runner.addresses[0][1]}", flush=True)
    loop, stop = asyncio.get_running_loop(), asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if exit_on_stdin_eof:
        await loop.connect_read_pipe(lambda: _StdinWatcher(stop), sys.stdin)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description="Fake OpenAI upstream for Relay tests")
    parser.add_argument("--port", type=int, required=True, help="0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--api-key", default=None, help="require Authorization: Bearer KEY")
    parser.add_argument(
        "--exit-on-stdin-eof", action="store_true", help="exit when stdin closes (parent died)"
    )
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port, args.api_key, args.exit_on_stdin_eof))


# -- test-side helpers ------------------------------------------------------------------------

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class FakeUpstream:
    """Handle on a running fake upstream subprocess (also a context manager)."""

    def __init__(
        self, process: subprocess.Popen[bytes], host: str, port: int, api_key: str | None
    ) -> None:
        self.process, self.host, self.port, self.api_key = process, host, port, api_key
        netloc = f"[{host}]" if ":" in host else host
        self.url = f"http://{netloc}:{port}"
        self.base_url = f"{self.url}/v1"

    def _control(self, method: str, path: str) -> Any:
        data = b"" if method == "POST" else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        with _OPENER.open(req, timeout=10) as response:
            return json.loads(response.read())

    def requests(self) -> list[Json]:
        """Recorded requests: ``{path, method, headers, body, raw, request_id}`` dicts."""
        result: list[Json] = self._control("GET", "/_fake/requests")
        return result

    def reset(self) -> None:
        """Clear recorded requests and the completed/cancelled stream counters."""
        self._control("POST", "/_fake/reset")

    def calls(self, model: str | None = None) -> Any:
        """Calls per model name since the last reset, or the count of one model."""
        counts: dict[str, int] = self._control("GET", "/_fake/calls")
        return counts if model is None else counts.get(model, 0)

    def stats(self) -> dict[str, int]:
        """``{"cancelled_streams", "completed_streams", "active_streams"}``."""
        result: dict[str, int] = self._control("GET", "/_fake/stats")
        return result

    def wait_for_stats(
        self, predicate: Callable[[dict[str, int]], bool], timeout: float = 5.0
    ) -> dict[str, int]:
        """Poll :meth:`stats` until ``predicate`` holds; AssertionError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            current = self.stats()
            if predicate(current):
                return current
            if time.monotonic() > deadline:
                raise AssertionError(f"fake upstream stats never matched: {current}")
            time.sleep(0.02)

    def close(self) -> None:
        """Terminate the subprocess and wait for it (kill after 5 s)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()

    def __enter__(self) -> FakeUpstream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def start_fake_upstream(
    api_key: str | None = "sk-test-upstream",
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    startup_timeout: float = 20.0,
) -> FakeUpstream:
    """Start the fake in a subprocess, wait for ``READY <port>`` and return its handle.

    ``api_key=None`` disables auth. The child exits if this process dies (stdin EOF).
    """
    command = [sys.executable, str(Path(__file__).resolve()), "--host", host, "--port", str(port)]
    command += ["--exit-on-stdin-eof"] + (["--api-key", api_key] if api_key is not None else [])
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    lines: queue.Queue[bytes] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        line = lines.get(timeout=startup_timeout).decode().strip()
    except queue.Empty:
        line = ""
    if not line.startswith("READY "):
        process.kill()
        process.wait()
        raise RuntimeError(f"fake upstream failed to start (exit {process.returncode}): {line!r}")
    return FakeUpstream(process, host, int(line.split()[1]), api_key)


def make_fake_upstream_fixture(
    scope: str = "session", api_key: str | None = "sk-test-upstream", name: str | None = None
) -> Any:
    """A pytest fixture yielding a :class:`FakeUpstream`; in a conftest::

    fake_upstream = make_fake_upstream_fixture(scope="session")
    """
    import pytest  # only needed on the test side, not in the server process

    def fixture() -> Iterator[FakeUpstream]:
        with start_fake_upstream(api_key) as upstream:
            yield upstream

    return pytest.fixture(scope=scope, name=name)(fixture)  # type: ignore[call-overload]


if __name__ == "__main__":
    main()
