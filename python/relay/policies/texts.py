"""The texts of a request and of its answer, as every policy kind reads and rewrites them.

One walk per endpoint finds every text the caller wrote, in the order written: the system
prompt or instructions, message contents (strings and the text of content parts), tool-call
arguments, tool results; a legacy prompt and embeddings inputs (token ids are not text). The
walk runs on the body decoded untyped once per request (kept on the exchange while the body is
the same bytes), so several policies share one decode.

A rewrite re-encodes ``ex.body`` once and runs the dialect's ``parse`` again, so ``ex.request``
and ``ex.model`` (and what routing, the limits and the cache key read from them) describe the
rewritten request; a request no policy changes keeps its original bytes. Pass-through routes
are never walked (their bodies are not the gateway's to read).

The answer side: :func:`answer_texts` reads the generated text of a JSON answer and
:func:`event_text` of one stream event, both in the client's dialect.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import msgspec

from relay.exchange import Endpoint, Exchange
from relay.wire.openai import probe_response

__all__ = [
    "answer_texts",
    "edit_request",
    "event_text",
    "prompt_texts",
    "replace_body",
    "request_tree",
    "rewrite_texts",
]

# A place holding one text: the container (an object or an array) and the key or index.
Slot = tuple[Any, Any]

_decode = msgspec.json.decode
_encode = msgspec.json.encode


class _Tree:
    """The body decoded untyped, tied to the bytes it was decoded from."""

    __slots__ = ("body", "tree")

    def __init__(self, body: bytes, tree: Any) -> None:
        self.body = body
        self.tree = tree


# The key of the decoded body in ``ex.state``.
_TREE = object()


def request_tree(ex: Exchange) -> dict[str, Any]:
    """The request body decoded untyped (an object: the dialect already checked it), shared by
    the policies of this request. Read it; change it only through :func:`edit_request`."""
    state = ex.state
    if state is None:
        state = ex.state = {}
    held: _Tree | None = state.get(_TREE)
    if held is None or held.body is not ex.body:
        held = state[_TREE] = _Tree(ex.body, _decode(ex.body))
    tree: dict[str, Any] = held.tree
    return tree


def replace_body(ex: Exchange, body: bytes, tree: Any = None) -> None:
    """Make ``body`` the request (``tree``: its decoded form, when the caller has it) and
    parse it again, so every later stage sees the rewritten request."""
    ex.body = body
    state = ex.state
    if state is None:
        state = ex.state = {}
    if tree is None:
        state.pop(_TREE, None)
    else:
        state[_TREE] = _Tree(body, tree)
    assert ex.dialect is not None
    ex.dialect.parse(ex)


def edit_request(ex: Exchange, edit: Callable[[dict[str, Any]], bool]) -> bool:
    """Apply a structural edit to the decoded request (``edit`` returns whether it changed
    anything); when it did, re-encode the body once and parse it again."""
    tree = request_tree(ex)
    if not edit(tree):
        return False
    replace_body(ex, _encode(tree), tree)
    return True


def prompt_texts(ex: Exchange) -> list[str]:
    """Every text the caller wrote, in the order written (see the module's docstring)."""
    if ex.endpoint is Endpoint.PASSTHROUGH:
        return []
    return [container[key] for container, key in _slots(ex.endpoint, request_tree(ex))]


def rewrite_texts(ex: Exchange, fn: Callable[[str], str | None]) -> bool:
    """Replace each text of the request by ``fn(text)`` (None: unchanged). When any changed,
    the body is re-encoded once and parsed again; returns whether it was."""
    if ex.endpoint is Endpoint.PASSTHROUGH:
        return False
    tree = request_tree(ex)
    changed = False
    for container, key in _slots(ex.endpoint, tree):
        old = container[key]
        new = fn(old)
        if new is not None and new != old:
            container[key] = new
            changed = True
    if changed:
        replace_body(ex, _encode(tree), tree)
    return changed


# -- the request walks ------------------------------------------------------------------------


def _slots(endpoint: Endpoint, tree: Any) -> Iterator[Slot]:
    if not isinstance(tree, dict):
        return
    if endpoint is Endpoint.CHAT:
        yield from _chat(tree)
    elif endpoint is Endpoint.COMPLETIONS:
        yield from _strings(tree, "prompt")
    elif endpoint is Endpoint.EMBEDDINGS:
        yield from _strings(tree, "input")
    elif endpoint in (Endpoint.MESSAGES, Endpoint.COUNT_TOKENS):
        yield from _messages(tree)
    elif endpoint is Endpoint.RESPONSES:
        yield from _responses(tree)


def _text(container: Any, key: Any) -> Iterator[Slot]:
    if isinstance(container, dict) and isinstance(container.get(key), str):
        yield container, key


def _strings(tree: dict[str, Any], key: str) -> Iterator[Slot]:
    """A string, or the strings of an array (token ids are not text)."""
    value = tree.get(key)
    if isinstance(value, str):
        yield tree, key
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, str):
                yield value, i


def _parts(container: dict[str, Any], key: str) -> Iterator[Slot]:
    """A content string, or the ``text`` of each part of a content array."""
    value = container.get(key)
    if isinstance(value, str):
        yield container, key
    elif isinstance(value, list):
        for part in value:
            yield from _text(part, "text")


def _chat(tree: dict[str, Any]) -> Iterator[Slot]:
    messages = tree.get("messages")
    for message in messages if isinstance(messages, list) else ():
        if not isinstance(message, dict):
            continue
        yield from _parts(message, "content")
        calls = message.get("tool_calls")
        for call in calls if isinstance(calls, list) else ():
            if isinstance(call, dict):
                yield from _text(call.get("function"), "arguments")
        yield from _text(message.get("function_call"), "arguments")


def _messages(tree: dict[str, Any]) -> Iterator[Slot]:
    yield from _blocks(tree, "system")
    messages = tree.get("messages")
    for message in messages if isinstance(messages, list) else ():
        if isinstance(message, dict):
            yield from _blocks(message, "content")


def _blocks(container: dict[str, Any], key: str) -> Iterator[Slot]:
    """Anthropic content: a string, or blocks (text, tool use input, tool results)."""
    value = container.get(key)
    if isinstance(value, str):
        yield container, key
        return
    for block in value if isinstance(value, list) else ():
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            yield from _text(block, "text")
        elif kind in ("tool_use", "server_tool_use"):
            yield from _leaves(block, "input")
        elif kind == "tool_result":
            yield from _blocks(block, "content")


def _leaves(container: Any, key: Any) -> Iterator[Slot]:
    """Every string inside a JSON value (a tool's input object), depth first, in order."""
    stack: list[Slot] = [(container, key)]
    while stack:
        holder, at = stack.pop()
        value = holder[at]
        if isinstance(value, str):
            yield holder, at
        elif isinstance(value, dict):
            stack.extend((value, k) for k in reversed(list(value)))
        elif isinstance(value, list):
            stack.extend((value, i) for i in reversed(range(len(value))))


def _responses(tree: dict[str, Any]) -> Iterator[Slot]:
    yield from _text(tree, "instructions")
    value = tree.get("input")
    if isinstance(value, str):
        yield tree, "input"
        return
    for item in value if isinstance(value, list) else ():
        if not isinstance(item, dict):
            continue
        kind = item.get("type", "message")
        if kind == "message":
            yield from _parts(item, "content")
        elif kind == "function_call":
            yield from _text(item, "arguments")
        elif kind == "custom_tool_call":
            yield from _text(item, "input")
        elif kind in ("function_call_output", "custom_tool_call_output"):
            yield from _parts(item, "output")


# -- the answer side --------------------------------------------------------------------------


class _AnthropicBlock(msgspec.Struct):
    type: str = ""
    text: str | None = None
    input: Any = None


class _AnthropicAnswer(msgspec.Struct):
    content: list[_AnthropicBlock] | None = None


class _AnthropicDelta(msgspec.Struct):
    text: str | None = None
    partial_json: str | None = None
    thinking: str | None = None


class _AnthropicEvent(msgspec.Struct):
    delta: _AnthropicDelta | None = None


class _ResponsesPart(msgspec.Struct):
    text: str | None = None
    refusal: str | None = None


class _ResponsesItem(msgspec.Struct):
    type: str = ""
    content: list[_ResponsesPart] | None = None
    arguments: str | None = None


class _ResponsesAnswer(msgspec.Struct):
    output: list[_ResponsesItem] | None = None


class _ResponsesEvent(msgspec.Struct):
    type: str = ""
    delta: str | None = None


class _Function(msgspec.Struct):
    arguments: str | None = None


class _ToolCall(msgspec.Struct):
    function: _Function | None = None


class _ChatDelta(msgspec.Struct):
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[_ToolCall] | None = None


class _ChunkChoice(msgspec.Struct):
    delta: _ChatDelta | None = None
    text: str | None = None


class _Chunk(msgspec.Struct):
    """What one OpenAI chunk adds (chat: content, refusal, tool-call arguments; legacy
    completions: text); decoded alone, the rest of the chunk skipped unread."""

    choices: list[_ChunkChoice] | None = None


_CHUNK = msgspec.json.Decoder(_Chunk)
_ANTHROPIC_ANSWER = msgspec.json.Decoder(_AnthropicAnswer)
_ANTHROPIC_EVENT = msgspec.json.Decoder(_AnthropicEvent)
_RESPONSES_ANSWER = msgspec.json.Decoder(_ResponsesAnswer)
_RESPONSES_EVENT = msgspec.json.Decoder(_ResponsesEvent)


def answer_texts(ex: Exchange, body: bytes) -> list[str]:
    """The generated texts of a JSON answer in the client's dialect: each choice's content,
    refusal and tool calls (OpenAI), text blocks and tool inputs (Anthropic), output text and
    function-call arguments (Responses). Embeddings have none; an unreadable body has none."""
    endpoint = ex.endpoint
    try:
        if endpoint in (Endpoint.CHAT, Endpoint.COMPLETIONS):
            choices = probe_response(body).choices or ()
            return [text for c in choices if (text := c.generated_text())]
        if endpoint is Endpoint.MESSAGES:
            blocks = _ANTHROPIC_ANSWER.decode(body).content or ()
            return [
                b.text if b.text is not None else _encode(b.input).decode()
                for b in blocks
                if b.text is not None or b.input is not None
            ]
        if endpoint is Endpoint.RESPONSES:
            texts: list[str] = []
            for item in _RESPONSES_ANSWER.decode(body).output or ():
                for part in item.content or ():
                    texts.extend(t for t in (part.text, part.refusal) if t)
                if item.arguments:
                    texts.append(item.arguments)
            return texts
    except (msgspec.DecodeError, UnicodeDecodeError):
        return []
    return []


def event_text(ex: Exchange, event: bytes) -> str:
    """The text one stream event (an SSE frame in the client's dialect) adds to the answer;
    "" for events that add none (starts, stops, usage, the terminator)."""
    data = _data_of(event)
    if not data or data == b"[DONE]":
        return ""
    try:
        endpoint = ex.endpoint
        if endpoint in (Endpoint.CHAT, Endpoint.COMPLETIONS):
            return _chunk_text(data)
        if endpoint is Endpoint.MESSAGES:
            delta = _ANTHROPIC_EVENT.decode(data).delta
            if delta is None:
                return ""
            return (delta.text or "") + (delta.partial_json or "") + (delta.thinking or "")
        if endpoint is Endpoint.RESPONSES:
            probe = _RESPONSES_EVENT.decode(data)
            return probe.delta or "" if probe.type.endswith(".delta") else ""
    except (msgspec.DecodeError, UnicodeDecodeError):
        return ""
    return ""


def _chunk_text(data: bytes) -> str:
    try:
        choices = _CHUNK.decode(data).choices
    except msgspec.ValidationError:  # a vendor's own shape: read as the relay reads it
        return "".join(c.generated_text() for c in probe_response(data).choices or ())
    if not choices:
        return ""
    parts = []
    for choice in choices:
        if choice.text:
            parts.append(choice.text)
        delta = choice.delta
        if delta is None:
            continue
        if delta.content:
            parts.append(delta.content)
        if delta.refusal:
            parts.append(delta.refusal)
        for call in delta.tool_calls or ():
            if call.function is not None and call.function.arguments:
                parts.append(call.function.arguments)
    return parts[0] if len(parts) == 1 else "".join(parts)


def _data_of(event: bytes) -> bytes:
    """The ``data:`` of one SSE frame (its lines joined, as SSE defines)."""
    if event.startswith(b"data: ") and event.find(b"\n", 6) == len(event) - 2:
        return event[6:-2]
    lines = [
        line[5:].removeprefix(b" ")
        for line in event.rstrip(b"\n").split(b"\n")
        if line.startswith(b"data:")
    ]
    return b"\n".join(lines)
