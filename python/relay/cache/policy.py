"""What may be cached and under which key: the request side of the cache's decision.

The key is the native ``cache_key`` of the client's body (canonical JSON: keys sorted, numbers
normalised) without the fields that do not change the answer, salted with the endpoint, the
resolved model and the caller's namespace: organisation and tenant (unless ``cache.shared``),
and a hash of the caller's own provider credential when one is forwarded (every such caller
is tenant ``default``, and provider accounts must not share answers; nor may a credential the
provider never checked be answered from the cache).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from relay.config.model import CacheConfig, CacheMode, Config
from relay.exchange import Endpoint, Exchange
from relay.native import cache_key

# Fields that never change the answer, always left out of the key.
ALWAYS_IGNORED = ("user", "stream", "stream_options", "metadata", "store")
# The routes whose answers are cached (not /v1/responses: its ids are stored and referenced).
CACHED_ENDPOINTS = frozenset(
    {Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.EMBEDDINGS, Endpoint.MESSAGES}
)


@dataclass(frozen=True, slots=True)
class ModelPolicy:
    """A model's cache mode and entry lifetime, resolved from the section and its override."""

    mode: CacheMode
    ttl_s: float
    deterministic: bool = False


def tag(*parts: str) -> str:
    """A short stable hash of ``parts`` (purges find entries by it; never the names)."""
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]


class Policy:
    """Per-model modes, the request-side rules and the key (built once per worker)."""

    def __init__(self, config: Config) -> None:
        cache: CacheConfig = config.cache
        self.shared = cache.shared
        self.ignore = tuple(dict.fromkeys((*ALWAYS_IGNORED, *cache.ignore_fields)))
        self.default = ModelPolicy(cache.mode, cache.ttl_s)
        self.models: dict[str, ModelPolicy] = {}
        for name, model in config.models.items():
            override = model.cache
            mode = override.mode if override and override.mode else cache.mode
            ttl = override.ttl_s if override and override.ttl_s else cache.ttl_s
            self.models[name] = ModelPolicy(mode, ttl, model.deterministic)

    @property
    def enabled(self) -> bool:
        """Some model may be cached: the stage and hooks are worth listing."""
        return self.default.mode != "off" or any(p.mode != "off" for p in self.models.values())

    def of(self, model: str) -> ModelPolicy:
        """``model``'s policy (a name the config does not list: the section's)."""
        return self.models.get(model, self.default)

    def cacheable(self, ex: Exchange, policy: ModelPolicy) -> bool:
        """May this request's answer be cached at all (its mode, ``n``, its sampling)?"""
        request: Any = ex.request
        n = getattr(request, "n", None)
        if n is not None and n > 1:
            return False
        if policy.mode == "all" or policy.deterministic:
            return True
        if ex.endpoint is Endpoint.EMBEDDINGS:
            return True  # an embedding does not sample
        if getattr(request, "temperature", None) == 0:
            return True
        return getattr(request, "seed", None) is not None

    def key(self, ex: Exchange) -> str:
        """The entry's key for this request (see the module docstring)."""
        principal = ex.principal
        deployment = ex.deployment
        model = deployment.public_model if deployment is not None else ex.model
        parts = [ex.endpoint.value, model]
        if not self.shared:
            parts += (principal.organization, principal.tenant)
        credential = principal.client_authorization
        if credential:
            parts.append(hashlib.sha256(credential.encode()).hexdigest())
        salt = "\x00".join(parts).encode()
        return cache_key(ex.body, ignore=self.ignore, salt=salt)

    def tags(self, ex: Exchange) -> tuple[str, str]:
        """The (tenant, model) tags an entry is purged by."""
        principal = ex.principal
        return tenant_tag(principal.organization, principal.tenant), tag(ex.model)


def tenant_tag(organization: str, tenant: str) -> str:
    """The tag of a tenant's entries."""
    return tag(organization, tenant)
