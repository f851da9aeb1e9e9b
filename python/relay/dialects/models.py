"""``GET /v1/models`` and ``/v1/models/{id}``: the configured models, in OpenAI's shape or, for a
client that sends ``anthropic-version`` (every Anthropic SDK does), in Anthropic's.

OpenAI: ``{"object": "list", "data": [{"id", "object": "model", "created", "owned_by"}]}``.
Anthropic: ``{"data": [{"type": "model", "id", "display_name", "created_at", "lifecycle"}],
"has_more", "first_id", "last_id"}``, a page of ``limit`` models (default 20, 1 to 1000) after
``after_id`` or before ``before_id``, as Anthropic pages its list. Both are built once per
worker; only an Anthropic page other than the first is encoded per request.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import msgspec

from relay.errors import GatewayError, InvalidRequest, ModelNotFound

_encode = msgspec.json.encode
DEFAULT_LIMIT = 20
MAX_LIMIT = 1000


class ModelCatalog:
    """The answers of the models routes (see the module docstring)."""

    def __init__(self, owners: Mapping[str, str], created: int | None = None) -> None:
        created = int(time.time()) if created is None else created
        stamp = datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self._names = list(owners)
        self._index = {name: i for i, name in enumerate(self._names)}
        self._openai = {
            name: _encode({"id": name, "object": "model", "created": created, "owned_by": owner})
            for name, owner in owners.items()
        }
        self._anthropic: dict[str, dict[str, Any]] = {
            name: {
                "type": "model",
                "id": name,
                "display_name": name,
                "created_at": stamp,
                "lifecycle": "active",
            }
            for name in owners
        }
        self.openai_list = b'{"object":"list","data":[' + b",".join(self._openai.values()) + b"]}"
        self._first_page = self._page(0, DEFAULT_LIMIT)

    def openai_model(self, name: str) -> bytes:
        """One model in OpenAI's shape (a 404 when not configured)."""
        model = self._openai.get(name)
        if model is None:
            raise _not_found(name)
        return model

    def anthropic_model(self, name: str) -> bytes:
        """One model in Anthropic's shape (a 404 when not configured)."""
        model = self._anthropic.get(name)
        if model is None:
            raise _not_found(name)
        return _encode(model)

    def anthropic_list(self, query: str) -> bytes:
        """A page of the list in Anthropic's shape for the query string ``query``."""
        if not query:
            return self._first_page
        params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        limit = _limit(params.get("limit"))
        after, before = params.get("after_id"), params.get("before_id")
        if after is not None and before is not None:
            raise InvalidRequest("after_id, before_id: give one of them, not both")
        if after is not None:
            return self._page(self._position(after, "after_id") + 1, limit)
        if before is not None:
            end = self._position(before, "before_id")
            return self._page(max(end - limit, 0), min(limit, end), backwards=True)
        return self._page(0, limit)

    def _position(self, name: str, param: str) -> int:
        position = self._index.get(name)
        if position is None:
            raise InvalidRequest(
                f"{param}: model '{name[:80]}' is not configured on this gateway", param=param
            )
        return position

    def _page(self, start: int, limit: int, *, backwards: bool = False) -> bytes:
        names = self._names[start : start + limit]
        # More in the direction of the request: after this page, or before it (before_id).
        more = start > 0 if backwards else start + limit < len(self._names)
        return _encode(
            {
                "data": [self._anthropic[name] for name in names],
                "has_more": more,
                "first_id": names[0] if names else None,
                "last_id": names[-1] if names else None,
            }
        )


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest(
            f"limit: expected an integer from 1 to {MAX_LIMIT}, got {raw[:20]!r}", param="limit"
        )
    return limit


def _not_found(name: str) -> GatewayError:
    return ModelNotFound(f"model '{name[:200]}' is not configured on this gateway")
