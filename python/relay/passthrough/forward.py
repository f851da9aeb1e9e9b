"""Every other ``/v1`` route (files, batches, images, audio, moderations, vector stores, ...)
forwarded to a configured provider, bodies streamed both ways.

The provider is the one the request's model routes to (a JSON body's ``model``, or a multipart
form field ``model``), else ``routing.passthrough_provider``; the URL is that provider's API
root plus the checked route (:mod:`relay.passthrough.paths`). The caller is authenticated like
any other (a key restricted to some models cannot reach routes that name none), the exchange is
logged and gets a ledger row; a JSON answer's ``usage`` is recorded and priced. There are no
retries or fallbacks: a streamed upload cannot be sent twice.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import msgspec

from relay.config.model import Config, Pricing
from relay.egress.headers import gateway_headers, passed_upstream_headers, usage_headers
from relay.errors import GatewayError, InvalidRequest, NotFound
from relay.exchange import Attempt, Deployment, Endpoint, Exchange, Usage
from relay.ingress.body import read_body
from relay.passthrough import body as bodies
from relay.passthrough.paths import request_headers, response_headers, route
from relay.providers.base import Provider
from relay.stage import Stage
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
        auth: Stage,
        router: Stage,
        providers: Mapping[str, Provider],
        pool: UpstreamPool,
    ) -> None:
        self.config = config
        self.auth = auth
        self.router = router
        self.providers = providers
        self.pool = pool
        self.default = config.routing.passthrough_provider
        self.max_json = config.server.max_body_bytes
        self.max_upload = config.server.max_upload_bytes
        self.body_timeout = config.server.body_timeout_s

    async def serve(self, ex: Exchange, scope: Any, proto: Any) -> None:
        """Forward the request and relay the answer; raise a GatewayError before answering."""
        ex.endpoint = Endpoint.PASSTHROUGH
        if scope.http_version.startswith("1") and getattr(scope, "authority", None):
            # An absolute-form request line (GET http://host/...): the gateway is no proxy.
            raise InvalidRequest("absolute URLs are not accepted as request targets")
        path = route(scope.path, scope.query_string)
        ex.path = path.partition("?")[0]
        method = scope.method
        body = await self._body(ex, scope, proto)
        await self.auth(ex)
        deployment = await self._deployment(ex)
        if ex.model and deployment.upstream_model != ex.model:
            self._rename(ex, body, deployment.upstream_model, scope.headers)
        provider = self.providers[deployment.provider]
        attempt = Attempt(deployment, 0, started=time.perf_counter())
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
        timeouts = provider.timeouts_for(attempt)
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
                refused = provider.error_from(attempt, upstream.status, error, headers_in)
                attempt.error = refused.code or refused.type
                raise refused
            await self._relay(ex, attempt, upstream, proto)
        finally:
            upstream.close()

    async def _body(self, ex: Exchange, scope: Any, proto: Any) -> _Body:
        headers = scope.headers
        content_type = (headers.get("content-type") or "").lower()
        declared = headers.get("content-length")
        if content_type.startswith("application/json"):
            raw = await read_body(proto, declared, self.max_json, self.body_timeout)
            ex.body = raw
            ex.model = (bodies.json_model(raw) or "") if raw.strip() else ""
            whole = bodies.Body(None, [raw] if raw else [], self.max_json, False, self.body_timeout)
            return _Body(whole, None)
        length = bodies.check_length(declared, self.max_upload)
        if scope.method in ("GET", "HEAD", "DELETE") and not length:
            return _Body(bodies.Body(None, [], 0, False, self.body_timeout), None)
        reader = proto.__aiter__()
        prefix: list[bytes] = []
        if content_type.startswith("multipart/form-data"):
            prefix, model = await bodies.peek_multipart(
                reader, content_type, self.max_upload, self.body_timeout
            )
            ex.model = model or ""
        return _Body(bodies.Body(reader, prefix, self.max_upload, True, self.body_timeout), length)

    async def _deployment(self, ex: Exchange) -> Deployment:
        if ex.model:
            await self.router(ex)
            assert ex.deployment is not None
            return ex.deployment
        if self.default is None:
            raise NotFound(
                f"/v1{ex.path}: the request names no model and this gateway has no "
                "routing.passthrough_provider"
            )
        ex.deployment = Deployment(self.default, "", "", Pricing())
        return ex.deployment

    @staticmethod
    def _rename(ex: Exchange, body: _Body, model: str, headers: Mapping[str, str]) -> None:
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
        headers = [
            *response_headers(upstream.headers.items()),
            *gateway_headers(ex),
            *usage_headers(ex),
            *passed_upstream_headers(upstream.headers, caller_credential=attempt.caller_credential),
        ]
        return proto.response_stream(upstream.status, headers)


class _Body:
    """The request body and its declared length (None: sent chunked)."""

    __slots__ = ("length", "stream")

    def __init__(self, stream: bodies.Body, length: int | None) -> None:
        self.stream = stream
        self.length = length

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
