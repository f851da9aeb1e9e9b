"""The admin API's request and response bodies: typed msgspec Structs, also its OpenAPI schema."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

Name = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="letters, digits, '.', '_' and '-', starting with a letter or digit",
    ),
]
# Bounded by the columns that store them (PostgreSQL's integer and bigint; SQLite's INTEGER
# is 64-bit), so an out-of-range number is a 400 naming the field, not a database error.
Rpm = Annotated[int, Meta(ge=0, le=2**31 - 1)]
Tokens = Annotated[int, Meta(ge=0, le=2**63 - 1)]
# JSON has no infinity: msgspec refuses a number beyond a double's range (1e400) by itself.
Usd = Annotated[float, Meta(ge=0)]
# A budget renews each calendar day or month (UTC) or never ("total").
BudgetPeriod = Literal["day", "month", "total"]
AlertRatio = Annotated[
    float, Meta(gt=0, le=1, description="share of the budget spent that logs one alert a period")
]
# Text stored as is: PostgreSQL refuses the NUL character in text.
NO_NUL = r"^[^\x00]*$"
Id = Annotated[str, Meta(max_length=200, pattern=NO_NUL)]
Models = Annotated[list[Annotated[str, Meta(min_length=1)]], Meta(max_length=1000)]
Role = Literal["admin", "user"]
# The values of the enumerated fields, for messages (msgspec only says "invalid enum value").
CHOICES = {"budget_period": ("day", "month", "total"), "role": ("admin", "user")}


def enum_problem(field: str, what: str) -> str:
    """msgspec's ``invalid enum value 'x'`` for ``field`` with the values it takes."""
    if what.startswith("invalid enum value") and field in CHOICES:
        return f"{what}; expected one of {', '.join(CHOICES[field])}"
    return what


class TenantCreate(Struct, forbid_unknown_fields=True):
    """``POST /admin/tenants``: a team or service, created with its first key."""

    name: Name
    organization: Name | None = None
    rate_limit_rpm: Rpm | None = None
    tokens_per_minute: Tokens | None = None
    budget_usd: Usd | None = None
    budget_period: BudgetPeriod = "month"
    budget_alert_ratio: AlertRatio = 0.8
    allowed_models: Models | None = None


class TenantUpdate(Struct, forbid_unknown_fields=True):
    """``PATCH /admin/tenants/{id}``: fields left out stay; ``null`` clears a limit."""

    rate_limit_rpm: Rpm | UnsetType | None = UNSET
    tokens_per_minute: Tokens | UnsetType | None = UNSET
    budget_usd: Usd | UnsetType | None = UNSET
    budget_period: BudgetPeriod | UnsetType = UNSET
    budget_alert_ratio: AlertRatio | UnsetType = UNSET
    allowed_models: Models | UnsetType | None = UNSET


class KeyCreate(Struct, forbid_unknown_fields=True):
    """``POST /admin/keys``: a key for a tenant (service key) or for a user (admin/user key)."""

    tenant_id: Id | None = None
    user_id: Id | None = None
    name: Annotated[str, Meta(max_length=200, pattern=NO_NUL)] | None = None
    allowed_models: Models | None = None
    rate_limit_rpm: Rpm | None = None
    tokens_per_minute: Tokens | None = None
    budget_usd: Usd | None = None
    budget_period: BudgetPeriod = "month"
    budget_alert_ratio: AlertRatio = 0.8
    expires_at: datetime | None = None


class UserCreate(Struct, forbid_unknown_fields=True):
    """``POST /admin/users`` (admins only): a person with a role, created with a key."""

    name: Name
    role: Role = "user"
    organization: Name | None = None


class Key(Struct):
    """A key as listed: never the key itself, only its visible prefix."""

    id: str
    prefix: str
    name: str | None
    organization: str
    tenant_id: str | None
    user_id: str | None
    allowed_models: list[str] | None
    rate_limit_rpm: int | None
    tokens_per_minute: int | None
    budget_usd: float | None
    budget_period: BudgetPeriod
    budget_alert_ratio: float
    expires_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime
    object: str = "key"


class KeyCreated(Key):
    """A new key: ``api_key`` is shown this once and cannot be read again."""

    api_key: str = ""


class Tenant(Struct):
    """A team or service in an organisation, with its allow-list, limits and budget."""

    id: str
    name: str
    organization: str
    allowed_models: list[str] | None
    rate_limit_rpm: int | None
    tokens_per_minute: int | None
    budget_usd: float | None
    budget_period: BudgetPeriod
    budget_alert_ratio: float
    created_at: datetime
    updated_at: datetime
    object: str = "tenant"


class TenantCreated(Tenant):
    """A new tenant with its first key (``api_key`` is shown this once)."""

    api_key: str = ""
    key: Key | None = None


class User(Struct):
    """A person who manages tenants through the admin API."""

    id: str
    name: str
    organization: str
    role: Role
    created_at: datetime
    object: str = "user"


class UserCreated(User):
    """A new user with its key (``api_key`` is shown this once)."""

    api_key: str = ""
    key: Key | None = None


class UsageRow(Struct, omit_defaults=True):
    """Sums over one group; the grouping fields not asked for are left out."""

    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cost_usd: float
    organization: str | None = None
    tenant: str | None = None
    key_prefix: str | None = None
    model: str | None = None
    day: str | None = None


class UsageReport(Struct):
    """``GET /admin/usage``: usage per UTC day, summed by ``group_by``."""

    start: str
    end: str
    group_by: list[str]
    data: list[UsageRow]
    total: UsageRow
    object: str = "usage"


class Attempt(Struct):
    """One call to a provider for a request."""

    attempt: int
    provider: str
    deployment: str
    status: int
    error: str | None
    latency_ms: float
    ttfb_ms: float | None
    prompt_tokens: int | None
    completion_tokens: int | None


class RequestContent(Struct):
    """A request's prompt and completion text, kept by a ``log_content`` policy (shown to
    admins only): ``store`` is ``redacted`` or ``full``."""

    store: str
    prompt: str
    completion: str
    expires_at: datetime


class RequestRecord(Struct):
    """One request in the ledger."""

    id: str
    request_id: str
    created_at: datetime
    organization: str
    tenant: str
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
    attempt_count: int
    attempts: list[Attempt] | None = None
    object: str = "request"
    # A cache hit costs 0; this is what its recorded answer cost.
    cost_saved_usd: float = 0.0
    # The text a log_content policy kept (GET /admin/requests/{id}, admins only; else null).
    content: RequestContent | None = None


class AuditEntry(Struct):
    """One admin change: who, what, when."""

    id: int
    created_at: datetime
    actor: str
    organization: str | None
    action: str
    object_type: str
    object_id: str | None
    detail: dict[str, Any] | None
    object: str = "audit_entry"


class TenantList(Struct):
    """A list of tenants."""

    data: list[Tenant]
    object: str = "list"


class KeyList(Struct):
    """A list of keys."""

    data: list[Key]
    object: str = "list"


class UserList(Struct):
    """A list of users."""

    data: list[User]
    object: str = "list"


class RequestPage(Struct):
    """A page of the ledger, newest first; pass ``next_cursor`` as ``cursor`` for the next."""

    data: list[RequestRecord]
    has_more: bool
    next_cursor: str | None
    object: str = "list"


class CachePurged(Struct):
    """``DELETE /admin/cache``: how many entries went (with the memory backend, those of the
    worker that answered; the others purge theirs at their next request)."""

    purged: int
    # memory | redis | off (the cache caches nothing)
    backend: str


class AuditPage(Struct):
    """A page of the audit log, newest first."""

    data: list[AuditEntry]
    has_more: bool
    next_cursor: str | None
    object: str = "list"


class ErrorDetail(Struct):
    """OpenAI's error object."""

    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(Struct):
    """OpenAI's error envelope."""

    error: ErrorDetail
