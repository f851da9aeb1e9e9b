"""Headers the gateway puts on every response."""

from __future__ import annotations

import time
from collections.abc import Mapping

from relay.exchange import Exchange

JSON = ("content-type", "application/json")
SSE_HEADERS = (
    ("content-type", "text/event-stream; charset=utf-8"),
    ("cache-control", "no-cache"),
    ("x-accel-buffering", "no"),
)
# Provider headers that describe the account whose key was used: shown to the caller only
# when that was the caller's own key (passthrough), never when it was the gateway's.
_COUNTS = tuple(str(n) for n in range(16))
_ACCOUNT_PREFIXES = (
    "x-ratelimit-",
    "openai-organization",
    "openai-project",
    "anthropic-ratelimit-",
    "anthropic-organization-id",
    "anthropic-workspace-id",
)
# A provider's own request id: OpenAI's and Anthropic's names.
_UPSTREAM_IDS = ("x-request-id", "request-id")


def gateway_headers(ex: Exchange) -> list[tuple[str, str]]:
    """``x-request-id`` (and ``request-id``, the name Anthropic's SDKs read, on Anthropic's
    routes), where it went, how the time split, what a stage decided."""
    headers = [("x-request-id", ex.request_id)]
    dialect = ex.dialect
    if dialect is not None and dialect.wire == "anthropic":
        headers.append(("request-id", ex.request_id))
    attempt = ex.answered_by
    deployment = attempt.deployment if attempt is not None else ex.deployment
    if deployment is not None:
        headers.append(("x-relay-provider", deployment.provider))
        headers.append(("x-relay-model", deployment.upstream_model))
    attempts = ex.attempts
    if attempts:
        count = len(attempts)
        headers.append(("x-relay-attempts", _COUNTS[count] if count < 16 else str(count)))
        upstream = ex.upstream_seconds
        total = time.perf_counter() - ex.started
        headers.append(("x-relay-upstream-ms", f"{upstream * 1000:.3f}"))
        headers.append(("x-relay-overhead-ms", f"{max(total - upstream, 0.0) * 1000:.3f}"))
    if ex.reply_headers:
        headers.extend(ex.reply_headers)
    return headers


def passed_upstream_headers(
    upstream: Mapping[str, str], *, caller_credential: bool, own_ratelimit: bool = False
) -> list[tuple[str, str]]:
    """Provider headers clients rely on (processing time, and with their own key, the
    account's rate-limit state); the provider's request id (OpenAI's ``x-request-id``,
    Anthropic's ``request-id``) as ``x-upstream-request-id``. ``own_ratelimit``: a gateway
    limit applied, and its ``x-ratelimit-*`` (already among the gateway's headers) replace the
    provider's."""
    out = []
    kinds = _KINDS
    for name, value in upstream.items():
        found = kinds.get(name)
        if found is None:
            found = _kind(name)
        kind, lower = found
        if kind is _DROP:
            continue
        if kind is _ACCOUNT:
            if caller_credential and not (own_ratelimit and lower.startswith("x-ratelimit-")):
                out.append((lower, value))
        elif kind is _PASS:
            out.append((lower, value))
        else:
            out.append(("x-upstream-request-id", value))
    return out


# What becomes of a provider's header, by its name as received: dropped, shown only with the
# caller's own credential, passed on, or renamed (the provider's request id). A provider sends
# the same few names on every answer: each is classified once (at most _MAX_KINDS names are
# kept, so a provider inventing names cannot grow the table without end).
_DROP, _ACCOUNT, _PASS, _ID = "drop", "account", "pass", "id"
_MAX_KINDS = 1024
_KINDS: dict[str, tuple[str, str]] = {}


def _kind(name: str) -> tuple[str, str]:
    lower = name.lower()
    if lower.startswith(_ACCOUNT_PREFIXES):
        found = (_ACCOUNT, lower)
    elif lower.startswith("openai-"):
        found = (_PASS, lower)
    elif lower in _UPSTREAM_IDS:
        found = (_ID, lower)
    else:
        found = (_DROP, lower)
    if len(_KINDS) < _MAX_KINDS:
        _KINDS[name] = found
    return found


def usage_headers(ex: Exchange) -> list[tuple[str, str]]:
    """``x-relay-cost-usd`` once the cost is known; a mark when usage was counted locally."""
    out = []
    if ex.cost_usd is not None:
        out.append(("x-relay-cost-usd", f"{ex.cost_usd:.8f}"))
    if ex.usage is not None and ex.usage.counted_locally:
        out.append(("x-relay-usage", "counted-locally"))
    return out
