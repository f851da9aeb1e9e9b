"""Read-only views for the admin API and the CLI: usage, the request ledger, the audit log.

Usage reads the daily roll-up (a month is a few hundred rows however many requests it holds);
the ledger listing pages by ``(ts, id)`` on the ``requests_*_ts`` indexes, newest first.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Annotated, Any, TypeVar

import msgspec
from msgspec import Meta

from relay.admin.models import (
    Attempt,
    AuditEntry,
    AuditPage,
    RequestContent,
    RequestPage,
    RequestRecord,
    UsageReport,
    UsageRow,
)
from relay.admin.store import when
from relay.ledger.database import Database
from relay.ledger.records import DAY_S

# group_by name -> usage_daily column
USAGE_GROUPS = {
    "organization": "org",
    "tenant": "tenant",
    "key": "key_prefix",
    "model": "model",
    "day": "day",
}
_SUMS = (
    "SUM(requests), SUM(errors), SUM(prompt_tokens), SUM(completion_tokens), "
    "SUM(cached_tokens), SUM(cost_usd)"
)
_REQUEST_COLS = (
    "id, request_id, ts, org, tenant, key_prefix, use_case, endpoint, model, provider, "
    "deployment, status, error, stream, latency_ms, ttft_ms, prompt_tokens, completion_tokens, "
    "cached_tokens, cost_usd, cache_hit, truncated, attempts, cost_saved_usd"
)


def day_number(day: date) -> int:
    """Days since 1970-01-01 (the ledger's ``day`` column)."""
    return (day - date(1970, 1, 1)).days


@lru_cache(maxsize=4096)
def day_text(number: int) -> str:
    """``2025-06-01`` for a day number."""
    return (date(1970, 1, 1) + timedelta(days=number)).isoformat()


async def usage(
    db: Database,
    *,
    start: date,
    end: date,
    group_by: Sequence[str],
    organization: str | None = None,
    tenant: str | None = None,
    model: str | None = None,
) -> UsageReport:
    """Sums per UTC day from ``start`` to ``end`` (inclusive), grouped by ``group_by``."""
    columns = [USAGE_GROUPS[g] for g in group_by]
    where, args = ["day >= ?", "day <= ?"], [day_number(start), day_number(end)]
    for column, value in (("org", organization), ("tenant", tenant), ("model", model)):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)  # type: ignore[arg-type]
    select = ", ".join([*columns, _SUMS])
    sql = f"SELECT {select} FROM usage_daily WHERE {' AND '.join(where)}"
    if columns:
        sql += f" GROUP BY {', '.join(columns)} ORDER BY {', '.join(columns)}"
    rows = await db.fetch(sql, args)
    data = [_usage_row(row, group_by) for row in rows if row[len(columns)] is not None]
    total = UsageRow(
        requests=sum(r.requests for r in data),
        errors=sum(r.errors for r in data),
        prompt_tokens=sum(r.prompt_tokens for r in data),
        completion_tokens=sum(r.completion_tokens for r in data),
        cached_tokens=sum(r.cached_tokens for r in data),
        cost_usd=sum(r.cost_usd for r in data),
    )
    return UsageReport(start.isoformat(), end.isoformat(), list(group_by), data, total)


def _usage_row(row: Sequence[Any], group_by: Sequence[str]) -> UsageRow:
    n = len(group_by)
    usage = UsageRow(
        int(row[n]), int(row[n + 1]), int(row[n + 2]), int(row[n + 3]), int(row[n + 4]),
        round(float(row[n + 5]), 10),
    )  # fmt: skip
    for name, value in zip(group_by, row, strict=False):
        if name == "day":
            usage.day = day_text(value)
        elif name == "key":
            usage.key_prefix = value or None
        else:
            setattr(usage, name, value)
    return usage


def encode_cursor(*parts: object) -> str:
    """An opaque page cursor."""
    return base64.urlsafe_b64encode(msgspec.json.encode(parts)).decode()


# What each listing's cursor holds, typed and bounded as the columns it is compared with: a
# crafted cursor (any JSON a client can encode) fails here, never as a TypeError or in the
# database. The ledger's: (ts, id); the audit log's: (id,).
_TS = Annotated[float, Meta(ge=0, le=1e12)]
_TEXT = Annotated[str, Meta(max_length=200, pattern=r"^[^\x00]*$")]
REQUEST_CURSOR: msgspec.json.Decoder[tuple[float, str]] = msgspec.json.Decoder(tuple[_TS, _TEXT])
AUDIT_CURSOR: msgspec.json.Decoder[tuple[int]] = msgspec.json.Decoder(
    tuple[Annotated[int, Meta(ge=0, le=2**63 - 1)]]
)
T = TypeVar("T")


def decode_cursor(text: str, decoder: msgspec.json.Decoder[T]) -> T:
    """The parts of a cursor, as ``decoder`` types them; ValueError if it was not made by
    :func:`encode_cursor` for that listing."""
    try:
        return decoder.decode(base64.urlsafe_b64decode(text.encode()))
    except (ValueError, msgspec.DecodeError) as exc:  # binascii.Error is a ValueError
        raise ValueError("not a cursor from this API") from exc


async def list_requests(
    db: Database,
    *,
    limit: int,
    cursor: str | None = None,
    filters: dict[str, Any] | None = None,
    since: float | None = None,
    until: float | None = None,
) -> RequestPage:
    """A page of ledger rows, newest first. ``filters`` maps a column to the value it must have."""
    where, args = ["1 = 1"], list[Any]()
    for column, value in (filters or {}).items():
        where.append(f"{column} = ?")
        args.append(value)
    if since is not None:
        where.append("ts >= ?")
        args.append(since)
    if until is not None:
        where.append("ts < ?")
        args.append(until)
    if cursor is not None:
        ts, rid = decode_cursor(cursor, REQUEST_CURSOR)
        where.append("(ts < ? OR (ts = ? AND id < ?))")
        args += [ts, ts, rid]
    sql = (
        f"SELECT {_REQUEST_COLS} FROM requests WHERE {' AND '.join(where)} "
        f"ORDER BY ts DESC, id DESC LIMIT {int(limit) + 1}"
    )
    rows = await db.fetch(sql, args)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1][2], rows[-1][0]) if more and rows else None
    return RequestPage([_request(r) for r in rows], more, next_cursor)


async def get_request(
    db: Database, ledger_id: str, organization: str | None, *, content: bool = False
) -> RequestRecord | None:
    """One request by its ledger id or its ``x-request-id``, with its attempts (and, when
    ``content``, the text a ``log_content`` policy kept of it)."""
    sql = f"SELECT {_REQUEST_COLS} FROM requests WHERE (id = ? OR request_id = ?)"
    args: list[Any] = [ledger_id, ledger_id]
    if organization is not None:
        sql, args = sql + " AND org = ?", [*args, organization]
    rows = await db.fetch(sql + " ORDER BY ts DESC LIMIT 1", args)
    if not rows:
        return None
    record = _request(rows[0])
    attempts = await db.fetch(
        "SELECT attempt, provider, deployment, status, error, latency_ms, ttfb_ms, "
        "prompt_tokens, completion_tokens FROM provider_attempts WHERE request_id = ? "
        "ORDER BY attempt",
        [record.id],
    )
    record.attempts = [Attempt(*a) for a in attempts]
    if content:
        kept = await db.fetch(
            "SELECT store, prompt, completion, expires_at FROM request_content "
            "WHERE request_id = ?",
            [record.id],
        )
        if kept:
            store, prompt, completion, expires = kept[0]
            record.content = RequestContent(
                store, prompt, completion, when(expires) or datetime.now(UTC)
            )
    return record


def _request(r: Sequence[Any]) -> RequestRecord:
    return RequestRecord(
        r[0], r[1], when(r[2]) or datetime.now(UTC), r[3], r[4], r[5], r[6], r[7], r[8], r[9],
        r[10], r[11], r[12], bool(r[13]), r[14], r[15], r[16], r[17], r[18], r[19], bool(r[20]),
        bool(r[21]), r[22], cost_saved_usd=r[23],
    )  # fmt: skip


async def list_audit(
    db: Database, *, limit: int, cursor: str | None, organization: str | None
) -> AuditPage:
    """A page of the audit log, newest first."""
    where, args = ["1 = 1"], list[Any]()
    if organization is not None:
        where.append("organization = ?")
        args.append(organization)
    if cursor is not None:
        (before,) = decode_cursor(cursor, AUDIT_CURSOR)
        where.append("id < ?")
        args.append(before)
    rows = await db.fetch(
        "SELECT id, ts, actor, organization, action, object_type, object_id, detail "
        f"FROM audit_log WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT {int(limit) + 1}",
        args,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    entries = [
        AuditEntry(
            int(r[0]),
            when(r[1]) or datetime.now(UTC),
            r[2],
            r[3],
            r[4],
            r[5],
            r[6],
            msgspec.json.decode(r[7]) if r[7] else None,
        )
        for r in rows
    ]
    return AuditPage(entries, more, encode_cursor(rows[-1][0]) if more and rows else None)


def day_start(day: date) -> float:
    """Epoch seconds at the start of a UTC day."""
    return day_number(day) * float(DAY_S)
