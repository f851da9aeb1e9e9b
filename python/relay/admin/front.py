"""What the routes put in front of the admin API share (``DELETE /admin/cache``,
``GET /admin/config``): the admin API as they wrap it, their admins-only check, and the
admin API's error envelope (OpenAI's).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Protocol

import msgspec

from relay.admin.access import is_master_key, presented_key
from relay.errors import AuthenticationError, GatewayError, InvalidRequest, PermissionDenied

__all__ = ["AdminApi", "FrontRoute", "Response", "admit_admin", "allow_methods", "error_body"]

Response = tuple[int, list[tuple[str, str]], bytes]


class AdminApi(Protocol):
    """The admin API as a route sees it: the real one, the 404 of a gateway without a
    database, or another route wrapped around either."""

    async def handle(
        self, method: str, path: str, query: str, headers: Any, body: bytes
    ) -> Response:
        """One admin request -> status, headers, body."""
        ...


class FrontRoute:
    """A route in front of the admin API: it answers its one ``PATH`` and passes every other
    request on to the API it wraps (``inner``)."""

    PATH: ClassVar[str]

    def __init__(self, inner: AdminApi, admin_key: str | None) -> None:
        self.inner = inner
        self.admin_key = admin_key

    async def handle(
        self, method: str, path: str, query: str, headers: Any, body: bytes
    ) -> Response:
        """Answer ``PATH``, or pass the request on."""
        if path.rstrip("/") != self.PATH:
            return await self.inner.handle(method, path, query, headers, body)
        return await self.answer(method, query, headers)

    async def answer(self, method: str, query: str, headers: Any) -> Response:
        """The answer of a request to ``PATH``."""
        raise NotImplementedError


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


def allow_methods(method: str, path: str, allowed: tuple[str, ...]) -> None:
    """405 unless ``method`` is one of ``allowed`` (the first is the one the message names)."""
    if method not in allowed:
        raise InvalidRequest(
            f"{method} is not allowed on {path}; use {allowed[0]}",
            code="method_not_allowed",
            status=405,
        )


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
