"""Anthropic's Messages API as a provider (``kind: anthropic``).

An Anthropic client (``/v1/messages``, ``/v1/messages/count_tokens``) is passed through: its
bytes go upstream (the model name spliced in when it differs) and the answer, stream events
included, comes back as sent. An OpenAI chat client is translated both ways
(:mod:`relay.providers.translate.openai_to_anthropic`). Which of the two is decided once per
attempt, by the dialect's wire format.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import msgspec

from relay import kinds
from relay.config.model import ProviderConfig
from relay.errors import (
    GatewayError,
    UpstreamProtocolError,
    UpstreamStatusError,
    scrub_secrets,
)
from relay.exchange import Attempt, Endpoint, Exchange, Usage
from relay.native import InvalidJson, SseEvent, splice_top_level
from relay.providers.base import ProviderBase
from relay.providers.sse import SseMapper
from relay.providers.translate import openai_to_anthropic
from relay.stage import Outbound, Step, StreamMapper
from relay.wire.anthropic import (
    ERROR_DECODER,
    ERROR_DETAIL_DECODER,
    EVENT_DECODER,
    MESSAGE_DECODER,
    usage_from_wire,
)
from relay.wire.sse import frame

# Client headers that choose the API's behaviour: forwarded on a pass-through.
_CLIENT_HEADERS = ("anthropic-version", "anthropic-beta")
# Mid-stream error types with a status of their own (before the commit point).
_STREAM_ERROR_STATUS = {"overloaded_error": 529, "rate_limit_error": 429}
_CONTENT_EVENTS = frozenset({"content_block_delta", "message_delta"})
_QUIET_EVENTS = frozenset({"message_start", "content_block_start", "content_block_stop", "ping"})


class AnthropicProvider(ProviderBase):
    """``base_url`` is the API root with its version (default ``https://api.anthropic.com/v1``)."""

    kind = "anthropic"
    wire: ClassVar[str] = "anthropic"
    endpoints: ClassVar[frozenset[Endpoint]] = frozenset(
        {Endpoint.CHAT, Endpoint.MESSAGES, Endpoint.COUNT_TOKENS}
    )

    def __init__(self, name: str, config: ProviderConfig) -> None:
        super().__init__(name, config)
        spec = kinds.spec(self.kind)
        default = spec.default_base_url if spec is not None else None
        base = (config.base_url or default or "").rstrip("/")
        messages = base + Endpoint.MESSAGES.value
        self._urls = {
            Endpoint.CHAT: messages,
            Endpoint.MESSAGES: messages,
            Endpoint.COUNT_TOKENS: base + Endpoint.COUNT_TOKENS.value,
        }
        self._static_headers = {
            "content-type": "application/json",
            "anthropic-version": config.anthropic_version,
            **config.headers,
        }
        if config.api_key:
            self._static_headers["x-api-key"] = config.api_key

    def headers_for(self, ex: Exchange, attempt: Attempt, native: bool) -> dict[str, str]:
        """Static headers, the request id, the client's version and betas on a pass-through,
        and the right credential."""
        headers = dict(self._static_headers)
        headers["x-request-id"] = ex.request_id
        if native:
            for name in _CLIENT_HEADERS:
                if value := ex.headers.get(name):
                    headers[name] = value
        caller = ex.principal.client_authorization
        if self.config.forward_client_auth and caller:
            scheme, _, token = caller.partition(" ")
            headers["x-api-key"] = token.strip() if scheme.lower() == "bearer" else caller
            attempt.caller_credential = True
        if ex.stream:
            headers["accept"] = "text/event-stream"
        return headers

    def passthrough(self, ex: Exchange, attempt: Attempt) -> tuple[str, dict[str, str]] | None:
        headers = self.headers_for(ex, attempt, native=True)
        headers.pop("content-type", None)
        return self._urls[Endpoint.COUNT_TOKENS].removesuffix(Endpoint.COUNT_TOKENS.value), headers

    async def prepare(self, ex: Exchange, attempt: Attempt) -> Outbound:
        native = ex.dialect is not None and ex.dialect.wire == self.wire
        if native:
            body = self._native_body(ex, attempt)
        else:
            body = openai_to_anthropic.request(
                ex, attempt, self.config.max_tokens_default, self.name
            )
        return Outbound(self._urls[ex.endpoint], self.headers_for(ex, attempt, native), body)

    @staticmethod
    def _native_body(ex: Exchange, attempt: Attempt) -> bytes:
        if attempt.deployment.upstream_model == ex.model and not ex.model_defaulted:
            return ex.body
        try:
            model = msgspec.json.encode(attempt.deployment.upstream_model)
            return splice_top_level(ex.body, [("model", model)])
        except InvalidJson:  # the dialect decoded it already; kept as a guard
            raise UpstreamProtocolError("the request body could not be edited") from None

    def map_json(self, ex: Exchange, attempt: Attempt, body: bytes) -> bytes:
        if ex.dialect is None or ex.dialect.wire != self.wire:
            return openai_to_anthropic.response(self.name, attempt, body)
        if ex.endpoint is Endpoint.COUNT_TOKENS:
            attempt.usage = Usage()  # counting is free
            return body
        try:
            message = MESSAGE_DECODER.decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
            raise UpstreamProtocolError(
                f"provider '{self.name}' answered with a body that is not an Anthropic "
                f"message: {str(exc)[:200]}"
            ) from None
        if message.usage is not None:
            attempt.usage = usage_from_wire(message.usage)
        text = "".join(
            (block.text or "")
            + (block.name or "")
            + (msgspec.json.encode(block.input).decode() if block.input is not None else "")
            for block in message.content
        )
        attempt.text = lambda: text
        return body

    def stream_mapper(self, ex: Exchange, attempt: Attempt) -> StreamMapper:
        if ex.dialect is not None and ex.dialect.wire == self.wire:
            return EventRelay(self.name, attempt)
        return openai_to_anthropic.ChunkStream(
            self.name, attempt, include_usage=ex.client_wants_usage
        )

    def stream_error(self, raw: bytes) -> GatewayError:
        try:
            detail = ERROR_DETAIL_DECODER.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError):
            detail = None
        kind = detail.type if detail is not None else None
        message = detail.message if detail is not None else None
        return UpstreamStatusError(
            _STREAM_ERROR_STATUS.get(kind or "", 502),
            scrub_secrets(message, *self.secrets())
            if message
            else f"provider '{self.name}' reported an error mid-stream",
            error_type=kind,
        )

    def error_from(
        self, attempt: Attempt, status: int, body: bytes, headers: Mapping[str, str]
    ) -> GatewayError:
        if (fault := self.gateway_fault(attempt, status)) is not None:
            return fault
        passed = (("retry-after", headers["retry-after"]),) if "retry-after" in headers else ()
        secrets = self.secrets()
        try:
            error = ERROR_DECODER.decode(body).error
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
            text = body[:500].decode("utf-8", "replace").strip() or "(empty body)"
            message = f"provider '{self.name}' answered {status}: {text}"
            return UpstreamStatusError(status, scrub_secrets(message, *secrets), headers=passed)
        return UpstreamStatusError(
            status,
            scrub_secrets(error.message or f"provider '{self.name}' answered {status}", *secrets),
            error_type=error.type,
            headers=passed,
        )


class _DeltaText(msgspec.Struct):
    text: str | None = None
    partial_json: str | None = None


class _Delta(msgspec.Struct):
    """A delta (or ping) event: its type and the text it adds, nothing else built."""

    type: str
    delta: _DeltaText | None = None


_DELTA = msgspec.json.Decoder(_Delta)


class EventRelay(SseMapper):
    """A Messages stream relayed event by event to a Messages client.

    Each event is re-framed (``event:`` and ``data:`` lines; the data bytes are never
    re-encoded). Deltas, the bulk of a stream, are decoded only for their type and the text
    they add (the step's ``text``, counted by the relay as it arrives). The other events are
    read once for what the gateway needs: usage (``message_start``, then the cumulative
    ``message_delta``), the stop reason, a ``tool_use`` block start (content), a provider's
    ``error`` event (not relayed: the dialect writes the error event) and ``message_stop``,
    which ends the stream and is written by the dialect after the cost comment. The first
    delta is the commit point.
    """

    __slots__ = ("_attempt",)
    expected = "a Messages stream event"

    def __init__(self, provider: str, attempt: Attempt) -> None:
        super().__init__(provider)
        self._attempt = attempt

    def on_event(self, event: SseEvent, step: Step, out: list[bytes]) -> bool:
        raw = event.data
        kind = event.event
        if kind == "content_block_delta" or kind == "ping":
            delta = _DELTA.decode(raw).delta  # valid JSON; only the text is built
            if kind != "ping":
                if delta is not None:
                    step.text += (delta.text or "") + (delta.partial_json or "")
                step.content = True
            out.append(frame(kind.encode(), raw))
            return False
        data = EVENT_DECODER.decode(raw)
        kind = data.type
        if kind == "message_stop":
            step.done = True
            return True
        if kind == "error":
            step.error = bytes(data.error) or b"{}"
            return True
        if kind == "content_block_delta":  # an event without its ``event:`` line
            if data.delta is not None:
                step.text += (data.delta.text or "") + (data.delta.partial_json or "")
        elif kind == "message_start" and data.message is not None:
            if data.message.usage is not None:
                self._usage = usage_from_wire(data.message.usage)
        elif kind == "message_delta":
            if data.usage is not None:
                self._usage = usage_from_wire(data.usage, self._usage)
            if data.delta is not None and data.delta.stop_reason is not None:
                self._attempt.stop_reason = data.delta.stop_reason
        elif kind == "content_block_start" and data.content_block is not None:
            block = data.content_block
            if block.type != "text" or block.text:
                step.content = True
                step.text += (block.text or "") + (block.name or "")
        if kind in _CONTENT_EVENTS or kind not in _QUIET_EVENTS:
            step.content = True
        out.append(frame(kind.encode(), raw))
        return False
