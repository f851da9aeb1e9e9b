"""The configuration schema: frozen msgspec Structs for the full form.

The simple single-upstream form (``proxy.target``) is converted into this form by
:mod:`relay.config.simple`; everything downstream sees only these types.
"""

from __future__ import annotations

from typing import Literal

from msgspec import Struct, field


class ServerConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """Where and how the gateway serves."""

    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    max_body_bytes: int = 4 * 1024 * 1024
    drain_timeout_s: float = 10.0
    log_level: str = "info"
    # Cap on pooled upstream connections per provider host and worker (0: no cap).
    upstream_connections_per_host: int = 512


class Timeouts(Struct, frozen=True, forbid_unknown_fields=True):
    """Per-provider upstream timeouts in seconds.

    ``read_s`` bounds the wait for the first byte and every gap between stream chunks;
    ``total_s`` bounds a whole non-streamed exchange (streams are bounded by ``read_s`` only).
    """

    connect_s: float = 10.0
    read_s: float = 120.0
    total_s: float = 600.0


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


class Pricing(Struct, frozen=True, forbid_unknown_fields=True):
    """USD per 1M tokens. ``cached`` prices cached prompt tokens (defaults to ``input``)."""

    input: float = 0.0
    output: float = 0.0
    cached: float | None = None


class Target(Struct, frozen=True, forbid_unknown_fields=True):
    """A deployment a public model is sent to: a provider and the model name it knows."""

    provider: str
    model: str | None = None


class ModelConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """A public model name: where it goes and what it costs.

    ``provider``/``model`` is shorthand for a single target. With several targets the first is
    used; load balancing and fallback across targets come with the routing work.
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


class RedisConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """Redis connection (used by the limits and cache work; accepted and validated now)."""

    enabled: bool = False
    address: str = "127.0.0.1:6379"
    password: str | None = None
    db: int = 0


class RateLimitConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """Global request rate limit (accepted and validated now; enforced by the limits work)."""

    enabled: bool = False
    requests_per_second: float = 10.0
    burst: int = 20


class AuthConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """Who may call the gateway, and with what.

    ``passthrough``: the caller's own provider key is forwarded (no gateway identity).
    ``keys``: callers present a gateway key ``gw-sk-...``; provider keys come from the config.
    ``none``: no caller identity; the body's ``metadata.tenant`` names the tenant.
    """

    mode: Literal["passthrough", "keys", "none"] = "passthrough"
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


class DatabaseConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """Tenants, keys, audit log and ledger: an SQLite file (default) or PostgreSQL."""

    # sqlite:///relative/path, sqlite:////absolute/path, or postgresql://user@host:port/db.
    url: str = "sqlite:///relay.db"
    ledger: LedgerConfig = LedgerConfig()


class Config(Struct, frozen=True, forbid_unknown_fields=True):
    """The whole gateway configuration."""

    server: ServerConfig = ServerConfig()
    providers: dict[str, ProviderConfig] = field(default_factory=dict)
    models: dict[str, ModelConfig] = field(default_factory=dict)
    # Models not listed are sent, under their own name, to this provider (None: 404).
    default_provider: str | None = None
    redis: RedisConfig = RedisConfig()
    ratelimit: RateLimitConfig = RateLimitConfig()
    auth: AuthConfig = AuthConfig()
    database: DatabaseConfig = DatabaseConfig()
    # Where this config came from, for messages; not read from YAML.
    source: str = "<memory>"
