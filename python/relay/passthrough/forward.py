"""Every other ``/v1`` route (files, batches, images, audio, moderations, vector stores, ...)
forwarded to a configured provider, bodies streamed both ways.

The provider is the one the request's model routes to (a JSON body's ``model``, or a multipart
form field ``model``), else ``routing.passthrough_provider``; the URL is that provider's API
root plus the checked route (:mod:`relay.passthrough.paths`). The request passes the same gates
and stages as any other between :meth:`Passthrough.open` and :meth:`Passthrough.forward` (a key
restricted to some models cannot reach routes that name none), the exchange is logged and gets
a ledger row; a JSON answer's ``usage`` is recorded and priced. There are no
retries or fallbacks: a streamed upload cannot be sent twice.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec

from relay.config.model import Config
from relay.egress.headers import gateway_headers, passed_upstream_headers, usage_headers
from relay.errors import GatewayError, InvalidRequest
from relay.exchange import Attempt, Endpoint, Exchange, Usage
from relay.ingress.body import read_body
from relay.passthrough import body as bodies
from relay.passthrough.paths import request_headers, response_headers, route
from relay.stage import Provider, timeouts_of
from relay.upstream import UpstreamPool

# A JSON answer up to this size is also read for its usage while it is relayed.
USAGE_BYTES = 1024 * 1024


class _Tokens(msgspec.Struct):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None


class _Usage(msgspec.Struct):
    usage: _Tokens | None = None


_USAGE = msgspec.json.Decoder(_Usage)


class Passthrough:
    """Forwards one request (see the module docstring)."""

    def __init__(
        self,
        config: Config,
        providers: Mapping[str, Provider],
        pool: UpstreamPool,
        settle: Callable[[Exchange], Awaitable[None]],
    ) -> None:
        self.config = config
        self.settle = settle
        self.providers = providers
        self.pool = pool
        self.max_json = config.server.max_body_bytes
        self.max_upload = config.server.max_upload_bytes
        self.body_timeout = config.server.body_timeout_s

    async def open(self, ex: Exchange, scope: Any, proto: Any) -> PendingBody:
        """Check the route and read what the stages need (a JSON body, a form's ``model``
        field); an upload's remainder stays unread until it is forwarded."""
        ex.endpoint = Endpoint.PASSTHROUGH
        if scope.http_version.startswith("1") and getattr(scope, "authority", None):
            # An absolute-form request line (GET http://host/...): the gateway is no proxy.
            raise InvalidRequest("absolute URLs are not accepted as request targets")
        ex.method = scope.method
        path = route(scope.path, scope.query_string)
        ex.path, _, ex.query = path.partition("?")
        body = await self._body(ex, scope, proto)
        body.target = path
        return body

    async def forward(self, ex: Exchange, scope: Any, proto: Any, body: PendingBody) -> None:
        """After the stages (routing chose ``ex.deployment``): forward the request and relay
        the answer; raise a GatewayError before answering."""
        deployment = ex.deployment
        assert deployment is not None, "the routing stage did not run"
        method, path = ex.method, body.target
        if ex.model and deployment.upstream_model != ex.model:
            self._rename(ex, body, deployment.upstream_model, scope.headers)
        provider = self.providers[deployment.provider]
        attempt = Attempt(deployment, 0, started=time.perf_counter(), timeouts=deployment.timeouts)
        ex.attempts.append(attempt)
        target = provider.passthrough(ex, attempt)
        if target is None:
            raise InvalidRequest(
                f"provider '{provider.name}' (kind {provider.kind}) does not take "
                f"/v1{ex.path}; name a model or a routing.passthrough_provider that does"
            )
        root, headers = target
        headers.update(request_headers(scope.headers))
        if body.length is not None:
            headers["content-length"] = str(body.length)
        timeouts = timeouts_of(provider, attempt)
        try:
            upstream = await self.pool.request(
                provider.name, method, root + path, headers, body.payload(), timeouts
            )
        except GatewayError as err:
            attempt.ended = time.perf_counter()
            attempt.error = err.code or err.type
            if body.stream.failure is not None:
                raise body.stream.failure from None
            raise
        attempt.headers_at = time.perf_counter()
        attempt.status = upstream.status
        try:
            if upstream.status >= 300:
                error = await upstream.read()
                attempt.ended = time.perf_counter()
                headers_in = {k.lower(): v for k, v in upstream.headers.items()}
                refused = provider.answer_error(attempt, upstream.status, error, headers_in)
                attempt.error = refused.code or refused.type
                raise refused
            await self._relay(ex, attempt, upstream, proto)
        finally:
            upstream.close()
        await self.settle(ex)  # the usage a JSON answer reported, priced

    async def _body(self, ex: Exchange, scope: Any, proto: Any) -> PendingBody:
        headers = scope.headers
        content_type = (headers.get("content-type") or "").lower()
        declared = headers.get("content-length")
        if content_type.startswith("application/json"):
            raw = await read_body(proto, declared, self.max_json, self.body_timeout)
            ex.body = raw
            ex.model = (bodies.json_model(raw) or "") if raw.strip() else ""
            whole = bodies.Body(None, [raw] if raw else [], self.max_json, False, self.body_timeout)
            return PendingBody(whole, None)
        length = bodies.check_length(declared, self.max_upload)
        if scope.method in ("GET", "HEAD", "DELETE") and not length:
            return PendingBody(bodies.Body(None, [], 0, False, self.body_timeout), None)
        reader = proto.__aiter__()
        prefix: list[bytes] = []
        if content_type.startswith("multipart/form-data"):
            prefix, model = await bodies.peek_multipart(
                reader, content_type, self.max_upload, self.body_timeout
            )
            ex.model = model or ""
        stream = bodies.Body(reader, prefix, self.max_upload, True, self.body_timeout)
        return PendingBody(stream, length)

    @staticmethod
    def _rename(ex: Exchange, body: PendingBody, model: str, headers: Mapping[str, str]) -> None:
        """The provider's name for the model, in the JSON body or the form field."""
        stream = body.stream
        if not stream.streaming:
            stream.prefix = [bodies.json_with_model(b"".join(stream.prefix), model)]
            return
        before = sum(map(len, stream.prefix))
        stream.prefix = bodies.multipart_with_model(stream.prefix, model)
        if body.length is not None:
            body.length += sum(map(len, stream.prefix)) - before

    async def _relay(self, ex: Exchange, attempt: Attempt, upstream: Any, proto: Any) -> None:
        """Stream the provider's answer to the client; read a small JSON one for usage."""
        content_type = (upstream.headers.get("content-type") or "").lower()
        keep = content_type.startswith("application/json")
        kept: list[bytes] = []
        size = 0
        transport = None
        async for chunk in upstream.chunks():
            if not attempt.first_byte_at:
                attempt.first_byte_at = time.perf_counter()
            if transport is None:
                transport = self._start(ex, attempt, upstream, proto)
            if keep:
                size += len(chunk)
                if size <= USAGE_BYTES:
                    kept.append(chunk)
                else:
                    keep = False
                    kept = []
            await transport.send_bytes(chunk)
        attempt.ended = attempt.ready_at = time.perf_counter()
        if transport is None:  # an empty body
            self._start(ex, attempt, upstream, proto)
        if keep and kept:
            attempt.usage = _usage(b"".join(kept))

    @staticmethod
    def _start(ex: Exchange, attempt: Attempt, upstream: Any, proto: Any) -> Any:
        ex.status = upstream.status
        ex.answer = attempt
        headers = [
            *response_headers(upstream.headers.items()),
            *gateway_headers(ex),
            *usage_headers(ex),
            *passed_upstream_headers(
                upstream.headers,
                caller_credential=attempt.caller_credential,
                own_ratelimit=ex.own_ratelimit,
            ),
        ]
        return proto.response_stream(upstream.status, headers)


class PendingBody:
    """The request body, its declared length (None: sent chunked), and the checked route."""

    __slots__ = ("length", "stream", "target")

    def __init__(self, stream: bodies.Body, length: int | None) -> None:
        self.stream = stream
        self.length = length
        self.target = ""

    def payload(self) -> Any:
        return self.stream.payload()


def _usage(body: bytes) -> Usage | None:
    try:
        usage = _USAGE.decode(body).usage
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        return None
    if usage is None:
        return None
    prompt = usage.prompt_tokens if usage.prompt_tokens is not None else usage.input_tokens
    completion = (
        usage.completion_tokens if usage.completion_tokens is not None else usage.output_tokens
    )
    if prompt is None and completion is None:
        return None
    return Usage(prompt_tokens=prompt or 0, completion_tokens=completion or 0)
