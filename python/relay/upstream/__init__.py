"""The only owner of the outbound HTTP client pool."""

from relay.upstream.pool import UpstreamPool, UpstreamResponse

__all__ = ["UpstreamPool", "UpstreamResponse"]
