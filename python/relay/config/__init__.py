"""Configuration: schema, discovery, loading, validation, and the copy handed to workers."""

from relay.config.discover import ConfigSource, find_config
from relay.config.load import (
    ConfigError,
    default_config_text,
    load_config,
    parse_config,
    read_config,
)
from relay.config.model import Config, ModelConfig, Pricing, ProviderConfig, Target

__all__ = [
    "Config",
    "ConfigError",
    "ConfigSource",
    "ModelConfig",
    "Pricing",
    "ProviderConfig",
    "Target",
    "default_config_text",
    "find_config",
    "load_config",
    "parse_config",
    "read_config",
]
