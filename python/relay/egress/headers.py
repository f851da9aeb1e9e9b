"""Headers the gateway puts on every response."""

from __future__ import annotations

import time

from relay.exchange import Exchange
from relay.upstream import UpstreamResponse

JSON = ("content-type", "application/json")
SSE_HEADERS = (
    ("content-type", "text/event-stream; charset=utf-8"),
    ("cache-control", "no-cache"),
    ("x-accel-buffering", "no"),
)
# Upstream response headers worth passing on to the client as they are.
_PASSED_PREFIXES = ("x-ratelimit-", "openai-")


def gateway_headers(ex: Exchange) -> list[tuple[str, str]]:
    """``x-request-id``, where it went, and how the time split between upstream and gateway."""
    headers = [("x-request-id", ex.request_id)]
    if ex.deployment is not None:
        headers.append(("x-relay-provider", ex.deployment.provider))
        headers.append(("x-relay-model", ex.deployment.upstream_model))
    if ex.attempts:
        upstream = ex.upstream_seconds
        total = time.perf_counter() - ex.started
        headers.append(("x-relay-upstream-ms", f"{upstream * 1000:.3f}"))
        headers.append(("x-relay-overhead-ms", f"{max(total - upstream, 0.0) * 1000:.3f}"))
    return headers


def passed_upstream_headers(upstream: UpstreamResponse) -> list[tuple[str, str]]:
    """Provider headers clients rely on (rate-limit state, processing time)."""
    out = []
    for name, value in upstream.headers.items():
        lower = name.lower()
        if lower.startswith(_PASSED_PREFIXES):
            out.append((lower, value))
        elif lower == "x-request-id":
            out.append(("x-upstream-request-id", value))
    return out


def cost_header(ex: Exchange) -> list[tuple[str, str]]:
    """``x-relay-cost-usd`` once the cost is known."""
    if ex.cost_usd is None:
        return []
    return [("x-relay-cost-usd", f"{ex.cost_usd:.8f}")]
