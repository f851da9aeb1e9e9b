"""Routes the gateway answers itself: health, readiness, the model list, ``/metrics``; and
``/admin``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from relay.admin.front import AdminApi
from relay.dialects import ANTHROPIC_DIALECTS
from relay.dialects.models import ModelCatalog
from relay.egress.headers import JSON
from relay.errors import GatewayError, MethodNotAllowed, NotFound
from relay.handlers.common import DEFAULT_DIALECT, render, request_id
from relay.ingress.body import read_body


def is_local(path: str) -> bool:
    """Routes under /v1 the gateway answers itself."""
    return path == "/v1/models" or path.startswith("/v1/models/")


class LocalRoutes:
    """``/healthz``, ``/readyz``, ``/v1/models[/{id}]``, and the 404 of every unknown path."""

    def __init__(
        self,
        models: ModelCatalog,
        ready: Callable[[], bool],
        redis: Callable[[], Awaitable[str]] | None = None,
    ) -> None:
        self.models = models
        self.ready = ready
        # With limits in Redis: asks it (bounded by redis.timeout_ms), "ok" or "degraded".
        self.redis = redis

    def __call__(self, scope: Any, proto: Any, path: str) -> Awaitable[None] | None:
        """Answer ``path``; an awaitable when the answer needs I/O (readiness with Redis)."""
        rid = request_id(scope)
        headers = [JSON, ("x-request-id", rid)]
        method = scope.method
        if path == "/healthz":
            proto.response_bytes(200, headers, b'{"status":"ok"}')
        elif path == "/readyz":
            if self.redis is not None:
                return self._readyz_redis(proto, headers, self.redis)
            ready = self.ready()
            body = b'{"status":"ready"}' if ready else b'{"status":"not ready"}'
            proto.response_bytes(200 if ready else 503, headers, body)
        elif is_local(path):
            # Anthropic's SDKs send anthropic-version: they get Anthropic's shapes and errors.
            anthropic = "anthropic-version" in scope.headers
            dialect = ANTHROPIC_DIALECTS[0] if anthropic else DEFAULT_DIALECT
            if anthropic:
                headers.append(("request-id", rid))
            try:
                if method != "GET":
                    raise MethodNotAllowed(f"{method} is not allowed on {path}; use GET")
                proto.response_bytes(200, headers, self._models(scope, path, anthropic))
            except GatewayError as err:
                render(proto, rid, dialect, err, headers[2:])
        else:
            render(proto, rid, DEFAULT_DIALECT, NotFound(f"no route for {method} {path}"), [])
        return None

    async def _readyz_redis(
        self, proto: Any, headers: list[tuple[str, str]], redis: Callable[[], Awaitable[str]]
    ) -> None:
        # A failing Redis does not make the gateway unready: limits are then decided as
        # limits.on_redis_failure says, and the body says so.
        health = await redis()
        ready = self.ready()
        status = "ready" if ready else "not ready"
        body = b'{"status":"%s","redis":"%s"}' % (status.encode(), health.encode())
        proto.response_bytes(200 if ready else 503, headers, body)

    def _models(self, scope: Any, path: str, anthropic: bool) -> bytes:
        """``/v1/models`` or ``/v1/models/{id}``, in OpenAI's or Anthropic's shape."""
        models = self.models
        if path == "/v1/models":
            return models.anthropic_list(scope.query_string) if anthropic else models.openai_list
        name = path[len("/v1/models/") :]
        return models.anthropic_model(name) if anthropic else models.openai_model(name)


# Prometheus' text format, version 0.0.4 (what prometheus-client writes).
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


class MetricsRoute:
    """``GET /metrics``: the Prometheus exposition, summed over every worker (a 404 with
    ``metrics.enabled: false``)."""

    def __init__(self, render: Callable[[], Awaitable[bytes]] | None) -> None:
        self.render = render

    async def __call__(self, scope: Any, proto: Any) -> None:
        rid = request_id(scope)
        method = scope.method
        if self.render is None:
            err: GatewayError = NotFound(
                f"no route for {method} /metrics (metrics.enabled is false)"
            )
            return render(proto, rid, DEFAULT_DIALECT, err, [])
        if method not in ("GET", "HEAD"):
            err = MethodNotAllowed(f"{method} is not allowed on /metrics; use GET")
            return render(proto, rid, DEFAULT_DIALECT, err, [])
        body = await self.render()
        headers = [("content-type", PROMETHEUS_TEXT), ("x-request-id", rid)]
        proto.response_bytes(200, headers, b"" if method == "HEAD" else body)
        return None


class AdminRoute:
    """``/admin/...``: its own authentication, OpenAI's error envelope."""

    def __init__(self, admin: AdminApi, max_body: int, body_timeout_s: float) -> None:
        self.admin = admin
        self.max_body = max_body
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope: Any, proto: Any) -> None:
        rid = request_id(scope)
        try:
            length = scope.headers.get("content-length")
            body = await read_body(proto, length, self.max_body, self.body_timeout_s)
        except GatewayError as err:
            return render(proto, rid, DEFAULT_DIALECT, err, [])
        status, headers, payload = await self.admin.handle(
            scope.method, scope.path, scope.query_string, scope.headers, body
        )
        proto.response_bytes(status, [*headers, ("x-request-id", rid)], payload)
        return None
