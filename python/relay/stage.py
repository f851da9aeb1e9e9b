"""The contracts between the composition root and the parts it lists.

Stages run in order on the way in and may answer instead of passing on; the attempt loop sends
the request to the deployments routing planned; stream hooks see every read of a stream on the
way back; taps run once when the exchange is over. None of them import each other: ``app.py``
wires them together through these contracts.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from relay.errors import GatewayError
from relay.exchange import Exchange


@dataclass(slots=True, frozen=True)
class Reply:
    """A complete answer a stage gives instead of passing the request on (a cache hit, say).

    ``body`` is a JSON answer; ``stream``, when set, is a streamed answer: frames already in the
    client's dialect, sent as they come. ``headers`` are the gateway's own (content type and
    ``x-request-id`` are added by egress).
    """

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    stream: AsyncIterable[bytes] | None = None


class UpstreamResponse(Protocol):
    """A provider's answer as the stages see it, whether it came over HTTP or not."""

    status: int
    headers: Mapping[str, str]

    async def read(self) -> bytes:
        """The whole body."""
        ...

    def chunks(self) -> AsyncGenerator[bytes, None]:
        """The body as it arrives, in whatever pieces the network delivers."""
        ...

    def close(self) -> None:
        """Abort: drop the connection so the provider stops generating."""
        ...


class Transport(Protocol):
    """The client side of a streamed response."""

    async def send_bytes(self, data: bytes) -> None:
        """Write bytes to the client."""
        ...


class Gate(Protocol):
    """A check on the headers alone, before the body is read (who is calling)."""

    def admit(self, ex: Exchange) -> None:
        """Raise a :class:`~relay.errors.GatewayError` to refuse the request."""
        ...


class Stage(Protocol):
    """One step on the way in. Raise a :class:`~relay.errors.GatewayError` to refuse."""

    async def __call__(self, ex: Exchange) -> Reply | None:
        """Pass the exchange on (return None) or answer it (return a :class:`Reply`)."""
        ...


class Tap(Protocol):
    """Observes every finished exchange: metrics, ledger, cache writes. Must not block."""

    def on_finish(self, ex: Exchange) -> None:
        """Called once per exchange, after the last byte was handed to the client."""
        ...


@runtime_checkable
class StreamStep(Protocol):
    """What one network read of a stream held, mapped to the client's dialect."""

    @property
    def out(self) -> bytes:
        """Frames for the client, in order."""
        ...

    @property
    def content(self) -> bool:
        """A frame carries content the client must see (the commit point)."""
        ...

    @property
    def done(self) -> bool:
        """The stream's terminal event arrived."""
        ...

    @property
    def usage(self) -> tuple[int, int, int] | tuple[int, int, int, int] | None:
        """(prompt, completion, cached[, cache_write]) tokens, when this read reported usage."""
        ...

    @property
    def error(self) -> bytes | None:
        """The provider's mid-stream error (raw JSON); ``out`` holds what came before it."""
        ...

    @property
    def text(self) -> str:
        """Generated text added by this read."""
        ...


class Step:
    """A :class:`StreamStep` built by a mapper written in Python (the native scanner returns
    its own): fill what the read held."""

    __slots__ = ("content", "done", "error", "out", "text", "usage")

    def __init__(self) -> None:
        self.out = b""
        self.content = False
        self.done = False
        self.usage: tuple[int, int, int] | tuple[int, int, int, int] | None = None
        self.error: bytes | None = None
        self.text = ""


class StreamMapper(Protocol):
    """Turns a provider's stream, read by read, into the client's dialect (one per attempt)."""

    def feed(self, chunk: bytes) -> StreamStep:
        """Map one network read; raise a :class:`~relay.errors.GatewayError` on bad bytes."""
        ...

    def text(self) -> str:
        """All generated text so far (for local token counting)."""
        ...


class StreamHook(Protocol):
    """Observes or transforms a stream, read by read (cache recording, output guardrails,
    placeholder restoration). A hook that raises ends the stream with the error event."""

    def on_step(self, ex: Exchange, step: StreamStep, out: bytes) -> bytes:
        """Return the frames to send for this read: ``out`` itself to observe, else new bytes."""
        ...


class Relay(Protocol):
    """One attempt's stream on its way to the client (built by the stream stage)."""

    @property
    def committed(self) -> bool:
        """The client response has started."""
        ...

    @property
    def failure(self) -> GatewayError | None:
        """The error that ended the stream after the commit point (None: it completed)."""
        ...

    async def run(self) -> None:
        """Relay to the end; raise a GatewayError only while nothing is committed."""
        ...

    async def abort(self, err: Exception) -> bool:
        """End a started stream with ``err``; False when nothing was started."""
        ...
