"""Provider adapters: one small, stateless adapter per provider kind, found by name."""

from relay.providers.base import Provider
from relay.providers.registry import build_providers

__all__ = ["Provider", "build_providers"]
