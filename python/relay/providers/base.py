"""What every provider adapter offers the gateway."""

from __future__ import annotations

from abc import ABC, abstractmethod

from relay.config.model import ProviderConfig
from relay.exchange import Endpoint, Exchange
from relay.upstream import UpstreamPool, UpstreamResponse


class Provider(ABC):
    """A provider adapter: turns an :class:`Exchange` into an upstream call.

    Adapters hold configuration only (no per-request state), so one instance serves every
    request of a worker.
    """

    kind: str = ""
    endpoints: frozenset[Endpoint] = frozenset(Endpoint)

    def __init__(self, name: str, config: ProviderConfig, pool: UpstreamPool) -> None:
        self.name = name
        self.config = config
        self.pool = pool

    @abstractmethod
    async def send(self, ex: Exchange) -> UpstreamResponse:
        """Send the request and return once the response status and headers are known.

        The response speaks OpenAI's wire format (JSON body, or SSE chunks ending in
        ``[DONE]`` with a usage chunk); an adapter for another format translates.
        """

    def error_from(self, status: int, body: bytes, headers: dict[str, str]) -> Exception:
        """Map a 4xx/5xx answer from this provider to the error the client sees."""
        from relay.providers.openai_errors import upstream_error

        return upstream_error(self.name, status, body, headers, secrets=(self.config.api_key,))
