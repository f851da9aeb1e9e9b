"""The bounds on a provider's answer read whole, shared by both clients of the pool."""

from __future__ import annotations

from relay.errors import UpstreamProtocolError

# The largest error answer read (a provider's error is a few hundred bytes; an HTML page a few
# KiB); and the default bound of a successful answer read whole.
MAX_ERROR_BODY = 1024 * 1024
MAX_BODY = 128 * 1024 * 1024


def too_large(provider: str, status: int, limit: int) -> UpstreamProtocolError:
    """The 502 of an answer over ``limit`` bytes once decompressed."""
    if status >= 300:
        return UpstreamProtocolError(
            f"provider '{provider}' answered {status} with an error body over {limit} bytes"
        )
    return UpstreamProtocolError(
        f"provider '{provider}' answered with a body over {limit} bytes (decompressed); "
        "the limit is server.max_upstream_body_bytes"
    )
