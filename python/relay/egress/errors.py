"""Errors rendered in the envelope of the API the client called."""

from __future__ import annotations

from relay.errors import GatewayError


def error_headers(err: GatewayError, request_id: str) -> list[tuple[str, str]]:
    """Content type, request id, and any headers the error carries (e.g. ``retry-after``)."""
    return [("content-type", "application/json"), ("x-request-id", request_id), *err.headers]


def sse_error_event(err: GatewayError) -> bytes:
    """The event that ends a stream cut after its first byte: OpenAI's error shape, no [DONE]."""
    return b"data: " + err.openai_body() + b"\n\n"
