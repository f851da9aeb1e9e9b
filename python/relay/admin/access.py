"""Who is using the admin API, and what of it they may see."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from relay.errors import AuthenticationError, GatewayError, InvalidRequest


class AdminForbidden(GatewayError):
    """The credential is valid but may not do this (403)."""

    status = 403
    type = "permission_denied"
    code = "forbidden"


class Conflict(InvalidRequest):
    """The object already exists (409)."""

    status = 409
    code = "conflict"


class ObjectNotFound(InvalidRequest):
    """No such object, or one in another organisation: the two look the same (404)."""

    status = 404
    code = "not_found"


@dataclass(frozen=True, slots=True)
class Actor:
    """The master key, the CLI, or a user's key with its role and organisation."""

    name: str
    role: str  # "admin" | "user"
    organization: str | None = None
    user_id: str | None = None

    @property
    def is_admin(self) -> bool:
        """Admins manage every organisation."""
        return self.role == "admin"

    def org_filter(self) -> str | None:
        """The only organisation this actor may see, or None for all."""
        return None if self.is_admin else self.organization

    def target_org(self, requested: str | None) -> str:
        """The organisation a new object goes in: users may only create in their own."""
        if self.is_admin:
            return requested or self.organization or "default"
        assert self.organization is not None
        if requested not in (None, self.organization):
            raise AdminForbidden(
                f"organization: you can only manage organization '{self.organization}'",
                param="organization",
            )
        return self.organization


MASTER = Actor("master", "admin")
CLI = Actor("cli", "admin")


def presented_key(headers: Mapping[str, str]) -> str:
    """The key an admin request presents (``Authorization: Bearer``, else ``x-api-key``);
    401 without one."""
    token = None
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, rest = authorization.partition(" ")
        token = rest.strip() if scheme.lower() == "bearer" else None
    token = token or headers.get("x-api-key")
    if not token:
        raise AuthenticationError("the admin API needs a key: 'Authorization: Bearer <admin key>'")
    return token


def is_master_key(token: str, admin_key: str | None) -> bool:
    """``token`` is the configured admin (master) key, compared in constant time."""
    return bool(admin_key) and hmac.compare_digest(token.encode(), (admin_key or "").encode())
