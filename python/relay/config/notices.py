"""What a user must hear about a valid configuration: a summary for start-up, and warnings.

Warnings are not problems: the gateway can serve, but probably not as the user meant (a provider
key open to anyone on the network, a section switched on that this version does not enforce).
``check-config`` and ``serve`` print the same ones.
"""

from __future__ import annotations

import ipaddress

import msgspec

from relay.config.model import AuthMode, Config
from relay.config.tenancy import NO_DATABASE, ledger_location


def auth_mode(config: Config) -> str:
    """How callers are authenticated (``auth.mode``, as decided at start when not set)."""
    if config.auth.mode is None:
        if config.auth.admin_key:
            return auth_mode(_with_mode(config, "keys"))
        return (
            "not set (keys when the database holds active gateway keys, else "
            + auth_mode(_with_mode(config, "passthrough"))
            + ")"
        )
    if config.auth.mode == "keys":
        return "keys (callers present gateway keys gw-sk-...; provider keys come from the config)"
    if config.auth.mode == "none":
        return "none (no client authentication; requests are attributed by metadata.tenant)"
    forwarding = sorted(n for n, p in config.providers.items() if p.forward_client_auth)
    if forwarding:
        return (
            "passthrough (no client authentication by Relay; each caller's Authorization is "
            f"forwarded to: {', '.join(forwarding)})"
        )
    return "passthrough (no client authentication: every caller is accepted)"


def base_url(config: Config) -> str:
    """The ``/v1`` URL an SDK's ``base_url`` takes."""
    host = config.server.host
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{config.server.port}/v1"


def _with_mode(config: Config, mode: AuthMode) -> Config:
    return msgspec.structs.replace(config, auth=msgspec.structs.replace(config.auth, mode=mode))


def summary(config: Config, auth_reason: str | None = None) -> list[str]:
    """The start-up lines about the configuration (the source is said by the caller);
    ``auth_reason`` says why the auth mode was chosen when the config did not set it."""
    models = ", ".join(config.models) or "none"
    lines = [f"models: {models}"]
    if config.default_provider is not None:
        lines.append(f"unlisted models go to provider {config.default_provider!r}")
    lines.append(f"auth: {auth_mode(config)}" + (f"; {auth_reason}" if auth_reason else ""))
    lines.append(f"ledger: {ledger_location(config)}")
    if (cache := cache_line(config)) is not None:
        lines.append(cache)
    lines.append(f"serving {base_url(config)} (listening on {listening_on(config.server.host)})")
    return lines


def cache_line(config: Config) -> str | None:
    """What the response cache does (None when it caches nothing)."""
    cache = config.cache
    own = {n: m.cache.mode for n, m in config.models.items() if m.cache and m.cache.mode}
    if cache.mode == "off" and all(mode == "off" for mode in own.values()):
        return None
    backend = cache.backend or ("redis" if config.redis.enabled else "memory")
    where = (
        f"in Redis at {config.redis.address}"
        if backend == "redis"
        else f"in memory ({cache.max_bytes // (1024 * 1024)} MiB per worker)"
    )
    models = ", ".join(f"{n}: {mode}" for n, mode in sorted(own.items()))
    return (
        f"cache: {cache.mode}{f' ({models})' if models else ''}, {where}, "
        f"entries kept {cache.ttl_s:g} s"
    )


def listening_on(host: str) -> str:
    """The address bound and who can reach it: the start-up line says it plainly, since
    ``port: ":8080"`` alone means every interface."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if address.is_unspecified:
        return f"{host}, every {'IPv4 ' if address.version == 4 else ''}interface"
    if address.is_loopback:
        return f"{host}, loopback: this machine only"
    return host


def warnings(config: Config) -> list[str]:
    """Everything valid but likely unintended, one sentence each."""
    out: list[str] = []
    if not config.models and config.default_provider is None:
        out.append("no models are configured and no default_provider: every request will get a 404")
    keys = config.auth.mode == "keys" or (config.auth.mode is None and config.auth.admin_key)
    if not _is_loopback(config.server.host) and not keys:
        keyed = sorted(n for n, p in config.providers.items() if p.api_key)
        if keyed:
            out.append(
                f"provider key(s) of {', '.join(keyed)} are served on {config.server.host} "
                "with no client authentication: anyone who can reach this port spends them"
            )
    if config.database.url == NO_DATABASE and config.auth.admin_key:
        out.append(
            "auth.admin_key (or RELAY_ADMIN_KEY) is set, but database.url is none: the admin "
            "API needs a database and answers 404"
        )
    return out


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
