"""Azure OpenAI (``kind: azure``): OpenAI's wire format behind per-deployment URLs.

``{base_url}/openai/deployments/{deployment}/chat/completions?api-version={api_version}``,
where ``base_url`` is the resource endpoint (``https://NAME.openai.azure.com``) and the
deployment is the model's upstream name (``models.X.model``, default the public name). The key
goes in the ``api-key`` header; with ``bearer_token`` (a Microsoft Entra ID token) it is
``Authorization: Bearer`` instead. Azure takes ``stream_options.include_usage`` from API
version 2024-09-01-preview on; older versions report no usage in streams, which the gateway
then counts locally.
"""

from __future__ import annotations

from urllib.parse import quote

from relay.config.model import ProviderConfig
from relay.exchange import Attempt, Endpoint, Exchange
from relay.providers.openai_compat import OpenAICompatible
from relay.providers.openai_wire import wire_endpoint

RESPONSES_API_VERSION = "2025-03-01-preview"


class AzureOpenAI(OpenAICompatible):
    """Deployment URLs, ``api-version``, the ``api-key`` header."""

    kind = "azure"

    def auth_headers(self, config: ProviderConfig) -> dict[str, str]:
        if config.bearer_token:
            return {"authorization": f"Bearer {config.bearer_token}"}
        return {"api-key": config.api_key} if config.api_key else {}

    def serves_responses(self) -> bool:
        # The Responses API arrived with API version 2025-03-01-preview.
        return (self.config.api_version or "") >= RESPONSES_API_VERSION

    def passthrough(self, ex: Exchange, attempt: Attempt) -> tuple[str, dict[str, str]] | None:
        return None  # Azure's other routes are per deployment and api-version: not mapped

    def url_for(self, ex: Exchange, attempt: Attempt) -> str:
        if ex.endpoint is Endpoint.RESPONSES:  # one URL; the deployment is the body's model
            version = quote(self.config.api_version or "", safe="")
            return f"{self.base_url}/openai/responses?api-version={version}"
        deployment = quote(attempt.deployment.upstream_model, safe="")
        version = quote(self.config.api_version or "", safe="")
        return (
            f"{self.base_url}/openai/deployments/{deployment}{wire_endpoint(ex).value}"
            f"?api-version={version}"
        )

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.config.api_key, self.config.bearer_token) if s)
