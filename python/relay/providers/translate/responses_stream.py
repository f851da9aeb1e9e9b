"""Chat completion chunks as a Responses event stream.

The provider's own mapper turns its stream into chat chunks (passed through from an OpenAI-shaped
vendor, translated from Anthropic or Bedrock); this mapper turns those chunks into Responses
events, numbered by the request's :class:`~relay.providers.translate.responses_answer.Draft`:

``response.created`` and ``response.in_progress`` first (held, like every frame, until the
first content: the commit point); text opens a message item (``response.output_item.added``,
``response.content_part.added``) whose pieces are ``response.output_text.delta`` events; each
tool call opens a ``function_call`` item whose argument pieces are
``response.function_call_arguments.delta`` events; the finish reason closes the open items
(``...done`` events). ``response.completed`` (or ``response.incomplete``) is written by the
dialect after the provider finished, with the usage the gateway settled.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import Struct

from relay.errors import StreamProtocolError
from relay.exchange import Exchange
from relay.providers.sse import new_decoder
from relay.providers.translate.common import encode
from relay.providers.translate.responses_answer import Draft, call_item, message_item, new_id
from relay.stage import StreamMapper, StreamStep
from relay.wire.openai import ChoiceProbe, FunctionProbe, ToolCallProbe


class _Chunk(Struct, frozen=True):
    choices: list[ChoiceProbe] = []


_CHUNK = msgspec.json.Decoder(_Chunk)


_HEADS: dict[str, bytes] = {}


def event(draft: Draft, kind: str, fields: bytes) -> bytes:
    """One numbered event: ``fields`` are the JSON members after ``type`` and the number."""
    return b"".join(event_parts(draft, kind, fields))


def event_parts(draft: Draft, kind: str, *fields: bytes) -> list[bytes]:
    """One numbered event as parts, joined with the rest of the read's frames: a field as long
    as the whole answer (the ``...done`` events) is not copied once more per event."""
    head = _HEADS.get(kind)
    if head is None:
        name = kind.encode()
        head = _HEADS[kind] = (
            b"event: " + name + b'\ndata: {"type":"' + name + b'","sequence_number":'
        )
    seq = draft.seq
    draft.seq = seq + 1
    return [head, str(seq).encode(), *fields, b"}\n\n"]


class Step:
    """One network read as Responses events (see :class:`relay.stage.StreamStep`)."""

    __slots__ = ("content", "done", "error", "out", "text", "usage")

    def __init__(self, inner: StreamStep, out: bytes, content: bool) -> None:
        self.out = out
        self.content = content
        self.done = inner.done
        self.usage = inner.usage
        self.error = inner.error
        self.text = inner.text


class EventStream:
    """Wraps the provider's chat stream mapper (see the module docstring)."""

    def __init__(self, ex: Exchange, draft: Draft, inner: StreamMapper) -> None:
        self._ex = ex
        self._draft = draft
        self._inner = inner
        self._decoder = new_decoder()
        self._started = False
        # The open message item: (output index, item id, text so far, the members of its
        # deltas before the text), or None.
        self._message: tuple[int, str, list[str], bytes] | None = None
        # Open function calls by chat tool call index: [output index, item id, call id,
        # name, argument pieces].
        self._calls: dict[int, list[Any]] = {}

    def feed(self, chunk: bytes) -> Step:
        try:
            inner = self._inner.feed(chunk)
        except StreamProtocolError as err:
            if isinstance(err.partial, StreamStep):
                err.partial = self._map(err.partial)
            raise
        return self._map(inner)

    def _map(self, inner: StreamStep) -> Step:
        out: list[bytes] = []
        content = False
        if not self._started:
            self._started = True
            draft, ex = self._draft, self._ex
            created = draft.response(ex, None, status="in_progress")
            out.append(event(draft, "response.created", b',"response":' + created))
            out.append(event(draft, "response.in_progress", b',"response":' + created))
        for sse in self._decoder.feed(inner.out) if inner.out else ():
            if sse.data == b"[DONE]":
                continue
            for choice in _CHUNK.decode(sse.data).choices:
                if choice.index != 0:
                    continue
                delta = choice.delta
                if delta is not None:
                    text = delta.content or delta.refusal
                    if text:
                        self._text(out, text)
                        content = True
                    for call in delta.tool_calls or ():
                        self._tool(out, call)
                        content = True
                if choice.finish_reason:
                    self._draft.finish = choice.finish_reason
                    self._close(out)
                    content = True
        if inner.done:
            self._close(out)
        return Step(inner, b"".join(out), content or inner.content)

    def _text(self, out: list[bytes], text: str) -> None:
        if self._message is None:
            self._close(out)
            index, item_id = len(self._draft.output), new_id("msg_")
            ids = b',"item_id":"' + item_id.encode() + b'","output_index":' + str(index).encode()
            self._message = (index, item_id, [], ids + b',"content_index":0,"delta":')
            self._draft.output.append(message_item(item_id, "", status="in_progress"))
            item = encode(message_item(item_id, "", status="in_progress"))
            where = b',"output_index":' + str(index).encode()
            out.append(event(self._draft, "response.output_item.added", where + b',"item":' + item))
            out.append(
                event(
                    self._draft,
                    "response.content_part.added",
                    b',"item_id":"' + item_id.encode() + b'"' + where + b',"content_index":0,'
                    b'"part":{"type":"output_text","text":"","annotations":[],"logprobs":[]}',
                )
            )
        texts, members = self._message[2], self._message[3]
        texts.append(text)
        delta = members + encode(text) + b',"logprobs":[]'
        out.append(event(self._draft, "response.output_text.delta", delta))

    def _tool(self, out: list[bytes], call: ToolCallProbe) -> None:
        function = call.function or FunctionProbe()
        open_call = self._calls.get(call.index)
        if open_call is None:
            if self._message is not None:
                self._close_message(out)
            index, item_id = len(self._draft.output), new_id("fc_")
            call_id, name = call.id or f"call_{call.index}", function.name or ""
            open_call = self._calls[call.index] = [index, item_id, call_id, name, []]
            item = call_item(item_id, call_id, name, "", status="in_progress")
            self._draft.output.append(item)
            out.append(
                event(
                    self._draft,
                    "response.output_item.added",
                    b',"output_index":' + str(index).encode() + b',"item":' + encode(item),
                )
            )
        if function.arguments:
            open_call[4].append(function.arguments)
            out.append(
                event(
                    self._draft,
                    "response.function_call_arguments.delta",
                    b',"item_id":"' + open_call[1].encode() + b'","output_index":'
                    + str(open_call[0]).encode() + b',"delta":' + encode(function.arguments),
                )
            )  # fmt: skip

    def _close(self, out: list[bytes]) -> None:
        if self._message is not None:
            self._close_message(out)
        for index, item_id, call_id, name, pieces in self._calls.values():
            arguments = "".join(pieces)
            where = b',"output_index":' + str(index).encode()
            out.append(
                event(
                    self._draft,
                    "response.function_call_arguments.done",
                    b',"item_id":"' + item_id.encode() + b'"' + where + b',"name":'
                    + encode(name) + b',"arguments":' + encode(arguments),
                )
            )  # fmt: skip
            item = call_item(item_id, call_id, name, arguments)
            self._draft.output[index] = item
            out.append(
                event(self._draft, "response.output_item.done", where + b',"item":' + encode(item))
            )
        self._calls = {}

    def _close_message(self, out: list[bytes]) -> None:
        """The three events that carry the whole text. The Response keeps the text (for
        ``response.completed`` and storage); it is encoded once, and the events share it."""
        assert self._message is not None
        index, item_id, texts, _ = self._message
        self._message = None
        draft = self._draft
        draft.output[index] = message_item(item_id, "".join(texts))
        texts.clear()
        text = encode(draft.output[index]["content"][0]["text"])
        where = b',"output_index":' + str(index).encode()
        ids = b',"item_id":"' + item_id.encode() + b'"' + where + b',"content_index":0'
        part, part_end = b'{"type":"output_text","text":', b',"annotations":[],"logprobs":[]}'
        out += event_parts(
            draft, "response.output_text.done", ids + b',"text":', text, b',"logprobs":[]'
        )
        out += event_parts(
            draft, "response.content_part.done", ids + b',"part":' + part, text, part_end
        )
        item = (
            where + b',"item":{"id":' + encode(item_id)
            + b',"type":"message","status":"completed","role":"assistant","content":[' + part
        )  # fmt: skip
        out += event_parts(draft, "response.output_item.done", item, text, part_end + b"]}")
