"""The ``keys`` and ``none`` auth stages: who is calling, decided from memory only.

``keys``: the caller presents a gateway key (``Authorization: Bearer gw-sk-...`` or
``x-api-key``); the in-memory :class:`~relay.auth.cache.KeyCache` says whose it is. The key is
never forwarded: providers get the credentials from the config. ``none``: nobody is
identified; ``metadata.tenant`` names the tenant the request is attributed to.
In both modes ``metadata.use_case`` is recorded, and never used to authorise.
"""

from __future__ import annotations

import time
from typing import Annotated

import msgspec

from relay.auth.cache import KeyCache
from relay.errors import AuthenticationError, InvalidRequest, PermissionDenied
from relay.exchange import Exchange, Principal
from relay.stage import Reply
from relay.wire.decode import schema_error

_Label = Annotated[str, msgspec.Meta(max_length=128)]


class _Metadata(msgspec.Struct, frozen=True):
    tenant: _Label | None = None
    use_case: _Label | None = None


class _WithMetadata(msgspec.Struct, frozen=True):
    # OpenAI's metadata is a map of strings; only these two keys mean something here.
    metadata: _Metadata | None = None


_METADATA = msgspec.json.Decoder(_WithMetadata)


def read_metadata(body: bytes) -> _Metadata | None:
    """``metadata.tenant`` and ``metadata.use_case`` from the body, decoded only if present."""
    if b'"metadata"' not in body:
        return None
    try:
        return _METADATA.decode(body).metadata
    except msgspec.ValidationError as exc:
        raise schema_error(str(exc)) from None
    except msgspec.DecodeError:
        raise InvalidRequest("invalid JSON in request body") from None


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

    async def __call__(self, ex: Exchange) -> Reply | None:
        key = presented_key(ex)
        if key is None:
            raise AuthenticationError(
                "missing gateway key: send it as 'Authorization: Bearer gw-sk-...'"
            )
        record = self.cache.lookup(key)
        if record is None:
            raise AuthenticationError("invalid gateway key")
        if record.revoked:
            raise AuthenticationError(f"gateway key {record.prefix}... has been revoked")
        if record.expires_at is not None and time.time() >= record.expires_at:
            raise AuthenticationError(f"gateway key {record.prefix}... has expired")
        metadata = read_metadata(ex.body)
        ex.principal = Principal(
            tenant=record.tenant or "",
            key_id=record.id,
            organization=record.organization,
            tenant_id=record.tenant_id,
            key_prefix=record.prefix,
            user_id=record.user_id,
            role=record.role,
            use_case=metadata.use_case if metadata else None,
            allowed_models=record.allowed_models,
            key_limits=record.key_limits,
            tenant_limits=record.tenant_limits,
        )
        allowed = record.allowed_models  # after the principal: refusals are attributed
        if allowed is not None and ex.model not in allowed:
            raise PermissionDenied(
                f"this key may not use model '{ex.model}' (allowed: {', '.join(sorted(allowed)) or 'none'})",
                param="model",
            )
        return None


class MetadataAuth:
    """``auth.mode: none``: attribution (and later limits) by ``metadata.tenant``."""

    def __init__(self, cache: KeyCache) -> None:
        self.cache = cache

    async def __call__(self, ex: Exchange) -> Reply | None:
        metadata = read_metadata(ex.body)
        principal = ex.principal
        authorization = ex.headers.get("authorization")
        if authorization is None and (api_key := ex.headers.get("x-api-key")):
            authorization = f"Bearer {api_key}"
        principal.client_authorization = authorization
        if metadata is None:
            return None
        principal.use_case = metadata.use_case
        if metadata.tenant:
            tenant = self.cache.tenant(metadata.tenant)
            if tenant is None:
                # Unknown tenants are still attributed, by name, in the default organisation.
                principal.tenant = metadata.tenant
            else:
                principal.tenant = tenant.name
                principal.tenant_id = tenant.id
                principal.organization = tenant.organization
                principal.tenant_limits = tenant.limits
        return None
