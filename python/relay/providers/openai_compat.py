"""The shared base for OpenAI-shaped vendors (OpenAI, vLLM, Mistral, Ollama's /v1, LM Studio).

A vendor with quirks subclasses :class:`OpenAICompatible` and overrides a hook or two.
"""

from __future__ import annotations

import msgspec

from relay.exchange import Endpoint, Exchange
from relay.providers.base import Provider
from relay.upstream import UpstreamResponse

_ENCODER = msgspec.json.Encoder()


class OpenAICompatible(Provider):
    """Sends the client's body (model renamed, usage forced on streams) to ``base_url``."""

    kind = "openai"

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        base = (self.config.base_url or "").rstrip("/")
        self._urls = {endpoint: base + endpoint.value for endpoint in Endpoint}
        self._static_headers = {"content-type": "application/json", **self.config.headers}
        if self.config.api_key:
            self._static_headers["authorization"] = f"Bearer {self.config.api_key}"

    def headers_for(self, ex: Exchange) -> dict[str, str]:
        """Request headers: static ones, the request id, and the right credential."""
        headers = dict(self._static_headers)
        headers["x-request-id"] = ex.request_id
        if self.config.forward_client_auth and ex.principal.client_authorization:
            headers["authorization"] = ex.principal.client_authorization
        if ex.stream:
            headers["accept"] = "text/event-stream"
        return headers

    def body_for(self, ex: Exchange) -> bytes:
        """The client's bytes unless something must change: upstream model name, usage chunk."""
        deployment = ex.deployment
        rename = deployment is not None and deployment.upstream_model != ex.model
        force_usage = (
            ex.stream and not ex.client_wants_usage and ex.endpoint is not Endpoint.EMBEDDINGS
        )
        if not rename and not force_usage:
            return ex.body
        request = msgspec.json.decode(ex.body)
        if rename and deployment is not None:
            request["model"] = deployment.upstream_model
        if force_usage:
            options = request.get("stream_options")
            request["stream_options"] = {
                **(options if isinstance(options, dict) else {}),
                "include_usage": True,
            }
        return _ENCODER.encode(request)

    async def send(self, ex: Exchange) -> UpstreamResponse:
        return await self.pool.send(
            self.name,
            self._urls[ex.endpoint],
            self.headers_for(ex),
            self.body_for(ex),
            self.config.timeouts,
            stream=ex.stream,
        )
