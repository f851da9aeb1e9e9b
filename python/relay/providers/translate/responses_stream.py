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

from relay import stage
from relay.errors import StreamProtocolError
from relay.exchange import Exchange
from relay.native import SseEvent
from relay.providers.sse import SseMapper
from relay.providers.translate.common import encode
from relay.providers.translate.responses_answer import Draft, call_item, message_item, new_id
from relay.stage import StreamMapper, StreamStep
from relay.wire.openai import ChoiceProbe, FunctionProbe, ToolCallProbe
from relay.wire.sse import frame, frame_parts


class _Chunk(Struct, frozen=True):
    choices: list[ChoiceProbe] = []


_CHUNK = msgspec.json.Decoder(_Chunk)


# Per event type: its name, and the start of its data (its type, then the number's key).
_HEADS: dict[str, tuple[bytes, bytes]] = {}


def event(draft: Draft, kind: str, fields: bytes) -> bytes:
    """One numbered event: ``fields`` are the JSON members after ``type`` and the number."""
    name, head = _HEADS.get(kind) or _head(kind)
    seq = draft.seq
    draft.seq = seq + 1
    return frame(name, b"".join((head, str(seq).encode(), fields, b"}")))


def event_parts(draft: Draft, kind: str, *fields: bytes) -> list[bytes]:
    """One numbered event as parts, joined with the rest of the read's frames: a field as long
    as the whole answer (the ``...done`` events) is not copied once more per event."""
    name, head = _HEADS.get(kind) or _head(kind)
    seq = draft.seq
    draft.seq = seq + 1
    return frame_parts(name, head, str(seq).encode(), *fields, b"}")


def _head(kind: str) -> tuple[bytes, bytes]:
    name = kind.encode()
    head = _HEADS[kind] = (name, b'{"type":"' + name + b'","sequence_number":')
    return head


_DELTA, _DELTA_HEAD = _head("response.output_text.delta")
_DELTA_END = b',"logprobs":[]}'


class Step(stage.Step):
    """One network read as Responses events: the provider's chat step, whose frames are
    mapped (see :class:`relay.stage.StreamStep`)."""

    __slots__ = ()

    def __init__(self, inner: StreamStep) -> None:
        self.out = b""
        self.content = inner.content
        self.done = inner.done
        self.usage = inner.usage
        self.error = inner.error
        self.text = inner.text


class EventStream(SseMapper):
    """Wraps the provider's chat stream mapper (see the module docstring)."""

    __slots__ = ("_calls", "_draft", "_ex", "_inner", "_message", "_started")
    expected = "a chat chunk"

    def __init__(self, ex: Exchange, draft: Draft, inner: StreamMapper, provider: str) -> None:
        super().__init__(provider)
        self._ex = ex
        self._draft = draft
        self._inner = inner
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
        """The provider's chat frames (the inner mapper's, valid JSON) as Responses events."""
        out: list[bytes] = []
        if not self._started:
            self._started = True
            draft, ex = self._draft, self._ex
            created = draft.response(ex, None, status="in_progress")
            out.append(event(draft, "response.created", b',"response":' + created))
            out.append(event(draft, "response.in_progress", b',"response":' + created))
        step = Step(inner)
        if inner.out:
            self.map_events(self._decoder.feed(inner.out), step, out)
        if inner.done:
            self._close(out)
        step.out = b"".join(out)
        return step

    def on_event(self, sse: SseEvent, step: stage.Step, out: list[bytes]) -> bool:
        data = sse.data
        if data == b"[DONE]":
            return False
        for choice in _CHUNK.decode(data).choices:
            if choice.index != 0:
                continue
            delta = choice.delta
            if delta is not None:
                text = delta.content or delta.refusal
                if text:  # the bulk of a stream: one delta event of the open message
                    message = self._message or self._open_message(out)
                    message[2].append(text)
                    draft = self._draft
                    seq = draft.seq  # numbered as by event(), written here: the hot path
                    draft.seq = seq + 1
                    seq_ = str(seq).encode()
                    data = b"".join((_DELTA_HEAD, seq_, message[3], encode(text), _DELTA_END))
                    out.append(frame(_DELTA, data))
                    step.content = True
                for call in delta.tool_calls or ():
                    self._tool(out, call)
                    step.content = True
            if choice.finish_reason:
                self._draft.finish = choice.finish_reason
                self._close(out)
                step.content = True
        return False

    def _open_message(self, out: list[bytes]) -> tuple[int, str, list[str], bytes]:
        """Close the open items, open a message item: its events, and the item."""
        self._close(out)
        index, item_id = len(self._draft.output), new_id("msg_")
        ids = b',"item_id":"' + item_id.encode() + b'","output_index":' + str(index).encode()
        message = self._message = (index, item_id, [], ids + b',"content_index":0,"delta":')
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
        return message

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
