"""The OpenAI-shaped vendors (OpenAI, vLLM, Mistral, Ollama's /v1, Azure OpenAI, LM Studio).

A vendor with quirks subclasses :class:`OpenAICompatible` and overrides a hook or two:
``params`` (which request parameters it takes, see :mod:`relay.providers.params`),
``forces_usage`` (whether it takes ``stream_options.include_usage``), ``url_for`` and
``auth_headers``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from relay import kinds
from relay.config.model import ProviderConfig
from relay.exchange import Attempt, Endpoint, Exchange
from relay.providers.openai_wire import OpenAIWire, upstream_body
from relay.providers.params import NO_RULES, ParamRules
from relay.providers.translate import anthropic_to_openai
from relay.stage import Outbound, UpstreamResponse

# Caller headers that scope an OpenAI key to an organisation or project: forwarded with the
# caller's own key (passthrough), never with the gateway's.
_CALLER_SCOPE_HEADERS = ("openai-organization", "openai-project")


class OpenAICompatible(OpenAIWire):
    """Sends the client's body (model renamed, usage forced on streams) to ``base_url``."""

    kind = "openai"
    # Request parameters per endpoint that the vendor renames, ignores or rejects.
    params: ClassVar[Mapping[Endpoint, ParamRules]] = {}
    # The vendor takes stream_options.include_usage (else it reports usage on its own).
    forces_usage: ClassVar[bool] = True

    def __init__(self, name: str, config: ProviderConfig) -> None:
        super().__init__(name, config)
        self.base_url = (config.base_url or self.default_base_url() or "").rstrip("/")
        self._urls = {endpoint: self.base_url + endpoint.value for endpoint in Endpoint}
        # Anthropic Messages clients are translated to chat completions.
        self._urls[Endpoint.MESSAGES] = self._chat_url = self._urls[Endpoint.CHAT]
        native = config.native_responses
        self.native_responses = self.serves_responses() if native is None else native
        self._static_headers = {
            "content-type": "application/json",
            **self.auth_headers(config),
            **config.headers,
        }

    def serves_responses(self) -> bool:
        """Whether the vendor has OpenAI's Responses API, when the config does not say."""
        return self.kind == "openai"

    def default_base_url(self) -> str | None:
        """Where the vendor listens when the config names no ``base_url``."""
        spec = kinds.spec(self.kind)
        return spec.default_base_url if spec is not None else None

    def auth_headers(self, config: ProviderConfig) -> dict[str, str]:
        """The gateway's own credential (none when the vendor needs no key)."""
        return {"authorization": f"Bearer {config.api_key}"} if config.api_key else {}

    def url_for(self, ex: Exchange, attempt: Attempt) -> str:
        """The upstream URL of this request."""
        endpoint = ex.endpoint
        # The usual request tested by identity: an Enum member hashes through Python code.
        return self._chat_url if endpoint is Endpoint.CHAT else self._urls[endpoint]

    def headers_for(self, ex: Exchange, attempt: Attempt) -> dict[str, str]:
        """Request headers: static ones, the request id, and the right credential."""
        headers = dict(self._static_headers)
        headers["x-request-id"] = ex.request_id
        caller = ex.principal.client_authorization
        if self.config.forward_client_auth and caller:
            for name in self.auth_headers(self.config):
                headers.pop(name, None)
            headers["authorization"] = caller
            attempt.caller_credential = True
            for name in _CALLER_SCOPE_HEADERS:
                if value := ex.headers.get(name):
                    headers[name] = value
        if ex.stream:
            headers["accept"] = "text/event-stream"
        return headers

    def body_for(self, ex: Exchange, attempt: Attempt) -> bytes:
        """The request body: the client's bytes with the vendor's parameter rules applied."""
        return upstream_body(
            ex,
            attempt,
            self.params.get(ex.endpoint, NO_RULES) if self.params else NO_RULES,
            provider=self.name,
            kind=self.kind,
            force_usage=self.forces_usage,
        )

    def passthrough(self, ex: Exchange, attempt: Attempt) -> tuple[str, dict[str, str]] | None:
        headers = self.headers_for(ex, attempt)
        headers.pop("content-type", None)
        return self.base_url, headers

    async def prepare(self, ex: Exchange, attempt: Attempt) -> Outbound | UpstreamResponse:
        if ex.endpoint is Endpoint.COUNT_TOKENS:
            return await anthropic_to_openai.count_tokens(ex, attempt)
        body = self.body_for(ex, attempt)
        if ex.stream and ex.endpoint is Endpoint.MESSAGES:
            # A translated Messages stream reports the prompt's tokens in its first event,
            # before the provider reports any: counted here (off the loop when large).
            attempt.prompt_tokens = await anthropic_to_openai.prompt_tokens(attempt, body)
        return Outbound(self.url_for(ex, attempt), self.headers_for(ex, attempt), body)
