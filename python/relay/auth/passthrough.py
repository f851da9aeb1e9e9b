"""Every caller is anonymous; the caller's own credential is kept for passthrough providers."""

from __future__ import annotations

from relay.exchange import Exchange
from relay.stage import Reply


class PassthroughAuth:
    """Records the caller's ``Authorization`` (or ``x-api-key``) for providers that forward it."""

    async def __call__(self, ex: Exchange) -> Reply | None:
        headers = ex.headers
        authorization = headers.get("authorization")
        if authorization is None and (api_key := headers.get("x-api-key")):
            authorization = f"Bearer {api_key}"
        ex.principal.client_authorization = authorization
        return None
