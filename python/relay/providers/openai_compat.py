"""The OpenAI-shaped vendors (OpenAI, vLLM, Mistral, Ollama's /v1, LM Studio).

A vendor with quirks subclasses :class:`OpenAICompatible` and overrides a hook or two.
"""

from __future__ import annotations

from relay.config.model import ProviderConfig
from relay.exchange import Attempt, Endpoint, Exchange
from relay.providers.openai_wire import OpenAIWire, upstream_body
from relay.upstream import UpstreamPool, UpstreamResponse

# Caller headers that scope an OpenAI key to an organisation or project: forwarded with the
# caller's own key (passthrough), never with the gateway's.
_CALLER_SCOPE_HEADERS = ("openai-organization", "openai-project")


class OpenAICompatible(OpenAIWire):
    """Sends the client's body (model renamed, usage forced on streams) to ``base_url``."""

    kind = "openai"

    def __init__(self, name: str, config: ProviderConfig, pool: UpstreamPool) -> None:
        super().__init__(name, config, pool)
        base = (config.base_url or "").rstrip("/")
        self._urls = {endpoint: base + endpoint.value for endpoint in Endpoint}
        self._static_headers = {"content-type": "application/json", **config.headers}
        if config.api_key:
            self._static_headers["authorization"] = f"Bearer {config.api_key}"

    def headers_for(self, ex: Exchange, attempt: Attempt) -> dict[str, str]:
        """Request headers: static ones, the request id, and the right credential."""
        headers = dict(self._static_headers)
        headers["x-request-id"] = ex.request_id
        caller = ex.principal.client_authorization
        if self.config.forward_client_auth and caller:
            headers["authorization"] = caller
            attempt.caller_credential = True
            for name in _CALLER_SCOPE_HEADERS:
                if value := ex.headers.get(name):
                    headers[name] = value
        if ex.stream:
            headers["accept"] = "text/event-stream"
        return headers

    async def send(self, ex: Exchange, attempt: Attempt) -> UpstreamResponse:
        return await self.pool.send(
            self.name,
            self._urls[ex.endpoint],
            self.headers_for(ex, attempt),
            upstream_body(ex, attempt),
            self.config.timeouts,
            stream=ex.stream,
        )
