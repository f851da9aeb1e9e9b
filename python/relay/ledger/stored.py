"""``GET``/``DELETE /v1/responses/{id}`` and ``GET /v1/responses/{id}/input_items`` of a
response the gateway stored, as a stage.

It runs in the same stage list as every other route (after authentication and the policy
stages, before routing), so a limit or a block that applies to chat applies here too. A
response it does not hold passes on to routing (the pass-through provider), or is a 404 when
there is none. A key restricted to some models reads only the stored responses of those models.
"""

from __future__ import annotations

import msgspec

from relay.errors import NotFound, PermissionDenied
from relay.exchange import Endpoint, Exchange
from relay.ledger.input_items import item_list
from relay.ledger.responses import ResponseStore, scope
from relay.stage import Reply

_PREFIX = "/responses/"
_ITEMS = "input_items"


class StoredResponses:
    """The stage (see the module docstring)."""

    def __init__(self, store: ResponseStore, passthrough_provider: str | None) -> None:
        self.store = store
        self.passthrough_provider = passthrough_provider

    async def __call__(self, ex: Exchange) -> Reply | None:
        if ex.endpoint is not Endpoint.PASSTHROUGH or ex.method not in ("GET", "DELETE"):
            return None
        path = ex.path
        if not path.startswith(_PREFIX):
            return None
        response_id, _, rest = path[len(_PREFIX) :].partition("/")
        if not response_id or rest not in ("", _ITEMS) or (rest and ex.method != "GET"):
            return None
        org, tenant = scope(ex.principal)
        stored = await self.store.get(response_id, org, tenant, retry=False)
        if stored is None:
            if self.passthrough_provider is not None:
                return None  # perhaps the provider's own: routing sends it there
            raise NotFound(
                f"no stored response '{response_id[:80]}' (a response of a provider's own "
                "Responses API is read from that provider through routing.passthrough_provider, "
                "which this gateway does not set)"
            )
        allowed = ex.principal.allowed_models
        if allowed is not None and stored.model not in allowed:
            raise PermissionDenied(
                f"this key may not use model '{stored.model}', which answered response "
                f"'{response_id[:80]}'"
            )
        ex.model = stored.model
        if rest:
            body = item_list(response_id, stored.conversation, stored.response, ex.query)
        elif ex.method == "DELETE":
            await self.store.delete(response_id, org, tenant)
            body = msgspec.json.encode({"id": response_id, "object": "response", "deleted": True})
        else:
            body = stored.response
        return Reply(200, body=body)
