"""``relay tenants|keys|usage|db``: the admin store from a terminal, as human-readable tables.

Runs against the database of the configuration (``--config``, ``$RELAY_CONFIG``,
``DATABASE_URL``), with the CLI as the audit log's actor. Keys are printed once, at creation.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import msgspec

from relay.admin import reports
from relay.admin.access import CLI
from relay.admin.models import KeyCreate, TenantCreate, enum_problem
from relay.admin.store import AdminStore
from relay.config import ConfigError, load_config
from relay.errors import GatewayError
from relay.ledger.connect import open_database
from relay.ledger.database import Database, DatabaseUnavailable

_GROUPS = ("tenants", "keys", "usage", "db")
T = TypeVar("T")


def add_admin_commands(commands: Any) -> None:
    """Register the subcommands on ``relay``'s argparse sub-parsers."""
    tenants = commands.add_parser("tenants", help="create and list tenants").add_subparsers(
        dest="action", required=True
    )
    create = tenants.add_parser("create", help="create a tenant and print its first key")
    create.add_argument("name")
    create.add_argument("--organization")
    _limit_options(create)
    _config_option(create)
    _config_option(tenants.add_parser("list", help="list tenants"))

    keys = commands.add_parser("keys", help="create, list and revoke keys").add_subparsers(
        dest="action", required=True
    )
    kcreate = keys.add_parser("create", help="create a key for a tenant and print it once")
    kcreate.add_argument("--tenant", required=True, help="tenant id or name")
    kcreate.add_argument("--name")
    kcreate.add_argument("--expires-days", type=float, help="expire this many days from now")
    _limit_options(kcreate)
    _config_option(kcreate)
    klist = keys.add_parser("list", help="list keys (prefixes only)")
    klist.add_argument("--tenant", help="tenant id or name")
    _config_option(klist)
    revoke = keys.add_parser("revoke", help="revoke a key")
    revoke.add_argument("key_id")
    _config_option(revoke)

    usage = commands.add_parser("usage", help="tokens, requests and cost per day")
    usage.add_argument("--start", help="first day YYYY-MM-DD (default: 29 days before end)")
    usage.add_argument("--end", help="last day YYYY-MM-DD (default: today, UTC)")
    usage.add_argument("--by", default="tenant,model", help="group by (default tenant,model)")
    usage.add_argument("--tenant")
    _config_option(usage)

    db = commands.add_parser("db", help="database schema").add_subparsers(
        dest="action", required=True
    )
    _config_option(db.add_parser("upgrade", help="apply pending migrations"))


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="config file (its database.url, or DATABASE_URL)")


def _limit_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rpm", type=int, help="requests per minute")
    parser.add_argument("--tpm", type=int, help="tokens per minute")
    parser.add_argument("--budget", type=float, help="budget in USD")
    parser.add_argument(
        "--budget-period",
        default="month",
        help="day, month (default) or total: when the budget renews (calendar, UTC)",
    )
    parser.add_argument(
        "--budget-alert-ratio",
        type=float,
        default=0.8,
        help="share of the budget spent that logs one alert a period (default 0.8)",
    )
    parser.add_argument("--models", help="allowed models, comma-separated (default: all)")


def run_admin_command(args: argparse.Namespace) -> int | None:
    """Run the parsed command if it is one of these; None if it is not."""
    if args.command not in _GROUPS:
        return None
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    action = f"{args.command}_{getattr(args, 'action', '')}".rstrip("_")
    handler: Callable[[Database, argparse.Namespace], Awaitable[None]] = _HANDLERS[action]
    try:
        asyncio.run(_with_db(config.database.url, handler, args))
    except GatewayError as err:
        print(f"error: {err.message}", file=sys.stderr)
        return 1
    except DatabaseUnavailable as exc:
        print(f"error: database unavailable: {exc}", file=sys.stderr)
        return 1
    return 0


async def _with_db(
    url: str, handler: Callable[[Database, argparse.Namespace], Awaitable[None]], args: Any
) -> None:
    db = open_database(url)
    await db.connect()
    try:
        args.applied = await db.migrate()
        await handler(db, args)
    finally:
        await db.close()


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned columns; ``-`` for empty cells."""
    cells = [[("-" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def _models(text: str | None) -> list[str] | None:
    return [m.strip() for m in text.split(",") if m.strip()] if text else None


def _budget(usd: float | None, period: str) -> str | None:
    return None if usd is None else f"{usd:g}/{period}"


def _day(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if isinstance(value, datetime) else "-"


async def _tenant_id(store: AdminStore, ref: str) -> str:
    for tenant in await store.list_tenants(CLI):
        if ref in (tenant.id, tenant.name, f"{tenant.organization}/{tenant.name}"):
            return tenant.id
    raise GatewayError(f"no tenant '{ref}'")


# Body field -> the option (or argument) that sets it, for messages.
_OPTIONS = {
    "name": "NAME", "organization": "--organization", "rate_limit_rpm": "--rpm",
    "tokens_per_minute": "--tpm", "budget_usd": "--budget", "allowed_models": "--models",
    "budget_period": "--budget-period", "budget_alert_ratio": "--budget-alert-ratio",
}  # fmt: skip


def _checked(kind: type[T], **fields: Any) -> T:
    """``kind`` built from the options and checked as the admin API checks a body (bounds,
    names), so a value the database would refuse is an error naming the option."""
    try:
        return msgspec.convert(fields, kind)
    except msgspec.ValidationError as exc:
        what, _, where = str(exc).partition(" - at `$.")
        field = where.rstrip("`").split(".")[0].split("[")[0]
        option = _OPTIONS.get(field, field or "options")
        what = enum_problem(field, f"{what[:1].lower()}{what[1:]}")
        raise GatewayError(f"{option}: {what}") from None


async def _tenants_create(db: Database, args: Any) -> None:
    body = _checked(
        TenantCreate, name=args.name, organization=args.organization, rate_limit_rpm=args.rpm,
        tokens_per_minute=args.tpm, budget_usd=args.budget, budget_period=args.budget_period,
        budget_alert_ratio=args.budget_alert_ratio, allowed_models=_models(args.models),
    )  # fmt: skip
    created = await AdminStore(db).create_tenant(CLI, body)
    print(table(["id", "name", "organization"], [[created.id, created.name, created.organization]]))
    print(f"\napi key (shown once): {created.api_key}")


async def _tenants_list(db: Database, args: Any) -> None:
    rows = [
        [t.id, t.organization, t.name, t.rate_limit_rpm, t.tokens_per_minute, t.budget_usd,
         t.budget_period, t.budget_alert_ratio, ",".join(t.allowed_models) if t.allowed_models is not None else "all", _day(t.created_at)]
        for t in await AdminStore(db).list_tenants(CLI)
    ]  # fmt: skip
    print(
        table(
            [
                "id",
                "organization",
                "name",
                "rpm",
                "tpm",
                "budget_usd",
                "period",
                "alert_at",
                "models",
                "created",
            ],
            rows,
        )
    )


async def _keys_create(db: Database, args: Any) -> None:
    store = AdminStore(db)
    expires = datetime.now(UTC) + timedelta(days=args.expires_days) if args.expires_days else None
    body = _checked(
        KeyCreate, tenant_id=await _tenant_id(store, args.tenant), name=args.name,
        allowed_models=_models(args.models), rate_limit_rpm=args.rpm,
        tokens_per_minute=args.tpm, budget_usd=args.budget, budget_period=args.budget_period,
        budget_alert_ratio=args.budget_alert_ratio, expires_at=expires,
    )  # fmt: skip
    key = await store.create_key(CLI, body)
    print(
        table(
            ["id", "prefix", "tenant", "expires"],
            [[key.id, key.prefix, key.tenant_id, _day(key.expires_at)]],
        )
    )
    print(f"\napi key (shown once): {key.api_key}")


async def _keys_list(db: Database, args: Any) -> None:
    store = AdminStore(db)
    tenant = await _tenant_id(store, args.tenant) if args.tenant else None
    rows = [
        [k.id, k.prefix, k.organization, k.tenant_id or f"user {k.user_id}", k.name,
         _budget(k.budget_usd, k.budget_period), _day(k.expires_at),
         "revoked" if k.revoked_at else "active", _day(k.created_at)]
        for k in await store.list_keys(CLI, tenant_id=tenant)
    ]  # fmt: skip
    print(
        table(
            [
                "id",
                "prefix",
                "organization",
                "owner",
                "name",
                "budget",
                "expires",
                "state",
                "created",
            ],
            rows,
        )
    )


async def _keys_revoke(db: Database, args: Any) -> None:
    key = await AdminStore(db).revoke_key(CLI, args.key_id)
    print(f"revoked {key.id} ({key.prefix}...); every gateway worker refuses it within ~1 s")


async def _usage(db: Database, args: Any) -> None:
    end = datetime.fromisoformat(args.end).date() if args.end else datetime.now(UTC).date()
    start = datetime.fromisoformat(args.start).date() if args.start else end - timedelta(days=29)
    group_by = [g.strip() for g in args.by.split(",") if g.strip()]
    unknown = [g for g in group_by if g not in reports.USAGE_GROUPS]
    if unknown:
        raise GatewayError(
            f"--by: unknown group {unknown[0]!r} (known: {', '.join(reports.USAGE_GROUPS)})"
        )
    report = await reports.usage(db, start=start, end=end, group_by=group_by, tenant=args.tenant)
    names = ["key_prefix" if g == "key" else g for g in group_by]
    measures = ["requests", "errors", "prompt_tokens", "completion_tokens", "cost_usd"]
    rows = [[getattr(r, n) for n in names] + [getattr(r, m) for m in measures] for r in report.data]
    total = report.total
    rows.append(
        ["total", *[""] * (len(names) - 1)] + [getattr(total, m) for m in measures]
        if names
        else [getattr(total, m) for m in measures]
    )
    print(f"usage {report.start} .. {report.end} (UTC days)")
    print(
        table(
            [*names, *measures],
            [[f"{v:.6f}" if isinstance(v, float) else v for v in r] for r in rows],
        )
    )


async def _db_upgrade(db: Database, args: Any) -> None:
    # Every command upgrades the schema first (in _with_db); this one only reports it.
    applied = args.applied
    print(f"applied migrations {applied}" if applied else "the schema is up to date")


_HANDLERS: dict[str, Callable[[Database, argparse.Namespace], Awaitable[None]]] = {
    "tenants_create": _tenants_create,
    "tenants_list": _tenants_list,
    "keys_create": _keys_create,
    "keys_list": _keys_list,
    "keys_revoke": _keys_revoke,
    "usage": _usage,
    "db_upgrade": _db_upgrade,
}
