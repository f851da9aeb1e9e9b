"""Load, expand, convert and validate a configuration, reporting every problem by path."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import yaml

from relay.config.env import apply_overrides, expand_refs, join_path
from relay.config.model import (
    KNOWN_PROVIDER_KINDS,
    Config,
    ModelConfig,
    ProviderConfig,
    RateLimitConfig,
    RedisConfig,
    ServerConfig,
)
from relay.config.simple import is_simple_form, simple_to_full

KNOWN_ENCODINGS = ("o200k_base", "cl100k_base")
_MSGSPEC_PATH = re.compile(r"^(.*?)(?: - at `\$(.*)`)?$", re.DOTALL)
S = TypeVar("S")


class ConfigError(Exception):
    """A configuration that cannot be served; ``problems`` lists each one as ``path: what``."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(
            f"{source}: invalid configuration\n" + "\n".join(f"  {p}" for p in problems)
        )


def default_config_text() -> str:
    """The embedded default configuration, shipped inside the package."""
    return resources.files("relay.config").joinpath("relay.yaml").read_text(encoding="utf-8")


def load_config(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Config:
    """Load ``path``, else ``$RELAY_CONFIG``, else the embedded default."""
    env = os.environ if env is None else env
    chosen = str(path) if path else env.get("RELAY_CONFIG")
    if not chosen:
        return parse_config(default_config_text(), "<embedded default>", env)
    try:
        text = Path(chosen).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(chosen, [f"cannot read the file: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(chosen, [f"the file is not UTF-8 text: {exc.reason}"]) from None
    return parse_config(text, chosen, env)


def parse_config(text: str, source: str, env: Mapping[str, str] | None = None) -> Config:
    """Parse YAML text into a validated :class:`Config`, or raise :class:`ConfigError`."""
    env = os.environ if env is None else env
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(source, [f"{where}invalid YAML: {problem}"]) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(
            source, [f"expected a mapping at the top level, got {type(raw).__name__}"]
        )

    problems: list[str] = []
    raw = apply_overrides(raw, env)
    raw = expand_refs(raw, env, "", problems)
    if is_simple_form(raw):
        raw = simple_to_full(raw, problems)
    _normalise_server(raw, problems)

    known = set(Config.__struct_fields__) - {"source"}
    for key in raw:
        if key not in known:
            problems.append(f"{key}: unknown section (known: {', '.join(sorted(known))})")

    server = _section(raw.get("server"), ServerConfig, "server", problems)
    redis = _section(raw.get("redis"), RedisConfig, "redis", problems)
    ratelimit = _section(raw.get("ratelimit"), RateLimitConfig, "ratelimit", problems)
    providers = _named(raw.get("providers"), ProviderConfig, "providers", problems)
    models = _named(raw.get("models"), ModelConfig, "models", problems)
    default_provider = raw.get("default_provider")
    if default_provider is not None and not isinstance(default_provider, str):
        problems.append(f"default_provider: expected a provider name, got {default_provider!r}")
        default_provider = None

    config = Config(
        server=server or ServerConfig(),
        providers=providers,
        models=_with_targets(models),
        default_provider=default_provider,
        redis=redis or RedisConfig(),
        ratelimit=ratelimit or RateLimitConfig(),
        source=source,
    )
    problems.extend(check_semantics(config))
    if problems:
        raise ConfigError(source, problems)
    return config


def check_semantics(config: Config) -> list[str]:
    """Cross-references and ranges that the schema alone cannot express."""
    problems: list[str] = []
    server = config.server
    if not 0 < server.port < 65536:
        problems.append(f"server.port: expected 1-65535, got {server.port}")
    if server.workers < 1:
        problems.append(f"server.workers: expected at least 1, got {server.workers}")
    if server.max_body_bytes < 1024:
        problems.append(
            f"server.max_body_bytes: expected at least 1024, got {server.max_body_bytes}"
        )
    if server.upstream_connections_per_host < 0:
        problems.append(
            "server.upstream_connections_per_host: expected 0 (no cap) or a positive number"
        )
    if server.drain_timeout_s < 0:
        problems.append("server.drain_timeout_s: expected a non-negative number of seconds")

    known = ", ".join(sorted(config.providers)) or "none configured"
    for name, provider in config.providers.items():
        path = f"providers.{name}"
        if provider.kind not in KNOWN_PROVIDER_KINDS:
            problems.append(
                f"{path}.kind: unknown kind {provider.kind!r} (known: {', '.join(KNOWN_PROVIDER_KINDS)})"
            )
        if provider.kind != "echo":
            url = provider.base_url
            if not url:
                problems.append(f"{path}.base_url: required for kind {provider.kind!r}")
            elif not url.startswith(("http://", "https://")):
                problems.append(f"{path}.base_url: expected an http(s) URL, got {url!r}")
        for field_name in ("connect_s", "read_s", "total_s"):
            if getattr(provider.timeouts, field_name) <= 0:
                problems.append(
                    f"{path}.timeouts.{field_name}: expected a positive number of seconds"
                )

    for name, model in config.models.items():
        path = f"models.{name}"
        if not model.targets:
            problems.append(f"{path}: needs `provider` or at least one entry in `targets`")
        for i, target in enumerate(model.targets):
            if target.provider not in config.providers:
                problems.append(
                    f"{path}.targets[{i}].provider: unknown provider {target.provider!r} (known: {known})"
                )
        for field_name in ("input", "output", "cached"):
            price = getattr(model.pricing, field_name)
            if price is not None and price < 0:
                problems.append(f"{path}.pricing.{field_name}: expected a non-negative price")
        if model.encoding is not None and model.encoding not in KNOWN_ENCODINGS:
            problems.append(
                f"{path}.encoding: unknown encoding {model.encoding!r} (known: {', '.join(KNOWN_ENCODINGS)})"
            )
    if config.default_provider is not None and config.default_provider not in config.providers:
        problems.append(
            f"default_provider: unknown provider {config.default_provider!r} (known: {known})"
        )
    return problems


def _normalise_server(raw: dict[str, Any], problems: list[str]) -> None:
    """Accept ``port: ":8080"`` and ``port: "0.0.0.0:8080"`` as users write them."""
    server = raw.get("server")
    if not isinstance(server, dict) or not isinstance(server.get("port"), str):
        return
    text = server["port"].strip()
    host, sep, port = text.rpartition(":")
    if sep and host:
        server.setdefault("host", host.strip("[]"))
    try:
        server["port"] = int(port)
    except ValueError:
        problems.append(f'server.port: expected a port number or ":PORT", got {text!r}')
        server.pop("port")


def _section(node: Any, kind: type[S], path: str, problems: list[str]) -> S | None:
    if node is None:
        return None
    try:
        return msgspec.convert(node, kind, strict=False)
    except msgspec.ValidationError as exc:
        problems.append(_describe(exc, path))
        return None


def _named(node: Any, kind: type[S], path: str, problems: list[str]) -> dict[str, S]:
    """Convert a mapping of name -> section entry by entry, so every bad entry is reported."""
    if node is None:
        return {}
    if not isinstance(node, dict):
        problems.append(f"{path}: expected a mapping of name to settings")
        return {}
    out: dict[str, S] = {}
    for name, value in node.items():
        converted = _section(
            value if value is not None else {}, kind, join_path(path, str(name)), problems
        )
        if converted is not None:
            out[str(name)] = converted
    return out


def _with_targets(models: dict[str, ModelConfig]) -> dict[str, ModelConfig]:
    """Expand the ``provider``/``model`` shorthand into a single target."""
    from relay.config.model import Target

    out: dict[str, ModelConfig] = {}
    for name, model in models.items():
        if model.provider is not None and not model.targets:
            model = msgspec.structs.replace(
                model, targets=[Target(provider=model.provider, model=model.model)]
            )
        out[name] = model
    return out


def _describe(exc: msgspec.ValidationError, path: str) -> str:
    match = _MSGSPEC_PATH.match(str(exc))
    message, sub = (match.group(1), match.group(2) or "") if match else (str(exc), "")
    message = message[:1].lower() + message[1:]
    return f"{path}{sub}: {message}"
