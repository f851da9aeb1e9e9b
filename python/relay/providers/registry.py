"""Provider kinds by name: built-in adapters and plugins, from the one catalogue
(:mod:`relay.kinds`) that configuration validation also asks."""

from __future__ import annotations

from relay import kinds
from relay.config.model import Config
from relay.providers.base import ProviderBase


class PluginError(Exception):
    """A plugin's entry point does not name a usable provider adapter."""


def adapter_class(kind: str) -> type[ProviderBase]:
    """The adapter class of ``kind``; a plugin's is checked to be a :class:`Provider`."""
    try:
        found = kinds.load(kind)
    except LookupError:
        raise
    except Exception as exc:
        raise PluginError(f"provider kind {kind!r} could not be loaded: {exc}") from exc
    if not (isinstance(found, type) and issubclass(found, ProviderBase)):
        raise PluginError(
            f"provider kind {kind!r}: the entry point must name a subclass of "
            f"relay.providers.ProviderBase, got {found!r}"
        )
    return found


def build_providers(config: Config) -> dict[str, ProviderBase]:
    """One adapter instance per configured provider."""
    return {
        name: adapter_class(provider.kind)(name, provider)
        for name, provider in config.providers.items()
    }
