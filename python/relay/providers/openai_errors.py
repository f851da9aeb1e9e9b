"""OpenAI-shaped error bodies from upstreams, mapped to the gateway's error once."""

from __future__ import annotations

import msgspec

from relay.errors import UpstreamStatusError, scrub_secrets
from relay.wire.openai import ERROR_DECODER

# Headers from a provider's error answer worth passing to the client.
_PASSED_HEADERS = ("retry-after", "x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")


def upstream_error(
    provider: str,
    status: int,
    body: bytes,
    headers: dict[str, str],
    *,
    secrets: tuple[str | None, ...] = (),
) -> UpstreamStatusError:
    """Pass the provider's status and message through, with secrets scrubbed."""
    passed = tuple((h, headers[h]) for h in _PASSED_HEADERS if h in headers)
    clean = tuple(s for s in secrets if s)
    try:
        error = ERROR_DECODER.decode(body).error
    except (msgspec.DecodeError, msgspec.ValidationError):
        text = body[:500].decode("utf-8", "replace").strip() or "(empty body)"
        return UpstreamStatusError(
            status,
            scrub_secrets(f"provider '{provider}' answered {status}: {text}", *clean),
            headers=passed,
        )
    message = error.get("message")
    error_type = error.get("type")
    param = error.get("param")
    code = error.get("code")
    return UpstreamStatusError(
        status,
        scrub_secrets(
            str(message) if message is not None else f"provider '{provider}' answered {status}",
            *clean,
        ),
        error_type=str(error_type) if isinstance(error_type, str) else None,
        param=str(param) if isinstance(param, str) else None,
        code=str(code) if isinstance(code, str | int) else None,
        headers=passed,
    )
