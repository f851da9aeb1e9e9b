"""Provider adapters: one small, stateless adapter per provider kind, found by name."""

from relay.providers.base import ProviderBase
from relay.providers.registry import build_providers

__all__ = ["ProviderBase", "build_providers"]
