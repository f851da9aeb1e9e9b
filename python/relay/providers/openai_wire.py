"""OpenAI's wire format on the provider side: body edits, response probes, stream mapping and
error mapping, shared by every OpenAI-shaped adapter (and the offline echo provider)."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from relay.errors import (
    GatewayError,
    StreamProtocolError,
    UpstreamProtocolError,
    UpstreamStatusError,
    scrub_secrets,
)
from relay.exchange import Attempt, Endpoint, Exchange, Usage
from relay.native import (
    InvalidJson,
    InvalidStreamEvent,
    OpenAIStreamScanner,
    SseEventTooLarge,
    StreamScan,
    splice_top_level,
    top_level_value,
)
from relay.providers import openai_responses
from relay.providers.base import ProviderBase
from relay.providers.params import NO_RULES, ParamRules, apply_rules
from relay.providers.sse import MAX_EVENT_BYTES
from relay.providers.translate import anthropic_to_openai
from relay.stage import StreamMapper
from relay.wire.openai import ERROR_DECODER, probe_response, usage_from_wire

# Headers from a provider's error answer worth passing to the client.
_RETRY_HEADERS = ("retry-after", "x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")
_USAGE_ON = b'{"include_usage":true}'


# Every endpoint: an adapter that keeps this default serves them all (checked by identity).
_ALL_ENDPOINTS = ProviderBase.endpoints


def wire_endpoint(ex: Exchange) -> Endpoint:
    """The OpenAI endpoint that serves ``ex`` (chat completions for Anthropic's Messages,
    counting by the gateway)."""
    # Identity tests, not a dict: an Enum member hashes through a Python-level __hash__.
    endpoint = ex.endpoint
    if endpoint is Endpoint.MESSAGES or endpoint is Endpoint.COUNT_TOKENS:
        return Endpoint.CHAT
    return endpoint


def upstream_body(
    ex: Exchange,
    attempt: Attempt,
    rules: ParamRules = NO_RULES,
    *,
    provider: str = "",
    kind: str = "",
    force_usage: bool = True,
) -> bytes:
    """The client's bytes, with the upstream model name and ``include_usage`` spliced in when
    they must change; the rest of the body is never decoded or re-encoded. With parameter
    ``rules`` (a vendor's quirks), top-level members are dropped, renamed or refused. A client
    of another dialect (Anthropic's Messages) gets its request translated instead, and the
    rules applied to the translation."""
    if ex.dialect is not None and ex.dialect.wire == "anthropic":
        return anthropic_to_openai.request(ex, attempt, rules, provider=provider, kind=kind)
    rename = attempt.deployment.upstream_model != ex.model or ex.model_defaulted
    force_usage = (
        force_usage
        and ex.stream
        and not ex.client_wants_usage
        and ex.endpoint is not Endpoint.EMBEDDINGS
        and ex.endpoint is not Endpoint.RESPONSES  # a Responses stream always reports usage
    )
    if not rename and not force_usage and not rules:
        return ex.body
    edits: list[tuple[str, bytes]] = []
    if rename:
        edits.append(("model", msgspec.json.encode(attempt.deployment.upstream_model)))
    try:
        if force_usage:
            edits.append(
                ("stream_options", _with_usage(top_level_value(ex.body, "stream_options")))
            )
        if rules:
            return apply_rules(ex, attempt, rules, provider=provider, kind=kind, edits=edits)
        return splice_top_level(ex.body, edits)
    except (InvalidJson, msgspec.DecodeError):  # the dialect decoded it already: a guard
        raise UpstreamProtocolError("the request body could not be edited") from None


def _with_usage(raw: bytes | None) -> bytes:
    if raw is None or raw == b"null":
        return _USAGE_ON
    options = msgspec.json.decode(raw)
    if not isinstance(options, dict):
        return _USAGE_ON
    options["include_usage"] = True
    return msgspec.json.encode(options)


class OpenAIWire(ProviderBase):
    """Maps OpenAI-shaped answers for an OpenAI-dialect client: bytes pass through. A client
    of another dialect (Anthropic's Messages) is translated both ways."""

    def check(self, ex: Exchange) -> None:
        endpoints = self.endpoints
        if endpoints is not _ALL_ENDPOINTS and wire_endpoint(ex) not in endpoints:
            super().check(ex)

    def map_json(self, ex: Exchange, attempt: Attempt, body: bytes) -> bytes:
        if ex.endpoint is Endpoint.RESPONSES:  # the provider's own Responses API
            return openai_responses.map_json(self.name, attempt, body)
        if ex.dialect is not None and ex.dialect.wire != "openai":
            if ex.endpoint is Endpoint.COUNT_TOKENS:
                attempt.usage = Usage()  # counted by the gateway, for free
                return body
            return anthropic_to_openai.response(self.name, attempt, body)
        try:
            probe = probe_response(body)
        except (msgspec.DecodeError, UnicodeDecodeError):
            raise UpstreamProtocolError(
                f"provider '{self.name}' answered with a body that is not OpenAI JSON"
            ) from None
        if probe.usage is not None:
            attempt.usage = usage_from_wire(probe.usage)
        choices = probe.choices or ()
        # Joined only if the provider reported no usage and the text must be counted.
        attempt.text = lambda: "".join(choice.generated_text() for choice in choices)
        return body

    def stream_mapper(self, ex: Exchange, attempt: Attempt) -> StreamMapper:
        mapper: StreamMapper
        if ex.endpoint is Endpoint.RESPONSES:
            mapper = openai_responses.EventRelay(self.name, ex)
        elif ex.dialect is not None and ex.dialect.wire != "openai":
            mapper = anthropic_to_openai.EventStream(self.name, attempt)
        else:
            mapper = OpenAIStreamMapper(self.name, strip_usage=not ex.client_wants_usage)
        return mapper

    def stream_error(self, raw: bytes) -> GatewayError:
        try:
            error = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            error = {}
        if not isinstance(error, dict):
            error = {"message": str(error)}
        message, code, etype = error.get("message"), error.get("code"), error.get("type")
        return UpstreamStatusError(
            502,
            scrub_secrets(str(message), *self.secrets())
            if message
            else f"provider '{self.name}' reported an error mid-stream",
            error_type=etype if isinstance(etype, str) else None,
            code=code if isinstance(code, str) else None,
        )

    def error_from(
        self, attempt: Attempt, status: int, body: bytes, headers: Mapping[str, str]
    ) -> GatewayError:
        if (fault := self.gateway_fault(attempt, status)) is not None:
            return fault
        passed = tuple((h, headers[h]) for h in _RETRY_HEADERS if h in headers)
        if not attempt.caller_credential:
            passed = tuple(p for p in passed if p[0] == "retry-after")
        return _status_error(self.name, status, body, passed, self.secrets())


def _status_error(
    provider: str,
    status: int,
    body: bytes,
    headers: tuple[tuple[str, str], ...],
    secrets: tuple[str, ...],
) -> UpstreamStatusError:
    """Pass the provider's status and message through, with secrets scrubbed."""
    try:
        error = ERROR_DECODER.decode(body).error
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        top = _top_level_message(body)
        if top is not None:  # vLLM, Mistral: {"object": "error", "message": ..., "type": ...}
            return UpstreamStatusError(
                status,
                scrub_secrets(top[0], *secrets),
                error_type=top[1],
                headers=headers,
            )
        text = body[:500].decode("utf-8", "replace").strip() or "(empty body)"
        return UpstreamStatusError(
            status,
            scrub_secrets(f"provider '{provider}' answered {status}: {text}", *secrets),
            headers=headers,
        )
    message, error_type = error.get("message"), error.get("type")
    param, code = error.get("param"), error.get("code")
    return UpstreamStatusError(
        status,
        scrub_secrets(
            str(message) if message is not None else f"provider '{provider}' answered {status}",
            *secrets,
        ),
        error_type=error_type if isinstance(error_type, str) else None,
        param=param if isinstance(param, str) else None,
        code=str(code) if isinstance(code, str | int) else None,
        headers=headers,
    )


def _top_level_message(body: bytes) -> tuple[str, str | None] | None:
    """(message, type) of an error object that is not wrapped in ``{"error": ...}``."""
    try:
        error = msgspec.json.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    if not isinstance(error, dict) or "message" not in error:
        return None
    message, etype = error["message"], error.get("type")
    text = message if isinstance(message, str) else msgspec.json.encode(message).decode()
    return text, etype if isinstance(etype, str) else None


class OpenAIStreamMapper:
    """An OpenAI stream relayed as is: the native scanner handles all the events of one
    network read in one call (re-framing, usage, the commit point, errors, text)."""

    __slots__ = ("_provider", "_scanner")

    def __init__(self, provider: str, *, strip_usage: bool) -> None:
        self._provider = provider
        self._scanner = OpenAIStreamScanner(
            strip_usage=strip_usage, max_event_bytes=MAX_EVENT_BYTES
        )

    def feed(self, chunk: bytes) -> StreamScan:
        try:
            return self._scanner.feed(chunk)
        except SseEventTooLarge as exc:
            raise StreamProtocolError(
                f"provider '{self._provider}' sent a stream event over {MAX_EVENT_BYTES} bytes",
                partial=exc.scan,
            ) from None
        except InvalidStreamEvent as exc:
            raise StreamProtocolError(
                f"provider '{self._provider}' sent a bad stream: {exc}", partial=exc.scan
            ) from None
