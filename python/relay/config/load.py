"""Load, expand, convert and validate a configuration, reporting every problem by path.

One function, :func:`read_config`, serves ``check-config``, ``serve`` and the hot reload,
so whatever the check accepts, the server starts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib import resources
from typing import Any

import msgspec

from relay.config.cache import check_cache, normalise_cache
from relay.config.checks import check_config
from relay.config.convert import convert_section
from relay.config.discover import ConfigSource, find_config
from relay.config.env import apply_overrides, expand_refs, normalise_server
from relay.config.model import Config, ModelConfig, Target
from relay.config.problems import Problems
from relay.config.simple import is_simple_form, simple_to_full
from relay.config.tenancy import check_tenancy
from relay.config.yamltext import read_yaml


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
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, object] | None = None,
) -> Config:
    """Load ``path``, else ``$RELAY_CONFIG``, else a discovered file, else the embedded default."""
    env = os.environ if env is None else env
    return read_config(find_config(str(path) if path else None, env), env, flags)


def read_config(
    source: ConfigSource, env: Mapping[str, str], flags: Mapping[str, object] | None = None
) -> Config:
    """Read and validate ``source`` with the environment and flag overrides, or raise."""
    if source.path is None:
        return parse_config(default_config_text(), source.name, env, flags)
    try:
        text = source.path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source.name, [f"cannot read the file: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(source.name, [f"the file is not UTF-8 text: {exc.reason}"]) from None
    return parse_config(text, source.name, env, flags)


def parse_config(
    text: str,
    source: str,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, object] | None = None,
) -> Config:
    """Parse YAML text into a validated :class:`Config`, or raise :class:`ConfigError`."""
    env = os.environ if env is None else env
    problems = Problems()
    raw = read_yaml(text, problems)
    if raw is None:
        raise ConfigError(source, problems.lines())
    raw = expand_refs(raw, env, "", problems)
    # The file's own `port: ":8080"` first, so that overriding only the port (--port,
    # SERVER_PORT=9000) keeps the interfaces the file chose.
    normalise_server(raw, problems)
    apply_overrides(raw, env, flags or {}, problems)
    if is_simple_form(raw):
        raw = simple_to_full(raw, problems)
    normalise_server(raw, problems)
    normalise_cache(raw)
    config = convert_section(raw, Config, "", problems) or Config()
    config = msgspec.structs.replace(config, models=_with_targets(config.models), source=source)
    check_config(config, _declared(raw.get("providers")), problems)
    check_tenancy(config, problems)
    check_cache(config, problems)
    if problems:
        raise ConfigError(source, problems.lines())
    return config


def _declared(providers: Any) -> list[str]:
    return [str(name) for name in providers] if isinstance(providers, dict) else []


def _with_targets(models: dict[str, ModelConfig]) -> dict[str, ModelConfig]:
    """Expand the ``provider``/``model`` shorthand into a single target."""
    out: dict[str, ModelConfig] = {}
    for name, model in models.items():
        if model.provider is not None and not model.targets:
            model = msgspec.structs.replace(
                model, targets=[Target(provider=model.provider, model=model.model)]
            )
        out[name] = model
    return out
