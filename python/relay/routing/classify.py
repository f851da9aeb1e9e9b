"""What a failed attempt means for the next one: retry, move on, switch chains, or stop.

* ``RETRY``: a transient failure (connect error, reset, timeout, 429, 500, 502, 503, 504, 529
  by default): another attempt, even on the same deployment after a backoff.
* ``MOVE``: the deployment is broken for this request (a bad or redirecting answer, the
  gateway's key refused, a 5xx the model does not retry): other deployments and fallbacks only.
* ``CONTEXT`` / ``POLICY``: the prompt is too long for the model, or a content filter refused
  it: the model's ``context_window_fallbacks`` / ``content_policy_fallbacks``, if any.
* ``FINAL``: the request itself is wrong (400, 401, 403, 404, 422 ...) or the gateway failed.
"""

from __future__ import annotations

import re
from typing import Final

from relay.errors import (
    GatewayError,
    UpstreamProtocolError,
    UpstreamStatusError,
    UpstreamTimeout,
    UpstreamUnreachable,
)

RETRY: Final = 0
MOVE: Final = 1
CONTEXT: Final = 2
POLICY: Final = 3
FINAL: Final = 4
# The error class of a failure of the gateway itself (not the provider's).
GATEWAY: Final = "gateway"

_CONTEXT_CODES = frozenset({"context_length_exceeded", "context_window_exceeded"})
_POLICY_CODES = frozenset({"content_filter", "content_policy_violation"})
_CONTEXT_TEXT = re.compile(
    r"context length|context window|maximum context|prompt is too long|too many tokens", re.I
)
_POLICY_TEXT = re.compile(r"content policy|content management policy|content filter", re.I)


def action(err: GatewayError, retry_statuses: frozenset[int], transport: bool) -> int:
    """What to do after ``err`` for a model retrying ``retry_statuses`` (and transport
    errors when ``transport``)."""
    if isinstance(err, UpstreamTimeout | UpstreamUnreachable):
        return RETRY if transport else MOVE
    if isinstance(err, UpstreamProtocolError):
        return MOVE
    if not isinstance(err, UpstreamStatusError):
        return FINAL  # the gateway's own errors: nothing upstream would change them
    if err.code == "upstream_auth_failed":
        return MOVE
    status = err.status
    if status in retry_statuses:
        return RETRY
    if 400 <= status < 500 and status != 429:
        code = err.code or ""
        if code in _CONTEXT_CODES or _CONTEXT_TEXT.search(err.message):
            return CONTEXT
        if code in _POLICY_CODES or _POLICY_TEXT.search(err.message):
            return POLICY
        return FINAL
    return MOVE


def error_class(err: GatewayError) -> str:
    """A short, stable name for what went wrong (for the attempt's record and metrics)."""
    if isinstance(err, UpstreamTimeout):
        return "timeout"
    if isinstance(err, UpstreamUnreachable):
        return "unreachable"
    if isinstance(err, UpstreamProtocolError):
        return "bad_response"
    if isinstance(err, UpstreamStatusError):
        status = err.status
        if err.code == "upstream_auth_failed":
            return "auth"
        if status == 429:
            return "rate_limited"
        if status >= 500:
            return "server_error"
        kind = action(err, frozenset(), True)
        return (
            "context_window"
            if kind is CONTEXT
            else "content_policy"
            if kind is POLICY
            else "client_error"
        )
    return GATEWAY


def is_breaker_failure(err: GatewayError) -> bool:
    """Does ``err`` count against the deployment's health? Its own answers to bad requests
    do not (it is up and speaking); unreachability, timeouts, 429 and 5xx do."""
    if isinstance(err, UpstreamTimeout | UpstreamUnreachable | UpstreamProtocolError):
        return True
    if isinstance(err, UpstreamStatusError):
        return err.status >= 500 or err.status == 429
    return False
