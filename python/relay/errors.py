"""The error tree: every error a client can see, with its HTTP status and OpenAI type/code.

Errors are raised where a problem is found and rendered once, at egress, in the envelope of the
API the client called. Messages say what was wrong and where; they never carry secrets.
"""

from __future__ import annotations

import re


class GatewayError(Exception):
    """An error answered to the client: status, OpenAI ``type``, optional ``code`` and ``param``."""

    status: int = 500
    type: str = "server_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int | None = None,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.headers = headers


class InvalidRequest(GatewayError):
    """The request is malformed or fails the schema (400)."""

    status = 400
    type = "invalid_request_error"


class PolicyBlocked(InvalidRequest):
    """A prompt policy refused the request or its answer (400, code ``input_blocked``,
    ``output_blocked`` or ``prompt_too_long``); the message names the policy and its rule,
    never the matched text."""

    code = "input_blocked"


class BodyTooLarge(InvalidRequest):
    """The body exceeds ``server.max_body_bytes`` (413)."""

    status = 413
    code = "request_too_large"


class RequestTimeout(InvalidRequest):
    """The request body did not arrive within ``server.body_timeout_s`` (408)."""

    status = 408
    code = "request_timeout"


class NotFound(InvalidRequest):
    """No such route (404)."""

    status = 404
    code = "not_found"


class MethodNotAllowed(InvalidRequest):
    """The route exists but not for this method (405)."""

    status = 405
    code = "method_not_allowed"


class ModelNotFound(InvalidRequest):
    """The requested model is not configured (404)."""

    status = 404
    code = "model_not_found"


class AuthenticationError(GatewayError):
    """No gateway key, or an unknown, revoked or expired one (401)."""

    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(GatewayError):
    """The key is valid but may not do this, e.g. use a model outside its allow-list (403)."""

    status = 403
    type = "permission_denied"
    code = "model_not_allowed"


class UpstreamUnreachable(GatewayError):
    """The provider could not be reached or dropped the connection (502)."""

    status = 502
    type = "upstream_error"
    code = "upstream_unreachable"


class UpstreamTimeout(GatewayError):
    """The provider did not answer in time (504)."""

    status = 504
    type = "timeout"
    code = "upstream_timeout"


class UpstreamProtocolError(GatewayError):
    """The provider answered with something that is not its documented wire format (502)."""

    status = 502
    type = "upstream_error"
    code = "upstream_bad_response"


class StreamProtocolError(UpstreamProtocolError):
    """A provider's stream broke its format. ``partial`` holds what the same network read
    carried before the bad event (a stream step), which still goes to the client first."""

    def __init__(self, message: str, *, partial: object = None) -> None:
        super().__init__(message)
        self.partial = partial


class StreamFailed(GatewayError):
    """The gateway itself failed while relaying a stream (500, or an error event)."""

    status = 500
    type = "server_error"
    code = "stream_failed"


class CircuitOpen(GatewayError):
    """Every deployment that could answer is paused by its circuit breaker (503)."""

    status = 503
    type = "upstream_error"
    code = "circuit_open"


class ShuttingDown(GatewayError):
    """The gateway is draining and ended what was left (503)."""

    status = 503
    type = "server_error"
    code = "gateway_shutting_down"


class RateLimited(GatewayError):
    """A gateway limit refused the request (429, with ``retry-after``): ``type`` says which
    meter (``requests``, ``tokens``; ``insufficient_quota`` for a spent budget), as OpenAI's."""

    status = 429
    type = "requests"
    code = "rate_limit_exceeded"

    def __init__(
        self, message: str, *, kind: str, code: str, headers: tuple[tuple[str, str], ...]
    ) -> None:
        super().__init__(message, code=code, headers=headers)
        self.type = kind


class UpstreamStatusError(GatewayError):
    """The provider answered 4xx/5xx: its status and message are passed through, scrubbed."""

    type = "upstream_error"

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str | None = None,
        param: str | None = None,
        code: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(
            scrub_secrets(message), param=param, code=code, status=status, headers=headers
        )
        if error_type:
            self.type = error_type


# Provider keys of well-known shapes (OpenAI's sk-..., Anthropic's sk-ant-..., bearer tokens) are
# removed from any upstream text before it can reach a client or a log line, masked or not.
_SECRET_PATTERNS = re.compile(
    # Whole tokens only: "task-specific" is a word, not a key, so a key must start where a
    # token starts.
    r"(?<![\w\-])(?:sk-[A-Za-z0-9_\-*]{4,}|gw-sk-[A-Za-z0-9_\-]{8,}|AKIA[0-9A-Z]{16}"
    r"|AIza[0-9A-Za-z_\-]{20,})|Bearer\s+[A-Za-z0-9._\-~+/=*]{4,}"
)


def scrub_secrets(text: str, *extra: str) -> str:
    """Return ``text`` with API-key-looking substrings and the given exact secrets removed."""
    for secret in extra:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    return _SECRET_PATTERNS.sub("[redacted]", text)


# The gateway's own provider account, as named in provider messages: OpenAI's organisation and
# project ids (``org-...``, ``proj_...``; "Rate limit reached ... in organization org-... on
# requests per min") and the UUID after "organization" in Anthropic's rate-limit messages.
_ACCOUNT_IDS = re.compile(
    r"(?<![\w\-])(?:org|proj)[-_][A-Za-z0-9]{6,}"
    r"|(?<=organization \()[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
    re.IGNORECASE,
)


def scrub_account(text: str) -> str:
    """Return ``text`` without the provider account ids it names."""
    return _ACCOUNT_IDS.sub("[redacted]", text)


def without_account(err: GatewayError) -> GatewayError:
    """``err`` with the provider account ids in its message removed (a provider's message
    about the gateway's own key must not tell the client whose account that is)."""
    message = scrub_account(err.message)
    if message != err.message:
        err.message = message
        err.args = (message,)
    return err
