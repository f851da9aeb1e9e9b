"""The configuration schema: frozen msgspec Structs for the full form.

The simple single-upstream form (``proxy.target``) is converted into this form by
:mod:`relay.config.simple`; everything downstream sees only these types.
"""

from __future__ import annotations

from typing import Any, Literal

from msgspec import Struct, field


class ServerConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """Where and how the gateway serves."""

    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    max_body_bytes: int = 4 * 1024 * 1024
    # A request body read whole (JSON) must arrive within this time; a streamed upload may not
    # pause longer than this between two reads. Then the answer is a 408.
    body_timeout_s: float = 30.0
    drain_timeout_s: float = 10.0
    log_level: str = "info"
    # Every line the gateway writes (its own, granian's, third-party libraries'): one JSON
    # object per line, or ``text`` (one readable line each).
    log_format: Literal["json", "text"] = "json"
    # One line per request at ``info`` on the ``relay.access`` logger (false: none).
    access_log: bool = True
    # Cap on pooled upstream connections per provider host and worker (0: no cap).
    upstream_connections_per_host: int = 512
    # Pass-through routes (files, audio, images, ...): bodies are streamed, never held whole,
    # and may be up to this size.
    max_upload_bytes: int = 512 * 1024 * 1024
    # Settlers (reservations, cache writes) run after the last byte; together they may take
    # this long per request before they are abandoned (and logged).
    settle_timeout_s: float = 2.0
    # A provider's JSON answer is read whole, and may be up to this size once decompressed
    # (error answers up to 1 MiB); beyond it the answer is a 502.
    max_upstream_body_bytes: int = 128 * 1024 * 1024
    # The client of provider calls: ``h1``, the gateway's own HTTP/1.1 client (about 200 us of
    # CPU a request less than aiohttp's), or ``aiohttp``. Pass-through routes use aiohttp.
    upstream_client: Literal["h1", "aiohttp"] = "h1"


class Timeouts(Struct, frozen=True, forbid_unknown_fields=True):
    """Per-provider upstream timeouts in seconds.

    ``first_byte_s`` bounds the wait for the response (a stream's first body bytes),
    ``idle_s`` every gap between stream chunks; ``read_s`` is the shorthand for both (used for
    whichever is not set). ``total_s`` bounds a whole non-streamed exchange (streams are bounded
    by the first-byte and idle timeouts only).
    """

    connect_s: float = 10.0
    read_s: float = 120.0
    total_s: float = 600.0
    first_byte_s: float | None = None
    idle_s: float | None = None

    @property
    def first_byte(self) -> float:
        """The first-byte timeout in effect."""
        return self.read_s if self.first_byte_s is None else self.first_byte_s

    @property
    def idle(self) -> float:
        """The timeout between stream chunks in effect."""
        return self.read_s if self.idle_s is None else self.idle_s


class TimeoutOverrides(Struct, frozen=True, forbid_unknown_fields=True):
    """A model's timeouts: each one set replaces the provider's (``read_s``: first byte and
    idle, unless those are set too)."""

    connect_s: float | None = None
    read_s: float | None = None
    first_byte_s: float | None = None
    idle_s: float | None = None
    total_s: float | None = None


class ProviderConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """One upstream provider: its adapter kind, endpoint and credentials."""

    kind: str
    base_url: str | None = None
    api_key: str | None = None
    # Forward the caller's own Authorization header instead of api_key (the simple form).
    forward_client_auth: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    timeouts: Timeouts = Timeouts()
    # echo only: pause between streamed chunks, to make slow streams reproducible offline.
    chunk_delay_ms: float = 0.0
    # azure: the api-version query parameter; bearer_token (a Microsoft Entra ID token) is sent
    # as Authorization: Bearer instead of the api-key header.
    api_version: str | None = None
    bearer_token: str | None = None
    # bedrock: the AWS region, an optional endpoint (VPC endpoint, proxy), and credentials
    # (default: the standard AWS environment variables).
    region: str | None = None
    endpoint_url: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    aws_session_token: str | None = None
    # Settings of a plugin kind, read by the plugin itself.
    settings: dict[str, str] = field(default_factory=dict)
    # anthropic only: the API version sent as ``anthropic-version`` (a client's own header on
    # /v1/messages wins), and ``max_tokens`` for OpenAI requests that set none.
    anthropic_version: str = "2023-06-01"
    max_tokens_default: int = 4096
    # /v1/responses passed through to the provider's own Responses API (True) or translated to
    # its chat API (False). None: the kind's default (openai: yes; azure: from api_version
    # 2025-03-01-preview on; every other kind: translated).
    native_responses: bool | None = None


class Pricing(Struct, frozen=True, forbid_unknown_fields=True):
    """USD per 1M tokens. ``cached`` prices cache reads (defaults to ``input``), ``cache_write``
    prompt tokens written to a provider's cache (Anthropic; defaults to ``input``)."""

    input: float = 0.0
    output: float = 0.0
    cached: float | None = None
    cache_write: float | None = None


class RateQuota(Struct, frozen=True, forbid_unknown_fields=True):
    """Requests and tokens per minute (None: no limit), for a model or one deployment.
    Bursts are a minute's worth; tokens are reserved (prompt + ``max_tokens``) and settled
    with the usage."""

    rpm: int | None = None
    tpm: int | None = None


class Target(Struct, frozen=True, forbid_unknown_fields=True):
    """A deployment a public model is sent to: a provider and the model name it knows."""

    provider: str
    model: str | None = None
    # Share of the traffic for the ``weighted`` strategy (relative to the other targets).
    weight: float = 1.0
    # The provider's quota for this deployment: at its limit it is skipped, as an open
    # circuit is; shared by every model that targets the same provider and model.
    limits: RateQuota | None = None


# Statuses that are never retried: the request itself is wrong, another attempt cannot help.
NEVER_RETRIED = (400, 401, 403, 404, 422)
RETRIED_BY_DEFAULT = (429, 500, 502, 503, 504, 529)
STRATEGIES = ("weighted", "least_inflight", "lowest_latency")


class RetryConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """Retries of a model: ``max`` attempts after the first, spread over its targets.

    A retry on the deployment that just failed waits: exponential backoff with full jitter
    (``backoff_base_s * 2**n``, capped at ``backoff_max_s``), or what the provider asked for
    (``retry-after``, ``x-ratelimit-reset-*``) when that is no more than ``retry_after_max_s``;
    a longer wait is not retried on that deployment. Moving to another target does not wait.
    """

    max: int = 2
    backoff_base_s: float = 0.25
    backoff_max_s: float = 4.0
    retry_after_max_s: float = 10.0
    on_status: list[int] = field(default_factory=lambda: list(RETRIED_BY_DEFAULT))
    # Connect errors, resets and timeouts.
    on_transport_error: bool = True


class ModelConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """A public model name: where it goes and what it costs.

    ``provider``/``model`` is shorthand for a single target. ``strategy`` orders the targets
    of each request; ``retries`` (a count or a :class:`RetryConfig`; default: each target
    once) bounds the attempts; ``fallbacks`` are other models tried in order when these
    attempts fail, with chains of their own for context-window and content-policy errors.
    """

    targets: list[Target] = field(default_factory=list)
    provider: str | None = None
    model: str | None = None
    pricing: Pricing = Pricing()
    # Encoding for local token counting when the upstream reports no usage.
    encoding: str | None = None
    owned_by: str = "relay"
    # A request parameter the provider cannot honour is dropped instead of answered with a 400.
    drop_unsupported_params: bool = False
    strategy: str = "weighted"
    retries: int | RetryConfig | None = None
    fallbacks: list[str] = field(default_factory=list)
    context_window_fallbacks: list[str] = field(default_factory=list)
    content_policy_fallbacks: list[str] = field(default_factory=list)
    timeouts: TimeoutOverrides | None = None
    # Requests and tokens per minute for this model, across every caller (a 429 beyond).
    limits: RateQuota | None = None
    # The model answers an identical request identically (a local model with fixed sampling):
    # in ``cache.mode: deterministic`` every request to it may be cached.
    deterministic: bool = False
    # This model's own cache mode and entry lifetime (None: the ``cache`` section's).
    cache: ModelCacheConfig | None = None
    # Names from ``policies:`` applied to this model's requests, after the global ``middleware``.
    policies: list[str] = field(default_factory=list)


CacheMode = Literal["off", "deterministic", "all"]


class ModelCacheConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """A model's overrides of the response cache (None: the ``cache`` section's value)."""

    mode: CacheMode | None = None
    ttl_s: float | None = None


class CacheConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """The exact response cache: identical requests of one tenant answered without a call.

    ``deterministic`` caches requests with ``temperature: 0``, a ``seed``, or to a model
    marked ``deterministic``; ``all`` caches every cacheable request. ``backend`` defaults to
    ``redis`` when ``redis.enabled``, else ``memory`` (an LRU per worker of ``max_bytes``).
    """

    mode: CacheMode = "off"
    ttl_s: float = 3600.0
    backend: Literal["memory", "redis"] | None = None
    # Per worker, for the memory backend: least recently used entries go first.
    max_bytes: int = 256 * 1024 * 1024
    # A Redis read or write waits at most this long; then the cache is a pass-through.
    redis_timeout_ms: float = 20.0
    # Top-level request fields that do not change the answer (beside user, stream,
    # stream_options, metadata and store, always ignored).
    ignore_fields: list[str] = field(default_factory=list)
    # Answers that call tools are cached too (their tools may have side effects: off).
    cache_tool_calls: bool = False
    # Tenants share entries (identical requests of two tenants get one answer).
    shared: bool = False


class RedisConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """Redis connection, shared by every worker and replica (limits now, the cache later).

    ``address`` is ``HOST:PORT`` or a URL (``redis://``, ``rediss://``, ``unix://``; a URL's
    own password and database win over ``password`` and ``db``).
    """

    enabled: bool = False
    address: str = "127.0.0.1:6379"
    password: str | None = None
    db: int = 0
    # Every Redis call (connecting included) waits at most this long; then the limits follow
    # ``limits.on_redis_failure`` until Redis answers again.
    timeout_ms: float = 50.0


class RateLimitConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """Requests per second of each caller (``scope: caller``: its gateway key, a hash of its
    own credential in ``passthrough``, else its address) or of the whole gateway
    (``global``), in bursts of up to ``burst``."""

    enabled: bool = False
    requests_per_second: float = 10.0
    burst: int = 20
    scope: Literal["caller", "global"] = "caller"


class LimitsConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """Limits every tenant gets, what a request reserves, and how limits and budgets are kept
    when they live in Redis."""

    # Tokens per minute of each tenant whose own ``tokens_per_minute`` is not set (also of
    # tenants named only by ``metadata.tenant`` under ``auth.mode: none``); None: no limit.
    tokens_per_minute: int | None = None
    # Completion tokens a request reserves when it sets no ``max_tokens`` (settled to the real
    # usage after the answer; what went over is charged then).
    default_max_tokens: int = 0

    # While Redis fails or does not answer in ``redis.timeout_ms``: ``local`` decides in this
    # host's memory at each limit divided by ``replicas``; ``open`` lets every request through;
    # ``closed`` refuses every request a limit applies to.
    on_redis_failure: Literal["local", "open", "closed"] = "local"
    # Gateway replicas sharing the Redis (what ``local`` divides each limit by).
    replicas: int = 1


AuthMode = Literal["passthrough", "keys", "none"]


class AuthConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """Who may call the gateway, and with what.

    ``passthrough``: the caller's own provider key is forwarded (no gateway identity).
    ``keys``: callers present a gateway key ``gw-sk-...``; provider keys come from the config.
    ``none``: no caller identity; the body's ``metadata.tenant`` names the tenant.
    Not set: ``keys`` when an admin key is set or the database holds active keys, else
    ``passthrough`` (decided at start by :mod:`relay.auth.mode`).
    """

    mode: AuthMode | None = None
    # The master key of the admin API (also RELAY_ADMIN_KEY); None: only admin users' keys.
    admin_key: str | None = None
    # How often each worker asks the database whether keys changed (revocation delay bound).
    key_refresh_s: float = 1.0


class LedgerConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """The request ledger: a bounded queue drained by a background writer in batches."""

    enabled: bool = True
    queue_size: int = 50_000
    batch_size: int = 500
    flush_interval_s: float = 0.5


class ResponsesStoreConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """Responses the gateway stores itself (translated providers): ``store`` (the Responses
    API's default) and ``previous_response_id``. Disabled: both are a 400."""

    enabled: bool = True
    # Stored responses are served, and kept, this long.
    retention_days: float = 30.0
    # Bytes of responses a worker queues while the database is away; more are dropped (logged).
    queue_bytes: int = 64 * 1024 * 1024


class DatabaseConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """Tenants, keys, audit log and ledger: an SQLite file (default), PostgreSQL, or none."""

    # sqlite:///relative/path, sqlite:////absolute/path, postgresql://user@host:port/db, or
    # none (no database: no ledger, no keys, no admin API, no stored responses).
    url: str = "sqlite:///relay.db"
    # Ledger rows (requests, provider attempts) older than this are deleted, in batches, in
    # the background; None keeps them forever. The daily usage roll-up is kept.
    retention_days: float | None = 30.0
    ledger: LedgerConfig = LedgerConfig()
    responses: ResponsesStoreConfig = ResponsesStoreConfig()


class BreakerConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """Circuit breaker of every deployment: open when at least ``min_requests`` calls in the
    last ``window_s`` seconds failed at ``failure_rate`` or more; after ``cooldown_s`` let
    ``half_open_probes`` calls through; one success closes it, one failure opens it again."""

    enabled: bool = True
    failure_rate: float = 0.5
    min_requests: int = 10
    window_s: float = 30.0
    cooldown_s: float = 30.0
    half_open_probes: int = 1


class RetryBudgetConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """Retries on each deployment, per worker: at most ``ratio`` of the requests it received
    in the last ``window_s`` seconds, plus ``min_retries``. A request's first attempt on a
    deployment (failover and fallbacks included) counts as a request and is never refused."""

    ratio: float = 0.2
    min_retries: int = 3
    window_s: float = 10.0


class RoutingConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """Gateway-wide routing: the model for requests that name none, direct deployments,
    the retry budget, breaker defaults, and how far ``x-relay-timeout`` may go."""

    default_model: str | None = None
    # ``provider/model`` in a request names a deployment directly (not a configured model).
    allow_direct: bool = False
    retry_budget: RetryBudgetConfig = RetryBudgetConfig()
    breaker: BreakerConfig = BreakerConfig()
    # The longest ``x-relay-timeout`` honoured; None: the header may only shorten timeouts.
    max_request_timeout_s: float | None = None
    # Other /v1 routes (files, batches, images, audio, ...) whose request names no model go to
    # this provider (None: such requests are refused).
    passthrough_provider: str | None = None


class MetricsConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """Prometheus metrics at ``GET /metrics`` (see docs/observability.md, "Metrics")."""

    enabled: bool = True
    # Distinct values kept per label for on-demand model names and tenants named by request
    # metadata, per worker; past it they count as ``other`` (bounded series).
    max_label_values: int = 100
    # Each worker writes what it gathered to the shared files this often (a scrape always
    # sees its own worker's latest).
    flush_interval_s: float = 1.0


class TelemetryConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """OpenTelemetry traces and metrics (needs ``relay-gateway[otel]``). Off unless an
    exporter is chosen or an endpoint is set; the standard ``OTEL_*`` variables override."""

    # Where spans go: ``otlp`` (http/protobuf to ``endpoint``), ``console`` (one JSON line per
    # span on stdout) or ``none``; unset: ``otlp`` when an endpoint is set, else ``none``.
    # OTEL_TRACES_EXPORTER.
    traces_exporter: Literal["otlp", "console", "none"] | None = None
    # The collector's base URL (``/v1/traces`` and ``/v1/metrics`` are appended; default
    # http://localhost:4318 when the exporter is otlp). OTEL_EXPORTER_OTLP_ENDPOINT.
    endpoint: str | None = None
    # ``service.name`` of every span and metric. OTEL_SERVICE_NAME.
    service_name: str = "relay"
    # Also export metrics (requests, duration, tokens) to ``endpoint``.
    metrics: bool = True
    # How often metrics are exported.
    metrics_interval_s: float = 60.0
    # The share of traces started here that are recorded (a client's ``traceparent`` decides
    # for its own traces).
    sample_ratio: float = 1.0

    @property
    def traces(self) -> str:
        """Where spans go, resolved: ``otlp``, ``console`` or ``none``."""
        return self.traces_exporter or ("otlp" if self.endpoint else "none")

    @property
    def exports_metrics(self) -> bool:
        """Metrics are exported (to the OTLP endpoint)."""
        return self.metrics and (self.endpoint is not None or self.traces == "otlp")

    @property
    def otlp_endpoint(self) -> str:
        """The collector's base URL (OpenTelemetry's default when none is set)."""
        return (self.endpoint or "http://localhost:4318").rstrip("/")

    @property
    def enabled(self) -> bool:
        """Anything is exported: the OpenTelemetry SDK is loaded (else never imported)."""
        return self.traces != "none" or self.exports_metrics


class OidcConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """Sign-in to the dashboard through an OpenID Connect provider (Azure AD / Entra ID or any
    issuer with discovery): the authorization code flow with state, nonce and PKCE."""

    issuer: str
    client_id: str
    client_secret: str | None = None
    # Exactly the URI registered with the provider (https://relay.example.com/ui/oidc/callback).
    redirect_uri: str = ""
    scopes: list[str] = field(default_factory=lambda: ["openid", "profile", "email"])
    # The claim holding the user's roles or groups (Entra ID: "groups" holds group ids).
    role_claim: str = "roles"
    # Values of ``role_claim`` that make an admin; ``user_groups``: those that make a user
    # (empty: any signed-in user of the issuer is a user). Anyone else is refused.
    admin_groups: list[str] = field(default_factory=list)
    user_groups: list[str] = field(default_factory=list)
    # The claim naming the user's organisation (Entra ID: "tid"); None: "default".
    org_claim: str | None = None


class UiConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """The dashboard at ``/ui`` (served only with a database, which holds what it shows)."""

    enabled: bool = True
    # Signs session cookies (also RELAY_UI_SECRET); None: derived from the admin key, else
    # random per start (sessions then end with a restart and are not shared by replicas).
    session_secret: str | None = None
    session_hours: float = 8.0
    oidc: OidcConfig | None = None


class Config(Struct, frozen=True, forbid_unknown_fields=True):
    """The whole gateway configuration."""

    server: ServerConfig = ServerConfig()
    providers: dict[str, ProviderConfig] = field(default_factory=dict)
    models: dict[str, ModelConfig] = field(default_factory=dict)
    # Models not listed are sent, under their own name, to this provider (None: 404).
    default_provider: str | None = None
    redis: RedisConfig = RedisConfig()
    ratelimit: RateLimitConfig = RateLimitConfig()
    limits: LimitsConfig = LimitsConfig()
    cache: CacheConfig = CacheConfig()
    auth: AuthConfig = AuthConfig()
    database: DatabaseConfig = DatabaseConfig()
    routing: RoutingConfig = RoutingConfig()
    metrics: MetricsConfig = MetricsConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    # Prompt policies by name (each a block with its ``kind``: redact, rewrite, guardrail,
    # log_content, or a plugin's), applied globally (``middleware``), per model
    # (``models.X.policies``) and per tenant (``tenant_policies``), in that order.
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)
    middleware: list[str] = field(default_factory=list)
    tenant_policies: dict[str, list[str]] = field(default_factory=dict)
    ui: UiConfig = UiConfig()
    # Where this config came from, for messages; not read from YAML.
    source: str = "<memory>"
