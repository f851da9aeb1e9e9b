"""What each page shows, read through the admin API's own operations (``AdminApi.run``: the
same checks, access rules and queries as ``/admin``) and its reports over the daily roll-up.

Nothing here reads the ledger row by row except the request log's one page: every total,
chart and budget comes from ``usage_daily``.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from relay.admin import reports
from relay.admin.access import Actor
from relay.admin.api import AdminApi
from relay.admin.models import Key, Tenant, UsageReport, UsageRow
from relay.ui.charts import stacked_bars

# The request log's filters, as the admin API names them.
LOG_FILTERS = ("tenant", "key_prefix", "model", "status", "since", "until", "organization")
USAGE_BY = {"tenant": "tenant", "model": "model", "key": "key"}
METRICS = ("cost", "tokens", "requests")
TOP = 6


def today() -> date:
    """The current UTC day (the roll-up's days are UTC days)."""
    return datetime.now(UTC).date()


async def get(admin: AdminApi, actor: Actor, path: str, **params: Any) -> Any:
    """A GET of the admin API as ``actor``; the result object."""
    query = urlencode({k: v for k, v in params.items() if v not in (None, "")})
    _, result = await admin.run(actor, "GET", path, query, b"")
    return result


async def _usage(
    admin: AdminApi, actor: Actor, start: date, end: date, group_by: Iterable[str]
) -> UsageReport:
    """The roll-up for ``actor``'s organisation (all of them for admins), from ``start``
    (which may lie further back than the admin API's 400 days: a total budget's spend)."""
    return await reports.usage(
        admin.db, start=start, end=end, group_by=list(group_by),
        organization=actor.org_filter(),
    )  # fmt: skip


def metric(row: UsageRow, name: str) -> float:
    """One measure of a roll-up row."""
    if name == "cost":
        return row.cost_usd
    if name == "tokens":
        return float(row.prompt_tokens + row.completion_tokens)
    return float(row.requests)


def day_range(start: date, end: date) -> list[str]:
    """Every day from ``start`` to ``end`` inclusive, as text."""
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


async def overview(admin: AdminApi, actor: Actor) -> dict[str, Any]:
    """Today and this month, the leaders, the projection to month end, the budgets."""
    now = today()
    month_start = now.replace(day=1)
    since = min(month_start, now - timedelta(days=7))
    daily = await _usage(admin, actor, since, now, ["day"])
    by_day = {r.day: r for r in daily.data}
    empty = UsageRow(0, 0, 0, 0, 0, 0.0)
    today_row = by_day.get(now.isoformat(), empty)
    month_rows = [r for r in daily.data if r.day is not None and r.day >= month_start.isoformat()]
    month = _sum(month_rows)
    # Projection: the month so far plus, for each day left, the mean of the last 7 full days.
    last7 = [by_day.get((now - timedelta(days=i)).isoformat(), empty) for i in range(1, 8)]
    mean7 = sum(r.cost_usd for r in last7) / 7
    days_in_month = calendar.monthrange(now.year, now.month)[1]
    projected = month.cost_usd + mean7 * (days_in_month - now.day)
    leaders = await _usage(admin, actor, month_start, now, ["organization", "tenant"])
    models = await _usage(admin, actor, month_start, now, ["model"])
    days = day_range(month_start, now)
    chart = stacked_bars(
        days,
        {"cost": [by_day[d].cost_usd if d in by_day else 0.0 for d in days]},
        unit="$",
        title="Cost per day this month",
    )
    return {
        "today": today_row,
        "month": month,
        "mean7": mean7,
        "projected": projected,
        "days_in_month": days_in_month,
        "top_tenants": _top(leaders.data),
        "top_models": _top(models.data),
        "chart": chart,
        "budgets": await budgets(admin, actor, now),
    }


def _sum(rows: Iterable[UsageRow]) -> UsageRow:
    total = UsageRow(0, 0, 0, 0, 0, 0.0)
    for r in rows:
        total.requests += r.requests
        total.errors += r.errors
        total.prompt_tokens += r.prompt_tokens
        total.completion_tokens += r.completion_tokens
        total.cached_tokens += r.cached_tokens
        total.cost_usd += r.cost_usd
    return total


def _top(rows: list[UsageRow], n: int = 5) -> list[UsageRow]:
    return sorted(rows, key=lambda r: (-r.cost_usd, -r.requests))[:n]


def period_start(period: str, now: date) -> date:
    """The first day a budget of ``period`` counts."""
    if period == "day":
        return now
    if period == "month":
        return now.replace(day=1)
    return date(1970, 1, 1)


async def budgets(admin: AdminApi, actor: Actor, now: date) -> list[dict[str, Any]]:
    """Every tenant's and key's budget, with what its period has spent (from the roll-up)."""
    tenants: list[Tenant] = [
        t for t in (await get(admin, actor, "/admin/tenants")).data if t.budget_usd is not None
    ]
    keys: list[Key] = [
        k
        for k in (await get(admin, actor, "/admin/keys")).data
        if k.budget_usd is not None and k.revoked_at is None
    ]
    spent: dict[tuple[str, str, str], float] = {}
    for period in {t.budget_period for t in tenants}:
        report = await _usage(admin, actor, period_start(period, now), now, ["organization", "tenant"])
        for r in report.data:
            spent[(period, f"{r.organization}/{r.tenant}", "tenant")] = r.cost_usd
    for period in {k.budget_period for k in keys}:
        report = await _usage(admin, actor, period_start(period, now), now, ["key"])
        for r in report.data:
            spent[(period, r.key_prefix or "", "key")] = r.cost_usd
    out: list[dict[str, Any]] = []
    for t in tenants:
        used = spent.get((t.budget_period, f"{t.organization}/{t.name}", "tenant"), 0.0)
        out.append(_budget("tenant", f"{t.organization}/{t.name}", t.budget_period, used,
                           t.budget_usd or 0.0, t.budget_alert_ratio))  # fmt: skip
    for k in keys:
        used = spent.get((k.budget_period, k.prefix, "key"), 0.0)
        out.append(_budget("key", f"{k.prefix} {k.name or ''}".strip(), k.budget_period, used,
                           k.budget_usd or 0.0, k.budget_alert_ratio))  # fmt: skip
    return sorted(out, key=lambda b: -b["ratio"])


def _budget(
    kind: str, name: str, period: str, used: float, limit: float, alert: float
) -> dict[str, Any]:
    ratio = used / limit if limit > 0 else (1.0 if used > 0 else 0.0)
    level = "over" if ratio >= 1 else "alert" if ratio >= alert else "ok"
    return {"kind": kind, "name": name, "period": period, "used": used, "limit": limit,
            "ratio": ratio, "percent": min(100.0, ratio * 100), "level": level}  # fmt: skip


async def usage(admin: AdminApi, actor: Actor, params: Mapping[str, str]) -> dict[str, Any]:
    """Usage and cost per day, by tenant, model or key, over 7 to 90 days."""
    days = int(params.get("days", "30")) if params.get("days", "30").isdigit() else 30
    days = min(max(days, 1), 90)
    by = params.get("by", "tenant") if params.get("by") in USAGE_BY else "tenant"
    name = params.get("metric", "cost") if params.get("metric") in METRICS else "cost"
    end = today()
    start = end - timedelta(days=days - 1)
    report: UsageReport = await get(
        admin, actor, "/admin/usage", start=start.isoformat(), end=end.isoformat(),
        group_by=f"{USAGE_BY[by]},day", tenant=params.get("tenant"), model=params.get("model"),
    )  # fmt: skip
    span = day_range(start, end)
    index = {d: i for i, d in enumerate(span)}
    per: dict[str, list[float]] = {}
    rows: dict[str, UsageRow] = {}
    for r in report.data:
        label = _group_label(r, by)
        per.setdefault(label, [0.0] * len(span))[index[r.day or span[0]]] += metric(r, name)
        rows[label] = _sum([rows[label], r]) if label in rows else _sum([r])
    order = sorted(per, key=lambda k: -sum(per[k]))
    series = {k: per[k] for k in order[:TOP]}
    if len(order) > TOP:
        series["other"] = [sum(per[k][i] for k in order[TOP:]) for i in range(len(span))]
    unit = "$" if name == "cost" else ""
    chart = stacked_bars(span, series, unit=unit, title=f"{name} per day by {by}")
    table = sorted(rows.items(), key=lambda kv: (-kv[1].cost_usd, kv[0]))
    return {
        "days": days, "by": by, "metric": name, "chart": chart, "series": list(series),
        "table": table, "total": report.total, "start": start, "end": end,
        "tenant": params.get("tenant", ""), "model": params.get("model", ""),
    }  # fmt: skip


def _group_label(row: UsageRow, by: str) -> str:
    if by == "tenant":
        return row.tenant or "-"
    if by == "model":
        return row.model or "-"
    return row.key_prefix or "(no key)"


async def request_log(admin: AdminApi, actor: Actor, params: Mapping[str, str]) -> dict[str, Any]:
    """One page of the request log under the filters."""
    filters = {k: params[k] for k in LOG_FILTERS if params.get(k)}
    api = dict(filters)
    for name in ("since", "until"):  # a datetime-local field has no zone: UTC
        if name in api and len(api[name]) == 16:
            api[name] += ":00+00:00"
    page = await get(admin, actor, "/admin/requests", limit=50, cursor=params.get("cursor"), **api)
    more = urlencode({**filters, "cursor": page.next_cursor}) if page.next_cursor else None
    return {"page": page, "filters": filters, "more": more}
