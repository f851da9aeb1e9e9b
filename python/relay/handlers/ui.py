"""``/ui``: the dashboard's pages, with the security headers every answer carries."""

from __future__ import annotations

from typing import Any, Protocol

from relay.errors import GatewayError
from relay.handlers.common import request_id
from relay.ingress.body import read_body
from relay.ui.web import UiRequest, UiResponse

# Forms are small; the largest is a key's (a few hundred bytes).
MAX_FORM_BYTES = 64 * 1024


class Dashboard(Protocol):
    """The dashboard as the route sees it."""

    async def handle(self, req: UiRequest) -> UiResponse:
        """One request -> its answer."""
        ...


class UiRoute:
    """Reads the request (a form's body at most 64 KiB) and writes the dashboard's answer;
    a 404 page when the gateway has no database (nothing to show)."""

    def __init__(self, dashboard: Dashboard | None, body_timeout_s: float) -> None:
        self.dashboard = dashboard
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope: Any, proto: Any) -> None:
        rid = request_id(scope)
        if self.dashboard is None:
            answer = UiResponse(
                404, b"The dashboard needs a database (database.url) and ui.enabled.", "text/plain"
            )
        else:
            try:
                length = scope.headers.get("content-length")
                body = await read_body(proto, length, MAX_FORM_BYTES, self.body_timeout_s)
            except GatewayError as err:
                answer = UiResponse(err.status, err.message.encode(), "text/plain")
            else:
                request = UiRequest(
                    scope.method, scope.path, scope.query_string, scope.headers, body,
                    getattr(scope, "scheme", "http"),
                )  # fmt: skip
                answer = await self.dashboard.handle(request)
        proto.response_bytes(answer.status, [*answer.all_headers(), ("x-request-id", rid)], answer.body)
