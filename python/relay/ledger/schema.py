"""The schema as ordered, versioned migrations, written once for SQLite and PostgreSQL.

Each migration is a list of statements with ``{type}`` placeholders that each dialect fills
in. A database records the versions it has applied in ``schema_migrations``; upgrading applies
the rest in order, in one transaction per migration, under a lock so that several workers or
hosts starting together apply each migration exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass

TYPES = {
    # SQLite: the roll-up is clustered on its key (WITHOUT ROWID), so a date range is one
    # sequential read instead of an index walk plus a table look-up per row.
    "sqlite": {
        "float": "REAL",
        "bigint": "INTEGER",
        "bool": "INTEGER",
        "serial": "INTEGER",
        "clustered": " WITHOUT ROWID",
    },
    "postgresql": {
        "float": "DOUBLE PRECISION",
        "bigint": "BIGINT",
        "bool": "BOOLEAN",
        "serial": "BIGINT GENERATED ALWAYS AS IDENTITY",
        "clustered": "",
    },
}

CREATE_VERSIONS = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at {float} NOT NULL)"
)


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema version: what it does and its statements."""

    version: int
    description: str
    statements: tuple[str, ...]


_V1 = (
    # A single row whose value grows with every change to keys or tenants: each worker polls
    # it about once a second and reloads only what changed (seq > the value it last saw).
    "CREATE TABLE change_marker (id INTEGER PRIMARY KEY, value {bigint} NOT NULL)",
    "INSERT INTO change_marker (id, value) VALUES (1, 0)",
    "CREATE TABLE organizations (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, "
    "created_at {float} NOT NULL)",
    "CREATE TABLE tenants (id TEXT PRIMARY KEY, "
    "org_id TEXT NOT NULL REFERENCES organizations(id), name TEXT NOT NULL, "
    "allowed_models TEXT, rate_limit_rpm INTEGER, tokens_per_minute {bigint}, "
    "budget_usd {float}, created_at {float} NOT NULL, updated_at {float} NOT NULL, "
    "deleted_at {float}, seq {bigint} NOT NULL)",
    "CREATE UNIQUE INDEX tenants_org_name ON tenants (org_id, name) WHERE deleted_at IS NULL",
    "CREATE INDEX tenants_seq ON tenants (seq)",
    "CREATE TABLE users (id TEXT PRIMARY KEY, "
    "org_id TEXT NOT NULL REFERENCES organizations(id), name TEXT NOT NULL, "
    "role TEXT NOT NULL, created_at {float} NOT NULL)",
    "CREATE UNIQUE INDEX users_org_name ON users (org_id, name)",
    # Keys are stored only as a SHA-256 of the whole key (they carry 256 random bits, so a
    # slow password hash adds nothing) and a short visible prefix for people.
    "CREATE TABLE api_keys (id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, "
    "prefix TEXT NOT NULL, name TEXT, org_id TEXT NOT NULL REFERENCES organizations(id), "
    "tenant_id TEXT REFERENCES tenants(id), user_id TEXT REFERENCES users(id), "
    "allowed_models TEXT, rate_limit_rpm INTEGER, tokens_per_minute {bigint}, "
    "budget_usd {float}, expires_at {float}, revoked_at {float}, "
    "created_at {float} NOT NULL, updated_at {float} NOT NULL, seq {bigint} NOT NULL)",
    "CREATE INDEX api_keys_seq ON api_keys (seq)",
    "CREATE INDEX api_keys_tenant ON api_keys (tenant_id)",
    "CREATE INDEX api_keys_org ON api_keys (org_id, created_at)",
    "CREATE TABLE audit_log (id {serial} PRIMARY KEY, ts {float} NOT NULL, "
    "actor TEXT NOT NULL, organization TEXT, action TEXT NOT NULL, object_type TEXT NOT NULL, "
    "object_id TEXT, detail TEXT)",
    "CREATE INDEX audit_log_org_ts ON audit_log (organization, ts)",
    "CREATE INDEX audit_log_ts ON audit_log (ts)",
    "CREATE TABLE requests (id TEXT PRIMARY KEY, request_id TEXT NOT NULL, "
    "ts {float} NOT NULL, day INTEGER NOT NULL, org TEXT NOT NULL, tenant TEXT NOT NULL, "
    "key_id TEXT, key_prefix TEXT, use_case TEXT, endpoint TEXT NOT NULL, model TEXT NOT NULL, "
    "provider TEXT, deployment TEXT, status INTEGER NOT NULL, error TEXT, "
    "stream {bool} NOT NULL, latency_ms {float} NOT NULL, ttft_ms {float}, "
    "prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, "
    "cached_tokens INTEGER NOT NULL, cost_usd {float} NOT NULL, cache_hit {bool} NOT NULL, "
    "truncated {bool} NOT NULL, attempts INTEGER NOT NULL)",
    # The ledger listing pages by time, within an organisation and optionally a tenant.
    "CREATE INDEX requests_ts ON requests (ts)",
    "CREATE INDEX requests_org_ts ON requests (org, ts)",
    "CREATE INDEX requests_org_tenant_ts ON requests (org, tenant, ts)",
    "CREATE INDEX requests_request_id ON requests (request_id)",
    "CREATE TABLE provider_attempts (request_id TEXT NOT NULL REFERENCES requests(id), "
    "attempt INTEGER NOT NULL, provider TEXT NOT NULL, deployment TEXT NOT NULL, "
    "status INTEGER NOT NULL, error TEXT, latency_ms {float} NOT NULL, ttfb_ms {float}, "
    "prompt_tokens INTEGER, completion_tokens INTEGER, PRIMARY KEY (request_id, attempt))",
    # /admin/usage reads this daily roll-up, kept by the ledger writer in the same transaction
    # as the rows it sums, so a month of usage is a few hundred rows, not millions.
    "CREATE TABLE usage_daily (day INTEGER NOT NULL, org TEXT NOT NULL, tenant TEXT NOT NULL, "
    "key_prefix TEXT NOT NULL, model TEXT NOT NULL, requests {bigint} NOT NULL, "
    "errors {bigint} NOT NULL, prompt_tokens {bigint} NOT NULL, "
    "completion_tokens {bigint} NOT NULL, cached_tokens {bigint} NOT NULL, "
    "cost_usd {float} NOT NULL, PRIMARY KEY (day, org, tenant, key_prefix, model)){clustered}",
    "CREATE INDEX usage_daily_org_day ON usage_daily (org, day)",
)

_V2 = (
    # Responses the gateway answered by translation and stored (the Responses API's
    # ``store``), for previous_response_id and GET /v1/responses/{id}; per org and tenant.
    "CREATE TABLE responses (id TEXT PRIMARY KEY, org TEXT NOT NULL, tenant TEXT NOT NULL, "
    "created_at {float} NOT NULL, expires_at {float} NOT NULL, model TEXT NOT NULL, "
    "previous_id TEXT, conversation TEXT NOT NULL, response TEXT NOT NULL)",
    "CREATE INDEX responses_expires ON responses (expires_at)",
)

# A budget's period and the share of it spent at which one alert is logged, on tenants and
# keys alike (issue 23, budgets). Existing rows take the defaults: calendar months, 80%.
_BUDGET_COLUMNS = (
    " ADD COLUMN budget_period TEXT NOT NULL DEFAULT 'month' "
    "CHECK (budget_period IN ('day', 'month', 'total'))",
    " ADD COLUMN budget_alert_ratio {float} NOT NULL DEFAULT 0.8 "
    "CHECK (budget_alert_ratio > 0 AND budget_alert_ratio <= 1)",
)
_V3 = tuple(
    f"ALTER TABLE {table}{column}"
    for table in ("tenants", "api_keys")
    for column in _BUDGET_COLUMNS
)

_V4 = (
    # What a response-cache hit saved: the cost of the answer it replayed (its own is 0).
    "ALTER TABLE requests ADD COLUMN cost_saved_usd {float} NOT NULL DEFAULT 0",
)

_V5 = (
    # Prompt and completion text kept by a ``log_content`` policy (none by default), keyed by
    # the ledger id of its request and deleted with it, or at ``expires_at``
    # (``content_retention_days``), whichever comes first.
    "CREATE TABLE request_content (request_id TEXT PRIMARY KEY, ts {float} NOT NULL, "
    "expires_at {float} NOT NULL, store TEXT NOT NULL, prompt TEXT NOT NULL, "
    "completion TEXT NOT NULL)",
    "CREATE INDEX request_content_expires ON request_content (expires_at)",
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "tenants, keys, users, audit log, request ledger", _V1),
    Migration(2, "stored responses (Responses API)", _V2),
    Migration(3, "budget period and alert ratio of tenants and keys", _V3),
    Migration(4, "response cache: cost saved per request", _V4),
    Migration(5, "request content kept by log_content policies", _V5),
)


def render(statement: str, dialect: str) -> str:
    """Fill a statement's ``{type}`` placeholders for ``dialect``."""
    return statement.format(**TYPES[dialect])


def latest_version() -> int:
    """The version a fully upgraded database is at."""
    return MIGRATIONS[-1].version
