"""``GET /v1/responses/{id}/input_items`` of a response the gateway stored, in OpenAI's list
shape: ``{"object": "list", "data": [items], "first_id", "last_id", "has_more"}``.

The input of a response is the conversation it was answered from (the earlier turns of a
``previous_response_id`` chain, then its own ``input``): the stored conversation without the
response's own output. Items are shown as OpenAI shows them, whatever form the client sent
(a string content becomes an ``input_text`` part, an item without ``type`` is a message, each
has an ``id`` and a ``status``). An item the client sent without an id gets one derived from
the response id and its position, so pages of one listing agree on it. ``limit`` (1 to 100,
default 20), ``order`` (``asc``/``desc``, default ``desc``) and ``after`` (an item id) page
it as OpenAI does.
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import parse_qs

import msgspec

from relay.errors import InvalidRequest

_ITEMS = msgspec.json.Decoder(list[dict[str, Any]])


class _Output(msgspec.Struct):
    output: list[msgspec.Raw] = []


_RESPONSE = msgspec.json.Decoder(_Output)
_PREFIX = {"message": "msg_", "function_call": "fc_", "function_call_output": "fco_"}
_INPUT_ROLES = frozenset({"user", "system", "developer"})
DEFAULT_LIMIT = 20
MAX_LIMIT = 100


def item_list(response_id: str, conversation: bytes, response: bytes, query: str) -> bytes:
    """The page of the response's input items that ``query`` asks for, as JSON."""
    params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    limit = _limit(params.get("limit"))
    order = params.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest(f"order: expected asc or desc, got {order[:20]!r}", param="order")
    items = input_items(response_id, conversation, response)
    if order == "desc":
        items.reverse()
    start = 0
    after = params.get("after")
    if after is not None:
        ids = [item["id"] for item in items]
        if after not in ids:
            raise InvalidRequest(
                f"after: no item '{after[:80]}' in the input of response '{response_id[:80]}'",
                param="after",
            )
        start = ids.index(after) + 1
    page = items[start : start + limit]
    return msgspec.json.encode(
        {
            "object": "list",
            "data": page,
            # Strings even for an empty page: OpenAI's schema has no null here.
            "first_id": page[0]["id"] if page else "",
            "last_id": page[-1]["id"] if page else "",
            "has_more": start + limit < len(items),
        }
    )


def input_items(response_id: str, conversation: bytes, response: bytes) -> list[dict[str, Any]]:
    """The response's input items in conversation order, each in OpenAI's item shape."""
    items = _ITEMS.decode(conversation)
    produced = len(_RESPONSE.decode(response).output)
    inputs = items[: len(items) - produced] if produced else items
    return [_shown(item, f"{response_id}:{i}") for i, item in enumerate(inputs)]


def _shown(item: dict[str, Any], seed: str) -> dict[str, Any]:
    kind = item.get("type", "message")
    out = {"id": item.get("id") or _derived_id(_PREFIX.get(kind, "item_"), seed), **item}
    out["type"] = kind
    if kind == "message":
        role = item.get("role")
        out["content"] = _content(item.get("content"), output=role not in _INPUT_ROLES)
    if kind in ("message", "function_call", "function_call_output"):
        out.setdefault("status", "completed")
    elif kind == "reasoning":
        out.setdefault("summary", [])
    return out


def _content(content: Any, *, output: bool) -> Any:
    """A message's content as a list of parts (``output_text`` for an assistant's)."""
    parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
    if not isinstance(parts, list):
        return parts
    shown = []
    for part in parts:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("text", "input_text", "output_text") and isinstance(part, dict):
            if output:
                part = {"annotations": [], "logprobs": [], **part, "type": "output_text"}
            else:
                part = {**part, "type": "input_text"}
        elif kind == "input_image" and isinstance(part, dict):
            part = {"detail": "auto", **part}
        shown.append(part)
    return shown


def _derived_id(prefix: str, seed: str) -> str:
    return prefix + hashlib.blake2b(seed.encode(), digest_size=12).hexdigest()


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
