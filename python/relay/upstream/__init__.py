"""The only owner of the outbound HTTP client pool."""

from relay.stage import UpstreamResponse
from relay.upstream.pool import UpstreamPool

__all__ = ["UpstreamPool", "UpstreamResponse"]
