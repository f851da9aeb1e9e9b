"""Relay an OpenAI-shaped SSE stream event by event through the native decoder.

Before the first content event reaches the client nothing is committed: a failure is still an
ordinary JSON error (and, later, a free retry). After it, a failure ends the stream with an
explicit SSE error event and no ``[DONE]``, never a silent clean end.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import msgspec

from relay.egress.errors import sse_error_event
from relay.errors import (
    GatewayError,
    UpstreamProtocolError,
    UpstreamStatusError,
    UpstreamUnreachable,
)
from relay.exchange import Attempt, Exchange
from relay.native import SseDecoder, SseEvent, SseEventTooLarge
from relay.upstream import UpstreamResponse
from relay.wire.openai import probe_response, usage_from_wire

DONE = b"[DONE]"
DONE_FRAME = b"data: [DONE]\n\n"
MAX_EVENT_BYTES = 4 * 1024 * 1024


class Transport(Protocol):
    """The client side of a streamed response."""

    async def send_bytes(self, data: bytes) -> None:
        """Write bytes to the client."""
        ...


class ClientGone(Exception):
    """The client closed its connection; the upstream must be dropped."""


def frame(event: str | None, data: bytes) -> bytes:
    """Re-frame one event: raw data bytes, never re-encoded."""
    if b"\n" in data:
        data = data.replace(b"\n", b"\ndata: ")
    head = b"event: " + event.encode() + b"\n" if event is not None else b""
    return head + b"data: " + data + b"\n\n"


class StreamRelay:
    """One stream's relay. ``transport`` is set once the client response has started."""

    def __init__(
        self,
        ex: Exchange,
        attempt: Attempt,
        upstream: UpstreamResponse,
        open_client: Callable[[], Awaitable[Transport]],
        finish: Callable[[Exchange], None],
    ) -> None:
        self.ex = ex
        self.attempt = attempt
        self.upstream = upstream
        self.open_client = open_client
        self.finish = finish
        self.transport: Transport | None = None
        # Frames held back until the first content event (the commit point).
        self._held: list[bytes] = []
        self._content_seen = False

    async def run(self) -> None:
        """Relay until ``[DONE]``; raise a :class:`GatewayError` if nothing was committed yet."""
        ex, attempt = self.ex, self.attempt
        strip_usage = not ex.client_wants_usage
        decoder = SseDecoder(MAX_EVENT_BYTES)
        done = False
        try:
            async for chunk in self.upstream.chunks():
                out: list[bytes] = []
                try:
                    done = self._take(decoder.feed(chunk), out, strip_usage)
                finally:
                    # What arrived before a failure in the same read still goes out first.
                    if out:
                        await self._emit(out)
                if done:
                    break
        except SseEventTooLarge:
            await self._fail(
                UpstreamProtocolError(
                    f"provider '{attempt.provider}' sent a stream event over {MAX_EVENT_BYTES} bytes"
                )
            )
            return
        except GatewayError as err:
            await self._fail(err)
            return
        if not done:
            await self._fail(
                UpstreamUnreachable(
                    f"provider '{attempt.provider}' ended the stream before it was complete"
                )
            )
            return
        attempt.ended = time.perf_counter()
        self.finish(ex)
        tail = [DONE_FRAME]
        if ex.cost_usd is not None:
            tail.insert(0, f": x-relay-cost-usd {ex.cost_usd:.8f}\n\n".encode())
        self._content_seen = True
        await self._emit(tail)

    def _take(self, events: list[SseEvent], out: list[bytes], strip_usage: bool) -> bool:
        """Append the frames to relay to ``out``; True at ``[DONE]``."""
        ex = self.ex
        parts = ex.completion_parts
        if parts is None:
            parts = ex.completion_parts = []
        for event in events:
            data = event.data
            if data == DONE:
                return True
            try:
                probe = probe_response(data)
            except msgspec.DecodeError:
                raise UpstreamProtocolError(
                    f"provider '{self.attempt.provider}' sent a stream event that is not a JSON chunk"
                ) from None
            if probe.error is not None:
                raise _stream_error(self.attempt.provider, probe.error)
            if probe.usage is not None:
                ex.usage = usage_from_wire(probe.usage)
                if strip_usage and not probe.choices:
                    continue
            out.append(frame(event.event, data))
            for choice in probe.choices or ():
                if piece := choice.generated_text():
                    parts.append(piece)
                if not self._content_seen and choice.carries_content():
                    self._content_seen = True
        return False

    async def _emit(self, out: list[bytes]) -> None:
        """Send ``out``; before the commit point, hold it back until content arrives."""
        if self.transport is None:
            if not self._content_seen:
                self._held.extend(out)
                return
            self.attempt.ready_at = time.perf_counter()
            self.transport = await self._open()
            out = self._held + out
            self._held = []
        await self._send(b"".join(out))

    async def _open(self) -> Transport:
        try:
            return await self.open_client()
        except Exception as exc:
            raise ClientGone() from exc

    async def _send(self, data: bytes) -> None:
        transport = self.transport
        assert transport is not None
        try:
            await transport.send_bytes(data)
        except Exception as exc:
            self.ex.client_gone = True
            raise ClientGone() from exc

    async def _fail(self, err: GatewayError) -> None:
        """Before the commit point re-raise for a JSON error; after it, end with an error event."""
        self.upstream.close()
        if self.transport is None:
            raise err
        await self.end_with_error(err)

    async def abort(self, err: GatewayError) -> bool:
        """End the stream with ``err`` if the client response has started; else return False."""
        self.upstream.close()
        if self.transport is None:
            return False
        await self.end_with_error(err)
        return True

    async def end_with_error(self, err: GatewayError) -> None:
        """End a committed stream with an explicit error event (no ``[DONE]``)."""
        ex = self.ex
        ex.truncated = True
        ex.error_type = err.code or err.type
        self.finish(ex)
        await self._send(sse_error_event(err))


def _stream_error(provider: str, error: dict[str, object]) -> GatewayError:
    message = error.get("message")
    code = error.get("code")
    etype = error.get("type")
    return UpstreamStatusError(
        502,
        str(message) if message else f"provider '{provider}' reported an error mid-stream",
        error_type=etype if isinstance(etype, str) else None,
        code=code if isinstance(code, str) else None,
    )
