"""The contracts between the composition root and the parts it lists.

Gates check the headers before the body is read; stages run in order on the way in and may
answer instead of passing on; the attempt loop sends the request to the deployments routing
planned; answer hooks see a JSON answer and stream hooks every event of a stream on the way
back; taps run once when the exchange is over, and settlers after them, awaited, off the
client's critical path. The inbound API is a :class:`Dialect`. None of the parts import each
other: ``app.py`` wires them together through these contracts.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

from relay.config.model import ProviderConfig, Timeouts
from relay.errors import GatewayError
from relay.exchange import Attempt, Endpoint, Exchange
from relay.wire.usage import Usage


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

    def release(self) -> None:
        """The stream's end event was read: the connection may be kept for the next call
        once the rest of the body arrives (soon), else it is dropped as by ``close``."""
        ...


@dataclass(slots=True, frozen=True)
class Outbound:
    """A request a provider adapter built; the attempt loop sends it, under the timeouts the
    policy chose for the attempt (the model's, the request's ``x-relay-timeout``).

    ``url_encoded``: send the URL exactly as given, its percent-escapes untouched (a request
    signed with AWS SigV4 must reach the server as it was signed).
    """

    url: str
    headers: Mapping[str, str]
    body: bytes
    url_encoded: bool = False


class Provider(Protocol):
    """A provider adapter as the attempt loop and pass-through use it: it builds requests and
    maps answers; it never sends (``providers/base.py`` has the shared implementation)."""

    name: str
    kind: ClassVar[str]
    config: ProviderConfig

    def check(self, ex: Exchange) -> None:
        """Refuse, before any network call, a request this provider cannot serve."""
        ...

    async def prepare(self, ex: Exchange, attempt: Attempt) -> Outbound | UpstreamResponse:
        """The request to send for ``attempt``, or an answer made in process (the ``echo``
        kind, a count of tokens done locally)."""
        ...

    def map_json(self, ex: Exchange, attempt: Attempt, body: bytes) -> bytes:
        """The client's body from a successful JSON answer; fills the attempt's usage."""
        ...

    def stream_mapper(self, ex: Exchange, attempt: Attempt) -> StreamMapper:
        """A fresh mapper for one streamed answer."""
        ...

    def stream_error_for(self, attempt: Attempt) -> Callable[[bytes], GatewayError]:
        """The error a provider reported in the middle of ``attempt``'s stream."""
        ...

    def answer_error(
        self, attempt: Attempt, status: int, body: bytes, headers: Mapping[str, str]
    ) -> GatewayError:
        """A non-2xx answer as the client may see it."""
        ...

    def passthrough(self, ex: Exchange, attempt: Attempt) -> tuple[str, dict[str, str]] | None:
        """For a pass-through route: the API root and the authenticating headers (None: this
        provider takes no other routes)."""
        ...


def timeouts_of(provider: Provider, attempt: Attempt) -> Timeouts:
    """What ``attempt`` runs under: the policy's choice, else the provider's own."""
    return attempt.timeouts or provider.config.timeouts


class Transport(Protocol):
    """The client side of a streamed response."""

    async def send_bytes(self, data: bytes) -> None:
        """Write bytes to the client."""
        ...


class Gate(Protocol):
    """A check on the headers alone, before the body is read (who is calling)."""

    def admit(self, ex: Exchange) -> Awaitable[None] | None:
        """Raise a :class:`~relay.errors.GatewayError` to refuse the request. Decided from
        memory, return None; when the decision needs I/O (a key not in memory, looked up in
        the database), return an awaitable that decides (raises or not): it is awaited before
        the body is read. Synchronous by default, so the common case costs no coroutine."""
        ...


class Stage(Protocol):
    """One step on the way in. Raise a :class:`~relay.errors.GatewayError` to refuse."""

    async def __call__(self, ex: Exchange) -> Reply | None:
        """Pass the exchange on (return None) or answer it (return a :class:`Reply`)."""
        ...


class Tap(Protocol):
    """Observes every finished exchange: metrics, the ledger. Cheap and synchronous: it must
    not block (queue what needs I/O, or be a :class:`Settler`). A tap that only records is
    listed among ``app.py``'s batched taps and sees exchanges a few at a time, shortly after
    they end (:mod:`relay.handlers.batched`); it reads times from the exchange, not the clock."""

    def on_finish(self, ex: Exchange) -> None:
        """Called once per exchange, after the last byte was handed to the client."""
        ...


class Settler(Protocol):
    """Work that needs I/O once an exchange is over: settling a reservation in Redis, writing
    a cache entry. Awaited after the last byte and after the taps, so the client never waits
    for it; every settler of an exchange together is bounded by ``server.settle_timeout_s``."""

    async def settle(self, ex: Exchange) -> None:
        """Called once per exchange; an exception is logged and does not reach the client."""
        ...


class AnswerHook(Protocol):
    """Observes or transforms a JSON answer before it is written (placeholder restoration,
    output guardrails, cache recording). A hook that raises a
    :class:`~relay.errors.GatewayError` answers with that error instead."""

    def on_answer(self, ex: Exchange, body: bytes) -> bytes:
        """Return the body to send: ``body`` itself to observe, else new bytes."""
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
        """Generated text added by this read (content, refusals, tool names and arguments),
        for local token counting."""
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
        """Map one network read; raise a :class:`~relay.errors.GatewayError` on bad bytes.
        The step's ``text`` is what this read generated: the relay counts it as it arrives,
        so a mapper keeps no text of its own beyond what its dialect needs."""
        ...


class StreamHook(Protocol):
    """Observes or transforms a stream event by event, in the client's dialect (cache
    recording, output guardrails, placeholder restoration). A hook that raises ends the stream
    with the dialect's error event. Per-request state goes in ``ex.state_of(self, make)``.

    An event is one SSE frame as the client will receive it (``event:``/``data:`` lines and
    the blank line that ends it); the dialect's own end frames (terminator, locally counted
    usage, cost comment) are not events. Hooks run in order, each on what the one before
    returned.
    """

    def on_event(self, ex: Exchange, event: bytes) -> bytes:
        """The bytes to send for ``event``: ``event`` itself to observe, new frames to
        transform, or ``b""`` to hold it back (then send it later, or from :meth:`on_end`)."""
        ...

    def on_end(self, ex: Exchange) -> bytes:
        """The stream ended (completed or cut): frames still held, sent before the end or
        error frames; ``b""`` when none."""
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


class Dialect(Protocol):
    """One inbound API operation (OpenAI chat, Anthropic messages, ...).

    ``wire`` names the format family; a provider that speaks the same family passes bytes
    through untouched, any other translates. Errors are rendered here and nowhere else.
    """

    wire: ClassVar[str]
    endpoint: Endpoint

    @property
    def path(self) -> str:
        """The route under which clients call this dialect."""
        return "/v1" + self.endpoint.value

    def parse(self, ex: Exchange) -> None:
        """Decode ``ex.body`` once into ``ex.request``; fill ``model``, ``stream`` and
        ``client_wants_usage``; raise :class:`~relay.errors.InvalidRequest` on bad input."""
        ...

    def error_body(self, err: GatewayError) -> bytes:
        """The JSON error envelope of this API."""
        ...

    def error_frame(self, err: GatewayError, ex: Exchange | None = None) -> bytes:
        """The SSE event that ends a committed stream on a failure (``ex``: the exchange, for
        dialects whose events are numbered)."""
        ...

    def end_frames(self, ex: Exchange, usage_chunk: Usage | None) -> bytes:
        """What ends a complete stream: the locally counted usage chunk when the client asked
        for usage and the provider sent none, the cost comment, the terminator."""
        ...
