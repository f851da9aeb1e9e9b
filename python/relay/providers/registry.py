"""Provider kinds by name."""

from __future__ import annotations

from relay.config.model import Config
from relay.providers.base import Provider
from relay.providers.echo import EchoProvider
from relay.providers.openai_compat import OpenAICompatible
from relay.upstream import UpstreamPool

# Config validation names the same kinds (KNOWN_PROVIDER_KINDS: config sits below providers and
# cannot import them); a unit test keeps the two equal.
_KINDS: dict[str, type[Provider]] = {
    OpenAICompatible.kind: OpenAICompatible,
    EchoProvider.kind: EchoProvider,
}


def build_providers(config: Config, pool: UpstreamPool) -> dict[str, Provider]:
    """One adapter instance per configured provider."""
    return {
        name: _KINDS[provider.kind](name, provider, pool)
        for name, provider in config.providers.items()
    }
