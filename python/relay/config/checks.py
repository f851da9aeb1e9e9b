"""Ranges and cross-references that a type alone cannot express.

Everything ``serve`` would trip over later is checked here, so that what ``check-config``
accepts, ``serve`` starts: a listen address granian can bind, a log level ``logging`` knows,
positive rates, provider names that exist.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Collection

from relay import kinds
from relay.config.model import Config, ProviderConfig, RateQuota
from relay.config.oidc import check_oidc
from relay.config.problems import Problems, importable, unknown
from relay.config.routing import check_routing
from relay.policies.registry import check_policies

KNOWN_ENCODINGS = ("o200k_base", "cl100k_base")
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
REDIS_SCHEMES = ("redis", "rediss", "unix")


def check_config(config: Config, declared_providers: Collection[str], problems: Problems) -> None:
    """Append every semantic problem of ``config``.

    ``declared_providers`` names every provider the file declares, including ones whose own
    settings were wrong: a model using a broken provider is not reported a second time.
    """
    _check_server(config, problems)
    _check_providers(config, problems)
    _check_models(config, declared_providers, problems)
    _check_stores(config, problems)
    check_routing(config, problems)
    _check_telemetry(config, problems)
    _check_metrics(config, problems)
    check_policies(config, problems)
    check_oidc(config, problems)


def _check_metrics(config: Config, problems: Problems) -> None:
    metrics = config.metrics
    if metrics.max_label_values < 1:
        problems.add(
            "metrics.max_label_values", f"expected at least 1, got {metrics.max_label_values}"
        )
    if not metrics.flush_interval_s > 0:
        problems.add(
            "metrics.flush_interval_s",
            f"expected a positive number of seconds, got {metrics.flush_interval_s}",
        )


def _check_server(config: Config, problems: Problems) -> None:
    server = config.server
    try:
        ipaddress.ip_address(server.host)
    except ValueError:
        problems.add(
            "server.host",
            f"expected an IP address to listen on (127.0.0.1, 0.0.0.0, ::1, ::), got {server.host!r}",
        )
    if not 0 < server.port < 65536:
        problems.add("server.port", f"expected 1-65535, got {server.port}")
    if server.workers < 1:
        problems.add("server.workers", f"expected at least 1, got {server.workers}")
    if server.max_body_bytes < 1024:
        problems.add(
            "server.max_body_bytes", f"expected at least 1024, got {server.max_body_bytes}"
        )
    if server.max_upload_bytes < 1024:
        problems.add(
            "server.max_upload_bytes", f"expected at least 1024, got {server.max_upload_bytes}"
        )
    if not server.settle_timeout_s > 0:
        problems.add(
            "server.settle_timeout_s", f"expected a positive number, got {server.settle_timeout_s}"
        )
    if server.max_upstream_body_bytes < 1024:
        problems.add(
            "server.max_upstream_body_bytes",
            f"expected at least 1024, got {server.max_upstream_body_bytes}",
        )
    if server.upstream_connections_per_host < 0:
        problems.add(
            "server.upstream_connections_per_host",
            f"expected 0 (no cap) or more, got {server.upstream_connections_per_host}",
        )
    if not server.body_timeout_s > 0:
        problems.add(
            "server.body_timeout_s", f"expected more than 0 seconds, got {server.body_timeout_s}"
        )
    if server.drain_timeout_s < 0:
        problems.add(
            "server.drain_timeout_s", f"expected 0 or more seconds, got {server.drain_timeout_s}"
        )
    if server.log_level not in LOG_LEVELS:
        problems.add("server.log_level", unknown("level", server.log_level, LOG_LEVELS))


# Modules the ``otel`` extra installs: the SDK and the OTLP http/protobuf exporter.
OTEL_MODULES = ("opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.http")


def _check_telemetry(config: Config, problems: Problems) -> None:
    telemetry = config.telemetry
    endpoint = telemetry.endpoint
    if endpoint is not None and not endpoint.startswith(("http://", "https://")):
        problems.add("telemetry.endpoint", f"expected an http(s) URL, got {endpoint!r}")
    if not telemetry.metrics_interval_s > 0:
        problems.add(
            "telemetry.metrics_interval_s",
            f"expected more than 0 seconds, got {telemetry.metrics_interval_s}",
        )
    if not 0 <= telemetry.sample_ratio <= 1:
        problems.add("telemetry.sample_ratio", f"expected 0 to 1, got {telemetry.sample_ratio}")
    if telemetry.enabled:
        missing = [m for m in OTEL_MODULES if not importable(m)]
        if missing:
            problems.add(
                "telemetry",
                f"exporting traces or metrics needs the OpenTelemetry SDK ({', '.join(missing)} "
                "not installed): pip install 'relay-gateway[otel]'",
            )


def _check_providers(config: Config, problems: Problems) -> None:
    for name, provider in config.providers.items():
        path = f"providers.{name}"
        _check_kind(path, provider, problems)
        for field_name in ("connect_s", "read_s", "total_s", "first_byte_s", "idle_s"):
            value = getattr(provider.timeouts, field_name)
            if value is not None and value <= 0:
                problems.add(
                    f"{path}.timeouts.{field_name}", f"expected more than 0 seconds, got {value}"
                )
        if provider.max_tokens_default < 1:
            problems.add(
                f"{path}.max_tokens_default",
                f"expected at least 1, got {provider.max_tokens_default}",
            )
        if provider.chunk_delay_ms < 0:
            problems.add(
                f"{path}.chunk_delay_ms", f"expected 0 or more, got {provider.chunk_delay_ms}"
            )


def _check_kind(path: str, provider: ProviderConfig, problems: Problems) -> None:
    """What the provider's kind needs: a base URL, its own settings, an optional package."""
    spec = kinds.spec(provider.kind)
    if spec is None:
        problems.add(f"{path}.kind", unknown("kind", provider.kind, kinds.known_kinds()))
        return
    for field_name in ("base_url", "endpoint_url"):
        url = getattr(provider, field_name)
        if url is not None and not url.startswith(("http://", "https://")):
            problems.add(f"{path}.{field_name}", f"expected an http(s) URL, got {url!r}")
    if spec.base_url == "required" and not provider.base_url:
        problems.add(f"{path}.base_url", f"required for kind {provider.kind!r}")
    elif spec.base_url == "unused" and provider.base_url:
        hint = "; use endpoint_url" if provider.kind == "bedrock" else ""
        problems.add(f"{path}.base_url", f"not used by kind {provider.kind!r}{hint}")
    for field_name in spec.required:
        if not getattr(provider, field_name):
            problems.add(f"{path}.{field_name}", f"required for kind {provider.kind!r}")
    if (missing := kinds.missing_module(spec)) is not None:
        problems.add(f"{path}.kind", missing)


def _check_models(config: Config, declared: Collection[str], problems: Problems) -> None:
    names = set(declared) | set(config.providers)
    for name, model in config.models.items():
        path = f"models.{name}"
        if not model.targets and model.provider is None:
            problems.add(path, "needs `provider` or at least one entry in `targets`")
        for i, target in enumerate(model.targets):
            if target.provider not in names:
                # The shorthand `provider:` is where the user wrote the name.
                where = (
                    f"{path}.provider"
                    if model.provider is not None
                    else f"{path}.targets[{i}].provider"
                )
                problems.add(where, unknown("provider", target.provider, names))
        _check_quota(f"{path}.limits", model.limits, problems)
        for field_name in ("input", "output", "cached", "cache_write"):
            price = getattr(model.pricing, field_name)
            if price is not None and price < 0:
                problems.add(
                    f"{path}.pricing.{field_name}", f"expected a price of 0 or more, got {price}"
                )
        if model.encoding is not None and model.encoding not in KNOWN_ENCODINGS:
            problems.add(f"{path}.encoding", unknown("encoding", model.encoding, KNOWN_ENCODINGS))
    if config.default_provider is not None and config.default_provider not in names:
        problems.add("default_provider", unknown("provider", config.default_provider, names))
    _check_deployment_limits(config, problems)


def _check_quota(path: str, quota: RateQuota | None, problems: Problems) -> None:
    if quota is None:
        return
    for field_name in ("rpm", "tpm"):
        value = getattr(quota, field_name)
        if value is not None and value < 1:
            problems.add(f"{path}.{field_name}", f"expected at least 1 (or no key), got {value}")


def _check_deployment_limits(config: Config, problems: Problems) -> None:
    """A deployment's quota is one counter however many models target it: its targets must
    agree on it."""
    seen: dict[tuple[str, str], tuple[str, RateQuota]] = {}
    for name, model in config.models.items():
        for i, target in enumerate(model.targets):
            path = f"models.{name}.targets[{i}].limits"
            _check_quota(path, target.limits, problems)
            if target.limits is None:
                continue
            key = (target.provider, target.model or name)
            first = seen.setdefault(key, (path, target.limits))
            if first[1] != target.limits:
                problems.add(
                    path,
                    f"{key[0]}/{key[1]} is limited differently at {first[0]}: a deployment "
                    "has one quota, give it the same limits everywhere",
                )


def _check_stores(config: Config, problems: Problems) -> None:
    redis, limit = config.redis, config.ratelimit
    host, sep, port = redis.address.rpartition(":")
    scheme, url, _ = redis.address.partition("://")
    if url and scheme not in REDIS_SCHEMES:
        problems.add(
            "redis.address",
            f"expected HOST:PORT or a {', '.join(s + '://' for s in REDIS_SCHEMES)} URL, "
            f"got {redis.address!r}",
        )
    elif not url and (not sep or not host or not port.isdigit() or not 0 < int(port) < 65536):
        problems.add("redis.address", f"expected HOST:PORT, got {redis.address!r}")
    if redis.db < 0:
        problems.add("redis.db", f"expected a database number of 0 or more, got {redis.db}")
    if not 0 < redis.timeout_ms < math.inf:
        problems.add("redis.timeout_ms", f"expected more than 0, got {redis.timeout_ms}")
    if config.limits.replicas < 1:
        problems.add("limits.replicas", f"expected at least 1, got {config.limits.replicas}")
    if limit.requests_per_second <= 0:
        problems.add(
            "ratelimit.requests_per_second",
            f"expected more than 0, got {limit.requests_per_second}",
        )
    if limit.burst < 1:
        problems.add("ratelimit.burst", f"expected at least 1, got {limit.burst}")
    tpm = config.limits.tokens_per_minute
    if tpm is not None and tpm < 1:
        problems.add("limits.tokens_per_minute", f"expected at least 1, got {tpm}")
    if config.limits.default_max_tokens < 0:
        problems.add(
            "limits.default_max_tokens",
            f"expected 0 or more, got {config.limits.default_max_tokens}",
        )
