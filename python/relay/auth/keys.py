"""The ``keys`` and ``none`` auth stages: who is calling, decided from memory only.

``keys``: the caller presents a gateway key (``Authorization: Bearer gw-sk-...`` or
``x-api-key``); the in-memory :class:`~relay.auth.cache.KeyCache` says whose it is. The key is
never forwarded: providers get the credentials from the config. ``none``: nobody is
identified; ``metadata.tenant`` names the tenant the request is attributed to.
In both modes ``metadata.use_case`` is recorded, and never used to authorise.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import NoReturn

from relay.auth.cache import CachedKey, KeyCache
from relay.errors import AuthenticationError, InvalidRequest, PermissionDenied
from relay.exchange import Exchange, Principal
from relay.stage import Reply

_LABEL_MAX = 128


def read_metadata(ex: Exchange) -> tuple[str | None, str | None]:
    """``metadata.tenant`` and ``metadata.use_case`` as the dialect decoded them (no second
    decode of the body); each at most 128 characters."""
    metadata = getattr(ex.request, "metadata", None)
    tenant = getattr(metadata, "tenant", None)
    use_case = getattr(metadata, "use_case", None)
    for name, value in (("tenant", tenant), ("use_case", use_case)):
        if isinstance(value, str) and len(value) > _LABEL_MAX:
            raise InvalidRequest(
                f"metadata.{name}: at most {_LABEL_MAX} characters, got {len(value)}",
                param=f"metadata.{name}",
            )
    return tenant, use_case


def presented_key(ex: Exchange) -> str | None:
    """The bearer token, else ``x-api-key`` (Anthropic's header)."""
    headers = ex.headers
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        return token.strip() or None if scheme.lower() == "bearer" else None
    return headers.get("x-api-key") or None


class KeyAuth:
    """``auth.mode: keys``: 401 without a live key, 403 for a model outside its allow-list."""

    def __init__(self, cache: KeyCache) -> None:
        self.cache = cache

    def admit(self, ex: Exchange) -> Awaitable[None] | None:
        """Who is calling, from the headers alone: runs before the body is read, so an
        unauthenticated caller gets its 401 without the gateway reading or judging its body.

        Decided from memory (None) for every key the worker knows; a key it does not know
        yet may have been created since the last poll, and is looked up in the database
        (the awaitable returned, still before the body)."""
        key = presented_key(ex)
        if key is None:
            _refuse(ex, "missing gateway key: send it as 'Authorization: Bearer gw-sk-...'")
        record = self.cache.lookup(key)
        if record is None:
            return self._admit_found(ex, key)
        self._admit(ex, record)
        return None

    async def _admit_found(self, ex: Exchange, key: str) -> None:
        record = await self.cache.find(key)
        if record is None:
            _refuse(ex, "invalid gateway key")
        self._admit(ex, record)

    @staticmethod
    def _admit(ex: Exchange, record: CachedKey) -> None:
        if record.revoked:
            _refuse(ex, f"gateway key {record.prefix}... has been revoked")
        if record.expires_at is not None and time.time() >= record.expires_at:
            _refuse(ex, f"gateway key {record.prefix}... has expired")
        ex.principal = Principal(
            tenant=record.tenant or "",
            key_id=record.id,
            organization=record.organization,
            tenant_id=record.tenant_id,
            key_prefix=record.prefix,
            user_id=record.user_id,
            role=record.role,
            allowed_models=record.allowed_models,
            key_limits=record.key_limits,
            tenant_limits=record.tenant_limits,
        )

    async def __call__(self, ex: Exchange) -> Reply | None:
        """After the body is decoded: the use case, and the key's allow-list (403)."""
        if ex.principal.key_id is None:  # not admitted at the gate (called on its own)
            pending = self.admit(ex)
            if pending is not None:
                await pending
        principal = ex.principal
        _, principal.use_case = read_metadata(ex)
        allowed = principal.allowed_models  # after the principal: refusals are attributed
        # A pass-through route that names no model (a stored response, a file) is judged
        # later: by the stored response's model, else routing refuses it to restricted keys.
        if allowed is not None and ex.model not in allowed and (ex.model or not ex.path):
            raise PermissionDenied(
                f"this key may not use model '{ex.model}' (allowed: {', '.join(sorted(allowed)) or 'none'})",
                param="model",
            )
        return None


def _refuse(ex: Exchange, message: str) -> NoReturn:
    """A 401, recorded with no tenant: a refused caller is nobody's (not ``default``'s)."""
    ex.principal.tenant = ""
    raise AuthenticationError(message)


class MetadataAuth:
    """``auth.mode: none``: attribution (and later limits) by ``metadata.tenant``."""

    def __init__(self, cache: KeyCache) -> None:
        self.cache = cache

    async def __call__(self, ex: Exchange) -> Reply | None:
        tenant_name, use_case = read_metadata(ex)
        principal = ex.principal
        authorization = ex.headers.get("authorization")
        if authorization is None and (api_key := ex.headers.get("x-api-key")):
            authorization = f"Bearer {api_key}"
        principal.client_authorization = authorization
        principal.use_case = use_case
        if tenant_name:
            tenant = self.cache.tenant(tenant_name)
            if tenant is None:
                # Unknown tenants are still attributed, by name, in the default organisation.
                principal.tenant = tenant_name
            else:
                principal.tenant = tenant.name
                principal.tenant_id = tenant.id
                principal.organization = tenant.organization
                principal.tenant_limits = tenant.limits
        return None
