"""The last stage: send the exchange to its provider and relay the answer to the client."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import msgspec

from relay.egress.headers import (
    JSON,
    SSE_HEADERS,
    cost_header,
    gateway_headers,
    passed_upstream_headers,
)
from relay.errors import GatewayError, UpstreamProtocolError
from relay.exchange import Attempt, Exchange
from relay.providers import Provider
from relay.stage import Tap
from relay.stream.relay import StreamRelay, Transport
from relay.upstream import UpstreamResponse
from relay.wire.openai import probe_response, usage_from_wire


class Forwarder:
    """Calls the provider chosen by routing, relays JSON or SSE, and runs the taps once."""

    def __init__(self, providers: dict[str, Provider], taps: Sequence[Tap]) -> None:
        self.providers = providers
        self.taps = tuple(taps)

    def finish(self, ex: Exchange) -> None:
        """Run every tap exactly once for this exchange."""
        if ex.finished:
            return
        ex.finished = time.perf_counter()
        for tap in self.taps:
            tap.on_finish(ex)

    async def open_upstream(self, ex: Exchange) -> tuple[Attempt, UpstreamResponse]:
        """One attempt: send, and refuse the answer unless it is a success."""
        deployment = ex.deployment
        assert deployment is not None, "routing runs before forwarding"
        provider = self.providers[deployment.provider]
        attempt = Attempt(
            deployment.provider, deployment.upstream_model, started=time.perf_counter()
        )
        ex.attempts.append(attempt)
        try:
            upstream = await provider.send(ex)
        except GatewayError as err:
            attempt.error = err.code or err.type
            attempt.ended = time.perf_counter()
            raise
        attempt.headers_at = time.perf_counter()
        attempt.status = upstream.status
        if upstream.status >= 400:
            body = await upstream.read()
            attempt.ended = attempt.ready_at = time.perf_counter()
            attempt.error = "upstream_status"
            headers = {k.lower(): v for k, v in upstream.headers.items()}
            raise provider.error_from(upstream.status, body, headers)
        return attempt, upstream

    async def json(self, ex: Exchange, proto: Any) -> None:
        """A non-streamed request: the provider's body is relayed byte for byte."""
        attempt, upstream = await self.open_upstream(ex)
        try:
            body = await upstream.read()
        finally:
            upstream.close()
        attempt.ended = attempt.ready_at = time.perf_counter()
        try:
            probe = probe_response(body)
        except msgspec.DecodeError:
            raise UpstreamProtocolError(
                f"provider '{attempt.provider}' answered with a body that is not OpenAI JSON"
            ) from None
        if probe.usage is not None:
            ex.usage = usage_from_wire(probe.usage)
        ex.completion_parts = [
            piece for choice in probe.choices or () if (piece := choice.generated_text())
        ]
        ex.status = upstream.status
        self.finish(ex)
        headers = [JSON, *gateway_headers(ex), *cost_header(ex), *passed_upstream_headers(upstream)]
        proto.response_bytes(upstream.status, headers, body)

    async def stream(self, ex: Exchange, proto: Any) -> None:
        """A streamed request; ``ex.abort_stream`` can end it early (shutdown)."""
        attempt, upstream = await self.open_upstream(ex)

        async def open_client() -> Transport:
            ex.status = upstream.status
            headers = [*SSE_HEADERS, *gateway_headers(ex), *passed_upstream_headers(upstream)]
            transport: Transport = proto.response_stream(upstream.status, headers)
            return transport

        relay = StreamRelay(ex, attempt, upstream, open_client, self.finish)
        ex.abort_stream = relay.abort
        try:
            await relay.run()
        finally:
            upstream.close()
