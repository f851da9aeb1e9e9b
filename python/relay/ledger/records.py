"""The rows the ledger writes, in column order, and the daily roll-up they feed."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, NamedTuple, TypeVar

DAY_S = 86_400
# INTEGER columns are 32-bit on PostgreSQL.
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1

Row = TypeVar("Row", "RequestRow", "AttemptRow", "ContentRow")


class RequestRow(NamedTuple):
    """One finished request (table ``requests``); ``id`` is the ledger's own unique id."""

    id: str
    request_id: str
    ts: float
    day: int
    org: str
    tenant: str
    key_id: str | None
    key_prefix: str | None
    use_case: str | None
    endpoint: str
    model: str
    provider: str | None
    deployment: str | None
    status: int
    error: str | None
    stream: bool
    latency_ms: float
    ttft_ms: float | None
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cost_usd: float
    cache_hit: bool
    truncated: bool
    attempts: int
    # What a cache hit's recorded answer cost (the hit itself costs 0); migration 4.
    cost_saved_usd: float = 0.0


class AttemptRow(NamedTuple):
    """One call to a provider (table ``provider_attempts``), keyed by (request, attempt)."""

    request_id: str
    attempt: int
    provider: str
    deployment: str
    status: int
    error: str | None
    latency_ms: float
    ttfb_ms: float | None
    prompt_tokens: int | None
    completion_tokens: int | None


class ContentRow(NamedTuple):
    """A request's prompt and completion text (table ``request_content``, migration 5), kept by
    a ``log_content`` policy: ``store`` is ``redacted`` or ``full``."""

    request_id: str
    ts: float
    expires_at: float
    store: str
    prompt: str
    completion: str


REQUEST_COLUMNS = RequestRow._fields
CONTENT_COLUMNS = ContentRow._fields
ATTEMPT_COLUMNS = AttemptRow._fields

# usage_daily's key and its summed measures, in the order rollup() emits them.
ROLLUP_KEY = ("day", "org", "tenant", "key_prefix", "model")
ROLLUP_SUMS = (
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cost_usd",
)


def rollup(rows: Iterable[RequestRow]) -> list[tuple[object, ...]]:
    """Sum new request rows per (day, org, tenant, key prefix, model) for ``usage_daily``.

    Only rows the database did not hold yet may be passed in: this is what keeps a batch that
    is written twice (a retry after a lost commit acknowledgement) from counting twice.
    """
    sums: dict[tuple[int, str, str, str, str], list[float]] = {}
    for row in rows:
        key = (row.day, row.org, row.tenant, row.key_prefix or "", row.model)
        acc = sums.get(key)
        if acc is None:
            acc = sums[key] = [0, 0, 0, 0, 0, 0.0]
        acc[0] += 1
        acc[1] += 1 if row.status >= 400 or row.status == 0 else 0
        acc[2] += row.prompt_tokens
        acc[3] += row.completion_tokens
        acc[4] += row.cached_tokens
        acc[5] += row.cost_usd
    return [
        (*key, int(a[0]), int(a[1]), int(a[2]), int(a[3]), int(a[4]), float(a[5]))
        for key, a in sums.items()
    ]


def text(value: str) -> str:
    """Client-sent text as every database stores it: without NUL (PostgreSQL refuses it)."""
    return value.replace("\x00", "") if "\x00" in value else value


def scrubbed(row: Row) -> Row | None:
    """A copy of ``row`` that any backend can store, or None when there is nothing to change.

    Text loses NUL and characters UTF-8 cannot encode (lone surrogates), integers are held to
    32 bits, and a number that is not finite becomes 0 (SQLite stores NaN as NULL).
    """
    values: list[Any] = [_scrubbed(value) for value in row]
    if all(new is old for new, old in zip(values, row, strict=True)):
        return None
    return type(row)(*values)


def _scrubbed(value: object) -> object:
    if isinstance(value, str):
        cleaned = text(value).encode("utf-8", "replace").decode("utf-8")
        return value if cleaned == value else cleaned
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and not _INT_MIN <= value <= _INT_MAX:
        return max(_INT_MIN, min(value, _INT_MAX))
    if isinstance(value, float) and not math.isfinite(value):
        return 0.0
    return value
