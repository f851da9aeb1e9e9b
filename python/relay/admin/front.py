"""What the routes put in front of the admin API share (``DELETE /admin/cache``,
``GET /admin/config``): the admin API as they wrap it, their admins-only check, and the
admin API's error envelope (OpenAI's).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import msgspec

from relay.admin.access import is_master_key, presented_key
from relay.errors import AuthenticationError, GatewayError, PermissionDenied

__all__ = ["AdminApi", "Response", "admit_admin", "error_body"]

Response = tuple[int, list[tuple[str, str]], bytes]


class AdminApi(Protocol):
    """The admin API as a route sees it: the real one, the 404 of a gateway without a
    database, or another route wrapped around either."""

    async def handle(
        self, method: str, path: str, query: str, headers: Any, body: bytes
    ) -> Response:
        """One admin request -> status, headers, body."""
        ...


async def admit_admin(
    headers: Mapping[str, str], admin_key: str | None, inner: object, denied: str
) -> None:
    """Let in the master key or an admin user's key (checked by the wrapped admin API's
    ``authenticate``); 401 for another key, 403 with ``denied`` for a user who is no admin."""
    if is_master_key(presented_key(headers), admin_key):
        return
    authenticate = _authenticate_of(inner)
    if authenticate is None:
        raise AuthenticationError("invalid admin key")
    actor = await authenticate(headers)
    if not actor.is_admin:
        raise PermissionDenied(denied)


def _authenticate_of(api: object) -> Any:
    """The admin API's ``authenticate`` (users' keys), through the routes wrapped around it."""
    while api is not None:
        found = getattr(api, "authenticate", None)
        if found is not None:
            return found
        api = getattr(api, "inner", None)
    return None


def error_body(err: GatewayError) -> bytes:
    """OpenAI's error envelope, which the admin API always uses."""
    return msgspec.json.encode(
        {"error": {"message": err.message, "type": err.type, "param": err.param, "code": err.code}}
    )
