"""Auth: who is calling, by ``auth.mode``: a gateway key (``keys``), ``metadata.tenant``
(``none``), or the caller's own provider key, forwarded (``passthrough``)."""

from __future__ import annotations

from relay.auth.cache import KeyCache
from relay.auth.keys import KeyAuth, MetadataAuth
from relay.auth.passthrough import PassthroughAuth
from relay.config.model import AuthMode


def auth_stage(mode: AuthMode | None, cache: KeyCache) -> KeyAuth | MetadataAuth | PassthroughAuth:
    """The auth stage of ``mode`` (decided before the workers start; see relay.auth.mode)."""
    if mode == "keys":
        return KeyAuth(cache)
    if mode == "none":
        return MetadataAuth(cache)
    return PassthroughAuth()
