"""The admin JSON API under ``/admin``: authentication, dispatch, input checking, errors.

Authenticated by the master key (``auth.admin_key`` / ``RELAY_ADMIN_KEY``) or by a user's
gateway key (role ``admin`` or ``user``). Users see and manage only their organisation: an
object of another organisation answers 404, exactly like one that does not exist.
Errors use OpenAI's envelope; bad input is a 400 whose message and ``param`` name the field.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import msgspec

from relay.admin import reports
from relay.admin.access import Actor, AdminForbidden, ObjectNotFound, is_master_key, presented_key
from relay.admin.front import Response, error_body
from relay.admin.models import (
    NO_NUL,
    CachePurged,
    KeyCreate,
    KeyList,
    TenantCreate,
    TenantList,
    TenantUpdate,
    UserCreate,
    UserList,
    enum_problem,
)
from relay.admin.openapi import openapi_document
from relay.admin.routes import ROUTES, Route
from relay.admin.store import AdminStore
from relay.auth.cache import KeyCache
from relay.errors import AuthenticationError, GatewayError, InvalidRequest
from relay.ledger.database import Database, DatabaseUnavailable
from relay.wire.decode import schema_problem

log = logging.getLogger("relay.admin")

_JSON = [("content-type", "application/json")]
_NUL_REFUSED = f"expected `str` matching regex {NO_NUL!r}"
_REQUEST_FILTERS = {
    "tenant": "tenant",
    "model": "model",
    "key_prefix": "key_prefix",
    "use_case": "use_case",
    "status": "status",
}


class DatabaseDown(GatewayError):
    """The database did not answer (503)."""

    status = 503
    code = "database_unavailable"


class AdminApi:
    """Answers ``/admin/...`` requests; the RSGI app passes method, path, query, headers, body."""

    def __init__(self, db: Database, cache: KeyCache, admin_key: str | None) -> None:
        self.db = db
        self.cache = cache
        self.store = AdminStore(db)
        self.admin_key = admin_key
        self._openapi_json = msgspec.json.encode(openapi_document())

    async def handle(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> Response:
        """One admin request -> (status, headers, body)."""
        try:
            actor = await self.authenticate(headers)
            status, result = await self.run(actor, method, path, query, body)
            payload = result if isinstance(result, bytes) else msgspec.json.encode(result)
            return status, list(_JSON), payload
        except GatewayError as err:
            return err.status, [*_JSON, *err.headers], error_body(err)
        except DatabaseUnavailable as exc:
            log.warning("admin request failed: %s", exc)
            down = DatabaseDown("the database is unavailable; retry shortly")
            return down.status, list(_JSON), error_body(down)
        except Exception:
            log.exception("admin request failed: %s %s", method, path)
            failed = GatewayError("the admin API failed; see the gateway's logs")
            return failed.status, list(_JSON), error_body(failed)

    async def run(
        self, actor: Actor, method: str, path: str, query: str, body: bytes
    ) -> tuple[int, Any]:
        """One operation of the route table for an authenticated ``actor``: (status, result
        object). The dashboard calls this too, so both apply the same checks and access
        rules. Raises :class:`GatewayError` (and ``DatabaseUnavailable``)."""
        route, object_id = _route(method, path)
        if route.admin_only and not actor.is_admin:
            raise AdminForbidden("only admins can do this")
        handler: Callable[..., Awaitable[tuple[int, Any]]] = getattr(self, "_" + route.handler)
        if object_id is not None and "\x00" in object_id:
            # No object has such an id, and PostgreSQL refuses NUL in text.
            raise ObjectNotFound(f"no object with id {object_id!r}")
        params = _params(query)
        status, result = await handler(actor, object_id, params, body, route)
        if route.method != "GET":
            # This worker sees its own change at once; the others at their next poll.
            await self.cache.refresh()
        return status, result

    async def authenticate(self, headers: Mapping[str, str]) -> Actor:
        """The master key, or a live key of a user; 401 without one, 403 for a tenant's key."""
        token = presented_key(headers)
        if is_master_key(token, self.admin_key):
            return Actor("master", "admin")
        # A user's key made a moment ago on another worker is found in the database.
        record = await self.cache.find(token)
        if record is None or record.revoked:
            raise AuthenticationError("invalid admin key")
        if record.expires_at is not None and time.time() >= record.expires_at:
            raise AuthenticationError(f"key {record.prefix}... has expired")
        if record.user_id is None or record.role is None:
            raise AdminForbidden("a tenant's key cannot use the admin API; use a user's key")
        return Actor(f"user:{record.user_id}", record.role, record.organization, record.user_id)

    # -- tenants --------------------------------------------------------------------------
    async def _create_tenant(
        self, actor: Actor, _: None, __: Any, body: bytes, r: Route
    ) -> tuple[int, Any]:
        return 201, await self.store.create_tenant(actor, _decode(body, TenantCreate))

    async def _list_tenants(self, actor: Actor, *_: Any) -> tuple[int, Any]:
        return 200, TenantList(await self.store.list_tenants(actor))

    async def _get_tenant(self, actor: Actor, tid: str, *_: Any) -> tuple[int, Any]:
        tenant = await self.store.get_tenant(actor, tid)
        if tenant is None:
            raise ObjectNotFound(f"no tenant with id '{tid}'")
        return 200, tenant

    async def _update_tenant(
        self, actor: Actor, tid: str, _: Any, body: bytes, r: Route
    ) -> tuple[int, Any]:
        return 200, await self.store.update_tenant(actor, tid, _decode(body, TenantUpdate))

    async def _delete_tenant(self, actor: Actor, tid: str, *_: Any) -> tuple[int, Any]:
        return 200, await self.store.delete_tenant(actor, tid)

    # -- keys and users -------------------------------------------------------------------
    async def _create_key(
        self, actor: Actor, _: None, __: Any, body: bytes, r: Route
    ) -> tuple[int, Any]:
        request = _decode(body, KeyCreate)
        if request.expires_at is not None and request.expires_at.tzinfo is None:
            request.expires_at = request.expires_at.replace(tzinfo=UTC)
        return 201, await self.store.create_key(actor, request)

    async def _list_keys(
        self, actor: Actor, _: None, params: dict[str, str], *__: Any
    ) -> tuple[int, Any]:
        return 200, KeyList(await self.store.list_keys(actor, tenant_id=params.get("tenant_id")))

    async def _get_key(self, actor: Actor, kid: str, *_: Any) -> tuple[int, Any]:
        key = await self.store.get_key(actor, kid)
        if key is None:
            raise ObjectNotFound(f"no key with id '{kid}'")
        return 200, key

    async def _revoke_key(self, actor: Actor, kid: str, *_: Any) -> tuple[int, Any]:
        return 200, await self.store.revoke_key(actor, kid)

    async def _create_user(
        self, actor: Actor, _: None, __: Any, body: bytes, r: Route
    ) -> tuple[int, Any]:
        return 201, await self.store.create_user(actor, _decode(body, UserCreate))

    async def _list_users(self, actor: Actor, *_: Any) -> tuple[int, Any]:
        return 200, UserList(await self.store.list_users(actor))

    # -- reports --------------------------------------------------------------------------
    async def _usage(
        self, actor: Actor, _: None, params: dict[str, str], *__: Any
    ) -> tuple[int, Any]:
        _only_known(params, ("start", "end", "group_by", "tenant", "model", "organization"))
        end = _day(params, "end") or datetime.now(UTC).date()
        start = _day(params, "start") or end - timedelta(days=29)
        if start > end:
            raise InvalidRequest("start: must not be after end", param="start")
        if (end - start).days > 400:
            raise InvalidRequest("start: the range may span at most 400 days", param="start")
        group_by = [
            g.strip() for g in params.get("group_by", "tenant,model,day").split(",") if g.strip()
        ]
        for name in group_by:
            if name not in reports.USAGE_GROUPS:
                raise InvalidRequest(
                    f"group_by: unknown group '{name}' (known: {', '.join(reports.USAGE_GROUPS)})",
                    param="group_by",
                )
        report = await reports.usage(
            self.db, start=start, end=end, group_by=list(dict.fromkeys(group_by)),
            organization=_org(actor, params), tenant=params.get("tenant"), model=params.get("model"),
        )  # fmt: skip
        return 200, report

    async def _list_requests(
        self, actor: Actor, _: None, params: dict[str, str], *__: Any
    ) -> tuple[int, Any]:
        _only_known(
            params, ("limit", "cursor", "organization", "since", "until", *_REQUEST_FILTERS)
        )
        filters: dict[str, Any] = {}
        if (org := _org(actor, params)) is not None:
            filters["org"] = org
        for name, column in _REQUEST_FILTERS.items():
            if (value := params.get(name)) is not None:
                filters[column] = _status(value) if name == "status" else value
        try:
            page = await reports.list_requests(
                self.db, limit=_limit(params), cursor=params.get("cursor"), filters=filters,
                since=_time(params, "since"), until=_time(params, "until"),
            )  # fmt: skip
        except ValueError:
            raise InvalidRequest("cursor: not a cursor from this API", param="cursor") from None
        return 200, page

    async def _get_request(self, actor: Actor, rid: str, *_: Any) -> tuple[int, Any]:
        # The text a log_content policy kept is for admins only.
        record = await reports.get_request(self.db, rid, actor.org_filter(), content=actor.is_admin)
        if record is None:
            raise ObjectNotFound(f"no request with id '{rid}'")
        return 200, record

    async def _audit(
        self, actor: Actor, _: None, params: dict[str, str], *__: Any
    ) -> tuple[int, Any]:
        _only_known(params, ("limit", "cursor", "organization"))
        try:
            page = await reports.list_audit(
                self.db, limit=_limit(params), cursor=params.get("cursor"),
                organization=_org(actor, params),
            )  # fmt: skip
        except ValueError:
            raise InvalidRequest("cursor: not a cursor from this API", param="cursor") from None
        return 200, page

    async def _purge_cache(
        self, actor: Actor, _: None, params: dict[str, str], *__: Any
    ) -> tuple[int, Any]:
        # Reached only when the cache caches nothing (app.py puts the cache's own route in
        # front of this API otherwise): there is nothing to purge.
        _only_known(params, ("tenant", "organization", "model"))
        return 200, CachePurged(0, "off")

    async def _openapi(self, *_: Any) -> tuple[int, Any]:
        return 200, self._openapi_json


def _route(method: str, path: str) -> tuple[Route, Any]:
    parts = path.strip("/").split("/")
    allowed = []
    for route in ROUTES:
        found = route.match(method, parts)
        if found is not False:
            return route, found
        if route.match(route.method, parts) is not False:
            allowed.append(route.method)
    if allowed:
        raise InvalidRequest(
            f"{method} is not allowed on {path}; use {' or '.join(allowed)}",
            code="method_not_allowed",
            status=405,
        )
    raise ObjectNotFound(f"no admin route for {method} {path}")


def _decode(body: bytes, kind: type[Any]) -> Any:
    """Decode a JSON body into ``kind``; a 400 naming the field when it does not fit."""
    if not body.strip():
        raise InvalidRequest("request body is empty; expected a JSON object")
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        raise _field_error(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"invalid JSON in request body: {exc}") from None


def _field_error(message: str) -> InvalidRequest:
    where, what = schema_problem(message)
    if what == _NUL_REFUSED:
        what = "NUL characters are not allowed"
    what = enum_problem(where, what)
    return InvalidRequest(f"{where or 'request body'}: {what}", param=where or None)


def _params(query: str) -> dict[str, str]:
    """The query's parameters (the last of a repeated one); NUL in one is a 400 (PostgreSQL
    refuses it in text, and no value the API knows has one)."""
    params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    for name, value in params.items():
        if "\x00" in name or "\x00" in value:
            shown = name.replace("\x00", "\\x00")
            raise InvalidRequest(f"{shown}: NUL characters are not allowed", param=shown)
    return params


def _only_known(params: Mapping[str, str], known: tuple[str, ...]) -> None:
    for name in params:
        if name not in known:
            raise InvalidRequest(
                f"{name}: unknown query parameter (known: {', '.join(known)})", param=name
            )


def _org(actor: Actor, params: Mapping[str, str]) -> str | None:
    """Admins may filter by organisation; users always see their own only."""
    return params.get("organization") if actor.is_admin else actor.organization


def _int(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise InvalidRequest(f"{name}: expected an integer, got {value!r}", param=name) from None


def _status(value: str) -> int:
    status = _int("status", value)
    if not 100 <= status <= 599:
        raise InvalidRequest(
            f"status: expected an HTTP status 100-599, got {value!r}", param="status"
        )
    return status


def _limit(params: Mapping[str, str]) -> int:
    limit = _int("limit", params.get("limit", "50"))
    if not 1 <= limit <= 1000:
        raise InvalidRequest("limit: expected 1-1000", param="limit")
    return limit


def _day(params: Mapping[str, str], name: str) -> date | None:
    value = params.get(name)
    if value is None:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        raise InvalidRequest(
            f"{name}: expected a date YYYY-MM-DD, got {value!r}", param=name
        ) from None


def _time(params: Mapping[str, str], name: str) -> float | None:
    value = params.get(name)
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        if math.isfinite(seconds):
            return seconds
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest(
            f"{name}: expected an ISO 8601 time or epoch seconds, got {value!r}", param=name
        ) from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
