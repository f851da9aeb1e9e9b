"""``DELETE /admin/cache``: purge every entry, a tenant's (``?tenant=NAME``, with
``&organization=ORG`` when it is not ``default``) or a model's (``?model=NAME``), for admins
(the master key, or an admin user's key). Every other ``/admin`` request goes to the admin API
it wraps."""

from __future__ import annotations

import sys
from typing import Any
from urllib.parse import parse_qs

import msgspec

from relay.admin.front import AdminApi, FrontRoute, Response, admit_admin, allow_methods, error_body
from relay.cache.policy import tag, tenant_tag
from relay.cache.store import Cache
from relay.errors import GatewayError, InvalidRequest

PATH = "/admin/cache"
_JSON = ("content-type", "application/json")
_KNOWN = ("tenant", "organization", "model")


class CacheAdmin(FrontRoute):
    """The admin API with ``DELETE /admin/cache`` in front of it."""

    PATH = PATH

    def __init__(self, inner: AdminApi, cache: Cache, admin_key: str | None) -> None:
        super().__init__(inner, admin_key)
        self.cache = cache

    async def answer(self, method: str, query: str, headers: Any) -> Response:
        """Purge."""
        try:
            allow_methods(method, PATH, ("DELETE",))
            await admit_admin(
                headers, self.admin_key, self.inner, "only admins can purge the cache"
            )
            tenant, model = _scope(query)
            purged = await self.cache.purge(tenant, model)
        except GatewayError as err:
            return err.status, [_JSON, *err.headers], error_body(err)
        except Exception as exc:
            if not _backend_failed(exc):
                raise
            down = GatewayError(
                f"the cache could not be purged: {type(exc).__name__}",
                code="cache_unavailable",
                status=503,
            )
            return 503, [_JSON], error_body(down)
        answer = {"purged": purged, "backend": self.cache.backend.name}
        return 200, [_JSON], msgspec.json.encode(answer)


def _scope(query: str) -> tuple[str | None, str | None]:
    params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    for name in params:
        if name not in _KNOWN:
            raise InvalidRequest(
                f"{name}: unknown query parameter (known: {', '.join(_KNOWN)})", param=name
            )
    if "organization" in params and "tenant" not in params:
        raise InvalidRequest("organization: only with tenant", param="organization")
    tenant = params.get("tenant")
    model = params.get("model")
    for name, value in (("tenant", tenant), ("model", model)):
        if value is not None and not value:
            raise InvalidRequest(f"{name}: must not be empty", param=name)
    return (
        tenant_tag(params.get("organization") or "default", tenant) if tenant else None,
        tag(model) if model else None,
    )


def _backend_failed(exc: Exception) -> bool:
    """Redis failed during the purge (its client is imported only with the Redis backend)."""
    if isinstance(exc, OSError | TimeoutError):
        return True
    redis_errors = sys.modules.get("redis.exceptions")
    return redis_errors is not None and isinstance(exc, redis_errors.RedisError)
